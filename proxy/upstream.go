package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/aarmproxy/aarm/gate"
)

// newTransport builds the one upstream transport: verified TLS against
// RootCAs (system roots when nil), never an environment proxy, keep-alive
// pooling, HTTP/2 when the upstream offers it, and dials pinned to the
// address the destination check approved (DESIGN.md §7.4, §7.8).
func (p *Proxy) newTransport(opts Options) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never http.ProxyFromEnvironment
		DialContext:           p.pinnedDial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       orDefault(opts.IdleConnTimeout, DefaultIdleConnTimeout),
		TLSHandshakeTimeout:   orDefault(opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout: orDefault(opts.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
	}
}

// pinnedDial dials the checked address carried by the request's context and
// refuses anything else, so DNS cannot be asked a second time.
func (p *Proxy) pinnedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	if st == nil || !st.dest.addr.IsValid() || normHost(addr) != st.dest.hostport {
		return nil, fmt.Errorf("%w: %s", ErrUnpinnedDial, addr)
	}
	return p.dial(ctx, network, st.dest.addr.String())
}

// roundTrip forwards one judged request. It never returns an error to
// goproxy (which would drop the connection without an answer): upstream
// failures become a 502/504 JSON answer and are reported to Observe.
func (p *Proxy) roundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	st, _ := req.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		// Unreachable unless a code path skipped the gate: fail closed.
		return jsonResponse(req, http.StatusForbidden, denyBody{Error: "denied", Reason: "request was not judged"}), nil
	}
	start := time.Now()
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		if gone := clientGoneCause(req.Context()); gone != nil {
			// The client left while the upstream was answering; the
			// answer below goes nowhere, the receipt says why.
			err = fmt.Errorf("%w (%v)", gone, err)
		}
		status, reason := upstreamStatus(err)
		p.log.Warn("upstream request failed", "url", redactURL(req.URL), "status", status, "err", err, "receipt", st.res.ReceiptID)
		p.observe(req.Context(), st.res, &gate.Response{StatusCode: status, Err: err, StartedAt: start, Duration: time.Since(start)})
		p.logDecision(st.greq, st.res, status, st.received)
		out := jsonResponse(req, status, denyBody{Error: "upstream_error", ReceiptID: st.res.ReceiptID, Reason: reason})
		if st.res.ReceiptID != "" {
			out.Header.Set("X-AARM-Receipt", st.res.ReceiptID)
		}
		out.Body = &doneBody{ReadCloser: out.Body, done: st.done}
		return out, nil
	}
	p.logDecision(st.greq, st.res, resp.StatusCode, st.received)
	if st.res.ReceiptID != "" {
		resp.Header.Set("X-AARM-Receipt", st.res.ReceiptID)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// A WebSocket pass-through host: the body is the raw connection and
		// must stay an io.ReadWriter; its frames are not inspected.
		p.log.Info("websocket pass-through: frames are not inspected", "url", redactURL(req.URL), "receipt", st.res.ReceiptID)
		p.observe(req.Context(), st.res, &gate.Response{StatusCode: resp.StatusCode, Header: resp.Header.Clone(), StartedAt: start, Duration: time.Since(start)})
		st.done()
		return resp, nil
	}
	ob := &observedBody{
		rc:  resp.Body,
		max: p.maxInspect,
		eof: resp.Body == nil || resp.Body == http.NoBody || req.Method == http.MethodHead,
	}
	ob.finish = func() {
		var ferr error
		if !ob.eof {
			ferr = ob.err
			if ferr == nil {
				ferr = ErrIncomplete
			}
			if gone := clientGoneCause(req.Context()); gone != nil {
				ferr = fmt.Errorf("%w: %w", ErrIncomplete, gone)
			}
		}
		p.observe(req.Context(), st.res, &gate.Response{
			StatusCode: resp.StatusCode, Header: resp.Header.Clone(),
			Body: ob.buf.Bytes(), Truncated: ob.truncated, Err: ferr,
			StartedAt: start, Duration: time.Since(start),
		})
		st.done()
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if st.plain && resp.ContentLength < 0 && !ob.eof {
		// goproxy's plain-HTTP path flushes after every write only for SSE
		// or when the header says chunked (net/http removed that header
		// from resp). Saying it again makes streamed bodies (NDJSON, long
		// polls) reach the client as they arrive; net/http's server turns
		// the header into chunked framing. Tunnels stream on their own.
		resp.Header.Set("Transfer-Encoding", "chunked")
	}
	resp.Body = ob
	return resp, nil
}

// observedBody passes the response through unchanged while keeping the first
// max bytes for Observe, which it calls once on Close (after the last byte
// was handed to the client).
type observedBody struct {
	rc        io.ReadCloser
	max       int64
	buf       bytes.Buffer
	truncated bool
	eof       bool
	err       error
	once      sync.Once
	finish    func()
}

func (b *observedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		if room := b.max - int64(b.buf.Len()); room > 0 {
			b.buf.Write(p[:min(int64(n), room)])
			if int64(n) > room {
				b.truncated = true
			}
		} else {
			b.truncated = true
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *observedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.finish)
	return err
}

// copyBody copies a small, complete body.
func copyBody(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }
