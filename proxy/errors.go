package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// Sentinel errors. Wrapped with %w; test with errors.Is.
var (
	// ErrConfig is returned by New for invalid Options.
	ErrConfig = errors.New("proxy: invalid options")
	// ErrPrivateDestination means the destination resolves to a loopback,
	// link-local, private or CGNAT address not listed in upstream.allow_private.
	ErrPrivateDestination = errors.New("destination is a private, loopback or link-local address not listed in upstream.allow_private")
	// ErrSelfAddress means the destination is one of the proxy's own listen
	// addresses (the proxy itself or the admin API).
	ErrSelfAddress = errors.New("destination is the proxy's own listen or admin address")
	// ErrResolve means the destination's name did not resolve.
	ErrResolve = errors.New("destination did not resolve")
	// ErrBadTarget means the request's target is malformed.
	ErrBadTarget = errors.New("malformed request target")
	// ErrHostMismatch means an inner request inside a MITM tunnel named
	// another host than the CONNECT target (DESIGN.md §7.5).
	ErrHostMismatch = errors.New("inner request host does not match the CONNECT target")
	// ErrBodyTooLarge means the request body exceeds limits.max_body.
	ErrBodyTooLarge = errors.New("request body exceeds limits.max_body")
	// ErrWebSocket means a WebSocket upgrade was refused.
	ErrWebSocket = errors.New("WebSocket upgrade refused: frames are not inspected; list the host in limits.websocket_passthrough_hosts to allow it")
	// ErrShuttingDown means the proxy is shutting down.
	ErrShuttingDown = errors.New("proxy is shutting down")
	// ErrGate means the gate failed (panic, nil result) and the request was denied.
	ErrGate = errors.New("gate failed")
	// ErrGateTimeout means the gate did not decide within limits.gate_timeout.
	ErrGateTimeout = errors.New("gate did not decide in time")
	// ErrUnpinnedDial means the upstream transport was asked to dial an
	// address that was not checked; it never happens unless a bug lets a
	// request skip the destination check, and then the dial is refused.
	ErrUnpinnedDial = errors.New("dial to an unchecked destination refused")
	// ErrModifiedDestination means a MODIFY decision changed the destination host.
	ErrModifiedDestination = errors.New("MODIFY may not change the destination host")
	// ErrClientGone means the client closed (or reset) its connection while
	// its request was judged or its response streamed; the request's
	// context is cancelled with it as the cause (issue 7).
	ErrClientGone = errors.New("client closed the connection")
	// ErrIncomplete means the response was not delivered in full to the client.
	ErrIncomplete = errors.New("response not fully delivered to the client")
)

// denyBody is the JSON body of a refused request (DESIGN.md §5 "Agent → proxy").
type denyBody struct {
	Error     string         `json:"error"`
	Decision  *aarm.Decision `json:"decision,omitempty"`
	ReceiptID string         `json:"receipt_id,omitempty"`
	Reason    string         `json:"reason"`
	Fix       string         `json:"fix,omitempty"`
}

// jsonResponse builds a complete response with a JSON body for req.
func jsonResponse(req *http.Request, status int, v any) *http.Response {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"denied","reason":"internal encoding error"}`)
	}
	b = append(b, '\n')
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(string(b))),
		ContentLength: int64(len(b)),
		Request:       req,
	}
}

// denyResponse is the 403/413/503 answer for a request that will not be forwarded.
func denyResponse(req *http.Request, res *gate.Result, greq *gate.Request) *http.Response {
	status := res.Status
	if status == 0 && greq != nil {
		status = greq.RefusalStatus
	}
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	reason := res.Decision.Reason
	if reason == "" && greq != nil {
		reason = greq.Refusal
	}
	if reason == "" {
		reason = "denied"
	}
	d := res.Decision
	resp := jsonResponse(req, status, denyBody{Error: "denied", Decision: &d, ReceiptID: res.ReceiptID, Reason: reason})
	if res.ReceiptID != "" {
		resp.Header.Set("X-AARM-Receipt", res.ReceiptID)
	}
	return resp
}

// authResponse is the 407 answer naming the fix.
func authResponse(req *http.Request, err error) *http.Response {
	resp := jsonResponse(req, http.StatusProxyAuthRequired, denyBody{
		Error:  "proxy_authentication_required",
		Reason: err.Error(),
		Fix:    "start a session (aarm session start, or run the agent under aarm exec) and set HTTPS_PROXY=http://AGENT:TOKEN@HOST:PORT with the session token as the proxy password",
	})
	resp.Header.Set("Proxy-Authenticate", `Basic realm="aarm"`)
	return resp
}

// upstreamStatus maps an upstream transport error to the status the client
// sees, in one place (STYLE.md "Map errors to HTTP status in one function").
func upstreamStatus(err error) (int, string) {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var netErr net.Error
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return http.StatusBadGateway, "upstream TLS certificate not trusted; add its CA to upstream.ca_file if it is yours"
	case errors.Is(err, ErrUnpinnedDial):
		return http.StatusBadGateway, ErrUnpinnedDial.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout, "upstream timed out"
	default:
		return http.StatusBadGateway, "upstream unreachable"
	}
}
