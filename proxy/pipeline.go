package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// tunnel is what a CONNECT established, carried by goproxy to every inner
// request of the tunnel (ProxyCtx.UserData).
type tunnel struct {
	identity aarm.Identity
	target   string // canonical host:port of the CONNECT
	dest     destination
	// conn is the client connection the CONNECT arrived on, when the
	// proxy was started through Serve; inner HTTP/1.x requests watch it
	// for the client going away (clientgone.go).
	conn *trackedConn
}

// handleConnect authenticates the CONNECT, checks its destination and, when
// both pass, asks goproxy to MITM it with our CA.
func (p *Proxy) handleConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	received := time.Now()
	reject := func(resp *http.Response) (*goproxy.ConnectAction, string) {
		resp.Close = true
		resp.Header.Set("Connection", "close")
		ctx.Resp = resp
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
	}
	id, err := p.gate.Authenticate(r.Header.Get("Proxy-Authorization"))
	if err != nil {
		p.log.Info("proxy auth failed", "method", http.MethodConnect, "host", host, "remote", r.RemoteAddr, "err", err)
		return reject(authResponse(r, err))
	}
	target, err := canonicalHostPort(host, "https")
	u := &url.URL{Scheme: "https", Host: host}
	greq := &gate.Request{Identity: id, Method: http.MethodConnect, URL: u, Header: gateHeader(r.Header), RemoteAddr: r.RemoteAddr, ReceivedAt: received}
	if err == nil && p.closing.Load() {
		err = ErrShuttingDown
	}
	var dest destination
	if err == nil {
		dest, err = p.checkDestination(r.Context(), target)
	}
	if err != nil {
		greq.Refusal, greq.RefusalStatus = refusalFor(err)
		res := p.mediate(r.Context(), greq)
		p.logDecision(greq, res, 0, received)
		return reject(denyResponse(r, res, greq))
	}
	tun := &tunnel{identity: id, target: target, dest: dest}
	if r.ProtoMajor == 1 {
		tun.conn, _ = r.Context().Value(connKey{}).(*trackedConn)
	}
	ctx.UserData = tun
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: p.mitmTLSConfig}, host
}

// mitmTLSConfig is the client-facing TLS config for a tunnel: always our CA,
// ALPN h2 and http/1.1.
func (p *Proxy) mitmTLSConfig(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	cfg, err := p.ca.TLSConfigFor(strings.Trim(h, "[]"), []string{"h2", "http/1.1"})
	if err != nil {
		p.log.Warn("mint MITM certificate", "host", h, "err", err)
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("no TLS config for %s", h)
	}
	return cfg, nil
}

// refusalFor maps a proxy-side refusal to the reason and status the gate records.
func refusalFor(err error) (string, int) {
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return err.Error(), http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrShuttingDown):
		return err.Error(), http.StatusServiceUnavailable
	case errors.Is(err, ErrResolve):
		return err.Error(), http.StatusBadGateway
	case errors.Is(err, ErrBadTarget):
		return err.Error(), http.StatusBadRequest
	default:
		return err.Error(), http.StatusForbidden
	}
}

// reqState travels in the forwarded request's context from handleRequest to
// RoundTrip and the response body.
type reqState struct {
	res      *gate.Result
	greq     *gate.Request
	dest     destination
	received time.Time
	done     func()
	// plain is a plain-HTTP proxy request (not inside a tunnel).
	plain bool
}

type stateKey struct{}

// handleRequest is the per-request pipeline for inner requests (HTTP/1.1 and
// HTTP/2 inside tunnels) and plain-HTTP proxy requests: identity, refusals,
// body capture, the gate, and the verdict.
func (p *Proxy) handleRequest(r *http.Request, ctx *goproxy.ProxyCtx) (outReq *http.Request, outResp *http.Response) {
	received := time.Now()
	p.inflight.Add(1)
	var once sync.Once
	stopWatch := func() {}
	// done ends the request: the client watch stops before goproxy reads
	// the client connection again, then Shutdown stops waiting for it.
	done := func() {
		once.Do(func() {
			stopWatch()
			p.inflight.Done()
		})
	}
	finish := func(resp *http.Response) (*http.Request, *http.Response) {
		resp.Body = &doneBody{ReadCloser: resp.Body, done: done}
		return r, resp
	}
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("panic handling request", "panic", fmt.Sprint(v), "method", r.Method, "url", redactURL(r.URL))
			done()
			resp := jsonResponse(r, http.StatusForbidden, denyBody{Error: "denied", Reason: "internal error"})
			resp.Close = true
			outReq, outResp = r, resp
		}
	}()

	tun, _ := ctx.UserData.(*tunnel)
	// rctx is cancelled with ErrClientGone when the client of an HTTP/1.x
	// request inside a tunnel goes away while the request is judged or its
	// response streams (issue 7); it is r's context otherwise.
	rctx, stop := watchTunnelClient(r.Context(), tun, r.ProtoMajor)
	stopWatch = stop
	var id aarm.Identity
	if tun != nil {
		id = tun.identity
	} else {
		var err error
		id, err = p.gate.Authenticate(r.Header.Get("Proxy-Authorization"))
		if err != nil {
			p.log.Info("proxy auth failed", "method", r.Method, "host", r.URL.Host, "remote", r.RemoteAddr, "err", err)
			drainSmall(r.Body)
			return finish(authResponse(r, err))
		}
	}

	u := *r.URL
	if tun == nil && u.Scheme == "" {
		u.Scheme = "http"
	}
	u.User = nil
	greq := &gate.Request{
		Identity: id, Method: r.Method, URL: &u, Header: gateHeader(r.Header),
		RemoteAddr: r.RemoteAddr, ReceivedAt: received,
	}

	// Refusals that do not depend on the body.
	var dest destination
	target, err := canonicalHostPort(u.Host, u.Scheme)
	switch {
	case err != nil:
	case p.closing.Load():
		err = ErrShuttingDown
	case tun != nil:
		err = checkTunnelHost(tun, target, r)
		dest = tun.dest
	default:
		if r.Host != "" && r.Host != u.Host {
			if h, e := canonicalHostPort(r.Host, u.Scheme); e != nil || h != target {
				err = fmt.Errorf("%w: Host %q, URL host %q", ErrHostMismatch, r.Host, u.Host)
			}
		}
		if err == nil {
			dest, err = p.checkDestination(r.Context(), target)
		}
	}
	if err == nil && isWebSocket(r.Header) && !listed(p.wsPass, target) {
		err = ErrWebSocket
	}

	// Body capture up to limits.max_body; beyond it, refused unless the host
	// is configured for uninspected pass-through.
	var body []byte
	var rest io.Reader // unread remainder for pass-through
	bodyComplete := true
	if err == nil && r.Body != nil && r.Body != http.NoBody {
		switch {
		case r.ContentLength > p.maxBody && !listed(p.bodyPass, target):
			err = fmt.Errorf("%w (%d > %d bytes)", ErrBodyTooLarge, r.ContentLength, p.maxBody)
			bodyComplete = false
		default:
			buf, rerr := io.ReadAll(io.LimitReader(r.Body, p.maxBody+1))
			switch {
			case rerr != nil:
				err = fmt.Errorf("%w: reading request body: %v", ErrBadTarget, rerr)
				bodyComplete = false
			case int64(len(buf)) > p.maxBody && listed(p.bodyPass, target):
				rest = io.MultiReader(bytes.NewReader(buf), r.Body)
				greq.BodyUninspected = fmt.Sprintf("body exceeds limits.max_body (%d bytes); forwarded uninspected for a limits.body_passthrough_hosts host", p.maxBody)
			case int64(len(buf)) > p.maxBody:
				err = fmt.Errorf("%w (more than %d bytes)", ErrBodyTooLarge, p.maxBody)
				bodyComplete = false
			default:
				body = buf
			}
		}
	}
	greq.Body = body

	if err != nil {
		greq.Refusal, greq.RefusalStatus = refusalFor(err)
		greq.Body = nil
	}
	res := p.mediate(rctx, greq)
	if greq.Refusal != "" || !res.Decision.Verdict.Forwards() {
		p.logDecision(greq, res, 0, received)
		resp := denyResponse(r, res, greq)
		if !bodyComplete || rest != nil {
			// The client's body was not read to its end; the connection
			// cannot carry another request.
			resp.Close = true
			resp.Header.Set("Connection", "close")
		}
		return finish(resp)
	}

	if rest != nil || isWebSocket(r.Header) {
		// The upstream transport will read the body's remainder from the
		// client connection (or goproxy will relay WebSocket frames):
		// the watcher must not read it concurrently.
		stopWatch()
	}

	// Forward: the original request, or the gate's MODIFY edit of it.
	out := r
	out.URL = &u
	if rest != nil {
		out.Body = io.NopCloser(rest)
	} else {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
	}
	if res.Decision.Verdict == aarm.Modify {
		if res.URL != nil {
			mu := *res.URL
			mu.User = nil
			mt, merr := canonicalHostPort(mu.Host, mu.Scheme)
			if merr != nil || mt != target || mu.Scheme != u.Scheme {
				p.logDecision(greq, res, http.StatusForbidden, received)
				p.observe(r.Context(), res, &gate.Response{StatusCode: http.StatusForbidden, Err: ErrModifiedDestination, StartedAt: received})
				return finish(denyResponse(r, &gate.Result{Decision: aarm.Decision{Reason: ErrModifiedDestination.Error()}, ReceiptID: res.ReceiptID}, greq))
			}
			out.URL = &mu
		}
		if res.Header != nil {
			out.Header = res.Header.Clone()
		}
		if res.Body != nil {
			out.Body = io.NopCloser(bytes.NewReader(res.Body))
			out.ContentLength = int64(len(res.Body))
		}
	}
	if out.ContentLength >= 0 {
		out.Header.Del("Content-Length")
		out.TransferEncoding = nil
	}
	if out.ContentLength == 0 {
		out.Body = http.NoBody
	}
	out.Host = out.URL.Host
	// Trailers arrive after the body and the gate never saw them: they are
	// not forwarded (a secret in a trailer would otherwise leave unjudged).
	out.Trailer = nil
	stripHopByHop(out.Header, isWebSocket(r.Header))
	out = out.WithContext(context.WithValue(rctx, stateKey{}, &reqState{res: res, greq: greq, dest: dest, received: received, done: done, plain: tun == nil}))
	ctx.RoundTripper = goproxy.RoundTripperFunc(p.roundTrip)
	return out, nil
}

// checkTunnelHost enforces DESIGN.md §7.5: inside a MITM tunnel the inner
// request's host (URL and Host header) must be the CONNECT target.
func checkTunnelHost(tun *tunnel, target string, r *http.Request) error {
	if target != tun.target {
		return fmt.Errorf("%w: request for %s inside a tunnel to %s", ErrHostMismatch, target, tun.target)
	}
	if r.Host != "" {
		h, err := canonicalHostPort(r.Host, r.URL.Scheme)
		if err != nil || h != tun.target {
			return fmt.Errorf("%w: Host %q inside a tunnel to %s", ErrHostMismatch, r.Host, tun.target)
		}
	}
	return nil
}

// gateHeader is the gate's copy of the request header: without the proxy
// credentials and without anything claiming to be an internal aarm header.
func gateHeader(h http.Header) http.Header {
	c := h.Clone()
	if c == nil {
		c = http.Header{}
	}
	c.Del("Proxy-Authorization")
	for k := range c {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), internalHeaderPrefix) {
			delete(c, k)
		}
	}
	return c
}

// hopByHop are headers that belong to one connection (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// stripHopByHop removes hop-by-hop headers, those named by Connection, and
// internal aarm headers, keeping the WebSocket upgrade pair when it is let through.
func stripHopByHop(h http.Header, keepUpgrade bool) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name != "" && !(keepUpgrade && strings.EqualFold(name, "Upgrade")) {
				h.Del(name)
			}
		}
	}
	for _, k := range hopByHop {
		if keepUpgrade && (k == "Connection" || k == "Upgrade") {
			continue
		}
		h.Del(k)
	}
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), internalHeaderPrefix) {
			delete(h, k)
		}
	}
	if keepUpgrade {
		h.Set("Connection", "Upgrade")
	}
}

func isWebSocket(h http.Header) bool {
	for _, v := range h.Values("Upgrade") {
		for _, s := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(s), "websocket") {
				return true
			}
		}
	}
	return false
}

// mediate calls the gate, failing closed: a panic, a nil result, a gate
// timeout or the client going away all deny.
func (p *Proxy) mediate(ctx context.Context, greq *gate.Request) *gate.Result {
	mctx, cancel := context.WithCancel(ctx)
	ch := make(chan *gate.Result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				p.log.Error("gate panic", "panic", fmt.Sprint(v), "method", greq.Method, "url", redactURL(greq.URL))
				ch <- nil
			}
		}()
		ch <- p.gate.Mediate(mctx, greq)
	}()
	var timeout <-chan time.Time
	if p.gateTimeout > 0 {
		t := time.NewTimer(p.gateTimeout)
		defer t.Stop()
		timeout = t.C
	}
	deny := func(err error) *gate.Result {
		cancel()
		// Whatever the gate returns later is not applied; if it had
		// allowed, report the request as blocked so the outcome is recorded.
		go func() {
			if res := <-ch; res != nil && res.Decision.Verdict.Forwards() {
				p.observe(ctx, res, &gate.Response{StatusCode: http.StatusForbidden, Err: err})
			}
		}()
		return &gate.Result{Decision: aarm.Decision{Reason: err.Error()}, Status: http.StatusForbidden}
	}
	for {
		select {
		case res := <-ch:
			cancel()
			if res == nil {
				return &gate.Result{Decision: aarm.Decision{Reason: ErrGate.Error() + ": no decision"}, Status: http.StatusForbidden}
			}
			return res
		case <-timeout:
			if hr, ok := p.gate.(HoldReporter); ok && hr.Held(greq) {
				timeout = nil // a hold ends on the gate's own timeout or ctx
				continue
			}
			return deny(ErrGateTimeout)
		case <-ctx.Done():
			return deny(fmt.Errorf("%w: client went away: %v", ErrGate, context.Cause(ctx)))
		}
	}
}

// observe calls Gate.Observe, never letting a panic escape into the stream.
func (p *Proxy) observe(ctx context.Context, res *gate.Result, resp *gate.Response) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("gate observe panic", "panic", fmt.Sprint(v))
		}
	}()
	p.gate.Observe(context.WithoutCancel(ctx), res, resp)
}

// logDecision writes the canonical line for one decision (fixed keys).
func (p *Proxy) logDecision(greq *gate.Request, res *gate.Result, status int, received time.Time) {
	lvl := slog.LevelInfo
	p.log.LogAttrs(context.Background(), lvl, "aarm proxy decision",
		slog.String("method", greq.Method),
		slog.String("url", redactURL(greq.URL)),
		slog.String("verdict", res.Decision.Verdict.String()),
		slog.String("reason", res.Decision.Reason),
		slog.String("refusal", greq.Refusal),
		slog.String("receipt", res.ReceiptID),
		slog.Int("status", status),
		slog.String("session", greq.Identity.Session),
		slog.String("agent", greq.Identity.Agent),
		slog.Bool("body_uninspected", greq.BodyUninspected != ""),
		slog.Duration("elapsed", time.Since(received)),
	)
}

// redactURL drops the query string, which may hold secrets, from logs.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	// Paths and queries can carry secrets (tokens in Telegram paths, keys
	// in query strings); the gate's decision line logs the path with
	// sensitive values replaced, so the proxy logs only where it went.
	return u.Scheme + "://" + u.Host
}

// doneBody calls done once when the body is closed.
type doneBody struct {
	io.ReadCloser
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

func drainSmall(rc io.ReadCloser) {
	if rc != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	}
}
