package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// holdingGate holds every request whose path starts with /hold the way the
// real gate holds STEP_UP and DEFER: Mediate blocks until release is closed
// (then ALLOW) or its context is done (then DENY, recording ctx.Err()).
// Other requests are answered by the fake at once.
type holdingGate struct {
	*fakeGate
	release chan struct{}
	entered chan *gate.Request
	ended   chan error // ctx.Err() when the hold ended on the context, nil when released
}

func newHoldingGate() *holdingGate {
	return &holdingGate{
		fakeGate: newFakeGate(nil),
		release:  make(chan struct{}),
		entered:  make(chan *gate.Request, 16),
		ended:    make(chan error, 16),
	}
}

// Held makes the proxy leave held calls to the gate's own timeout.
func (g *holdingGate) Held(*gate.Request) bool { return true }

func (g *holdingGate) Mediate(ctx context.Context, req *gate.Request) *gate.Result {
	res := g.fakeGate.Mediate(ctx, req)
	if req.Refusal != "" || req.URL == nil || !strings.HasPrefix(req.URL.Path, "/hold") {
		return res
	}
	g.entered <- req
	select {
	case <-g.release:
		g.ended <- nil
		return allow()
	case <-ctx.Done():
		g.ended <- ctx.Err()
		return &gate.Result{Decision: aarm.Decision{Reason: "client gone while held"}, ReceiptID: "rcpt-gone"}
	}
}

func (g *holdingGate) waitEntered(t *testing.T) *gate.Request {
	t.Helper()
	select {
	case r := <-g.entered:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the gate within 10s")
		return nil
	}
}

// waitEnded returns how the hold ended, failing when it did not within d.
func (g *holdingGate) waitEnded(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-g.ended:
		return err
	case <-time.After(d):
		t.Fatalf("the hold was still waiting %v after the client left: Mediate's context was not cancelled", d)
		return nil
	}
}

// holdingTunnel opens an HTTP/1.1 TLS tunnel through the proxy and returns
// the raw TCP connection under it too.
func holdingTunnel(t *testing.T, h *harness) (net.Conn, *tls.Conn, *bufio.Reader) {
	t.Helper()
	resp, raw, _ := h.rawConnect(t, "api.example.com:443", "good")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: got status %d, want 200", resp.StatusCode)
	}
	tc := tls.Client(raw, &tls.Config{ServerName: "api.example.com", RootCAs: h.ca.pool, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS inside tunnel: %v", err)
	}
	return raw, tc, bufio.NewReader(tc)
}

// Issue 7: an HTTP/1.1 client inside a CONNECT tunnel that goes away while
// its request is held ends the hold (the gate then records "client gone").
func TestHeldTunnelClientGoneCancelsMediate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		leave func(raw net.Conn, tc *tls.Conn)
	}{
		// Go, and TLS stacks that shut down cleanly, send close_notify first.
		{"close with close_notify", func(_ net.Conn, tc *tls.Conn) { tc.Close() }},
		// A killed process: the kernel sends FIN, no TLS alert.
		{"tcp close", func(raw net.Conn, _ *tls.Conn) { raw.Close() }},
		{"reset", func(raw net.Conn, _ *tls.Conn) {
			_ = raw.(*net.TCPConn).SetLinger(0)
			raw.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, true, echo)
			g := newHoldingGate()
			h := startProxyWith(t, g.fakeGate, g, up, nil)
			raw, tlsConn, _ := holdingTunnel(t, h)
			if _, err := io.WriteString(tlsConn, "DELETE /hold/repos/acme/web HTTP/1.1\r\nHost: api.example.com\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			g.waitEntered(t)
			time.Sleep(2 * clientWatchDelay) // the watcher is running
			left := time.Now()
			tc.leave(raw, tlsConn)
			if err := g.waitEnded(t, time.Second); !errors.Is(err, context.Canceled) {
				t.Fatalf("Mediate's ctx.Err(): got %v, want context.Canceled", err)
			}
			t.Logf("hold ended %v after the client left", time.Since(left).Round(time.Millisecond))
			if n := up.hits.Load(); n != 0 {
				t.Errorf("upstream was hit %d times, want 0", n)
			}
		})
	}
}

// The client leaving before the watcher started (within clientWatchDelay)
// is noticed as well.
func TestHeldTunnelClientGoneBeforeWatchStarts(t *testing.T) {
	t.Parallel()
	g := newHoldingGate()
	h := startProxyWith(t, g.fakeGate, g, newUpstream(t, true, echo), nil)
	raw, tlsConn, _ := holdingTunnel(t, h)
	if _, err := io.WriteString(tlsConn, "GET /hold HTTP/1.1\r\nHost: api.example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t)
	raw.Close()
	if err := g.waitEnded(t, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Mediate's ctx.Err(): got %v, want context.Canceled", err)
	}
}

// Plain-HTTP proxy requests: net/http cancels the request context itself.
func TestHeldPlainHTTPClientGoneCancelsMediate(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, false, echo)
	g := newHoldingGate()
	h := startProxyWith(t, g.fakeGate, g, nil, func(o *Options) { o.Resolve["plain.example.com:80"] = up.addr() })
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := base64.StdEncoding.EncodeToString([]byte("agent-1:good"))
	req := "POST http://plain.example.com/hold HTTP/1.1\r\nHost: plain.example.com\r\nProxy-Authorization: Basic " + auth + "\r\nContent-Length: 3\r\n\r\nabc"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t)
	c.Close()
	if err := g.waitEnded(t, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Mediate's ctx.Err(): got %v, want context.Canceled", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream was hit %d times, want 0", n)
	}
}

// HTTP/2 inside a tunnel: the client cancelling its stream (RST_STREAM) or
// dropping the connection reaches Mediate through x/net/http2.
func TestHeldHTTP2ClientGoneCancelsMediate(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newHoldingGate()
	h := startProxyWith(t, g.fakeGate, g, up, nil)
	c := h.client(t, "good", true)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "https://api.example.com/hold/repos/acme/web", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	if gr := g.waitEntered(t); gr.Header == nil {
		t.Fatal("gate saw no header")
	}
	time.Sleep(2 * clientWatchDelay)
	cancel()
	if err := g.waitEnded(t, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Mediate's ctx.Err(): got %v, want context.Canceled", err)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client: got %v, want context.Canceled", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream was hit %d times, want 0", n)
	}
}

// A held HTTP/2 request released after the watch delay still succeeds, and
// the connection keeps serving (nothing read the h2 connection behind the
// http2 server's back).
func TestHeldHTTP2ReleasedKeepsConnection(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newHoldingGate()
	h := startProxyWith(t, g.fakeGate, g, up, nil)
	c := h.client(t, "good", true)
	type result struct {
		status int
		body   string
		proto  int
		err    error
	}
	post := func(path, body string) result {
		resp, err := c.Post("https://api.example.com"+path, "text/plain", strings.NewReader(body))
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return result{resp.StatusCode, string(b), resp.ProtoMajor, err}
	}
	held := make(chan result, 1)
	go func() { held <- post("/hold/1", "first") }()
	g.waitEntered(t)
	time.Sleep(300 * time.Millisecond)
	if got := post("/free", "meanwhile"); got != (result{200, "meanwhile", 2, nil}) {
		t.Errorf("independent request on the h2 connection during the hold: got %+v, want 200 meanwhile over HTTP/2", got)
	}
	close(g.release)
	if err := g.waitEnded(t, 5*time.Second); err != nil {
		t.Fatalf("hold ended with %v, want released", err)
	}
	if got := <-held; got != (result{200, "first", 2, nil}) {
		t.Errorf("released request: got %+v, want 200 first over HTTP/2", got)
	}
	if got := post("/after", "after"); got != (result{200, "after", 2, nil}) {
		t.Errorf("request after the hold: got %+v, want 200 after over HTTP/2", got)
	}
}

// A held request whose client stays connected is not cancelled; once
// released it is answered, and requests the client pipelined behind it
// during the hold (read ahead by the watcher) arrive intact.
func TestHeldTunnelClientStayingIsNotCancelled(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newHoldingGate()
	h := startProxyWith(t, g.fakeGate, g, up, nil)
	_, tlsConn, br := holdingTunnel(t, h)
	if _, err := io.WriteString(tlsConn, "POST /hold/1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nfirst"); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t)
	time.Sleep(2 * clientWatchDelay)
	// Pipelined while the first is held: the watcher reads these bytes.
	if _, err := io.WriteString(tlsConn, "POST /second HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 6\r\n\r\nsecond"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.ended:
		t.Fatalf("hold ended (%v) while the client was still connected", err)
	case <-time.After(1500 * time.Millisecond):
	}
	close(g.release)
	if err := g.waitEnded(t, 5*time.Second); err != nil {
		t.Fatalf("hold ended with %v, want released", err)
	}
	var got []string
	for range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, readAll(t, resp.Body)))
		resp.Body.Close()
	}
	// And the connection carries one more request after that.
	if _, err := io.WriteString(tlsConn, "POST /third HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nthird"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read third response: %v", err)
	}
	got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, readAll(t, resp.Body)))
	resp.Body.Close()
	want := []string{"200 first", "200 second", "200 third"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses on the tunnel (-want +got):\n%s", diff)
	}
}

// Keep-alive: several requests on one tunnel, each slow enough to judge and
// to answer that the watcher runs in both windows, arrive intact and in order.
func TestTunnelKeepAliveWithWatcher(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * clientWatchDelay)
		echo(w, r)
	})
	g := newFakeGate(func(*gate.Request) *gate.Result {
		time.Sleep(2 * clientWatchDelay)
		return allow()
	})
	h := startProxy(t, g, up, nil)
	_, tlsConn, br := holdingTunnel(t, h)
	var got, want []string
	for i := range 5 {
		body := fmt.Sprintf("request %d %s", i, strings.Repeat("x", i*3000))
		want = append(want, "200 "+body)
		if _, err := fmt.Fprintf(tlsConn, "POST /k/%d HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: read response: %v", i, err)
		}
		got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, readAll(t, resp.Body)))
		resp.Body.Close()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	// Go's client, keep-alive as usual.
	c := h.client(t, "good", false)
	for i := range 3 {
		resp, err := c.Post("https://api.example.com/go", "text/plain", strings.NewReader(fmt.Sprint("go ", i)))
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || b != fmt.Sprint("go ", i) {
			t.Errorf("Go client request %d: got %d %q", i, resp.StatusCode, b)
		}
		resp.Body.Close()
	}
}

// A pass-through body whose remainder is still on the wire while the gate
// judges (the watcher reads ahead into it) reaches the upstream intact, and
// the connection carries the next request.
func TestPassthroughBodyIntactWithWatcher(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(func(*gate.Request) *gate.Result {
		time.Sleep(3 * clientWatchDelay)
		return allow()
	})
	h := startProxy(t, g, up, func(o *Options) {
		o.MaxBody = 1024
		o.BodyPassthroughHosts = []string{"api.example.com"}
	})
	c := h.client(t, "good", false)
	// A remainder that trickles in while the request is forwarded: the
	// watcher must have stopped reading before the upstream transport reads.
	pr, pw := io.Pipe()
	var sent strings.Builder
	go func() {
		chunk := func(n int, b byte) {
			p := strings.Repeat(string(b), n)
			sent.WriteString(p)
			_, _ = io.WriteString(pw, p)
		}
		chunk(2048, 'h')
		for i := range 10 {
			time.Sleep(clientWatchDelay)
			chunk(512, byte('0'+i))
		}
		pw.Close()
	}()
	resp, err := c.Post("https://api.example.com/trickle", "application/octet-stream", pr)
	if err != nil {
		t.Fatalf("trickled body: %v", err)
	}
	got := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || got != sent.String() {
		t.Fatalf("trickled body: got status %d and %d bytes, want 200 and the %d bytes sent", resp.StatusCode, len(got), sent.Len())
	}
	for i, size := range []int{2 << 20, 100} {
		body := make([]byte, size)
		for j := range body {
			body[j] = byte('a' + (j+i)%26)
		}
		// io.MultiReader hides the length: the body goes chunked.
		resp, err := c.Post("https://api.example.com/upload", "application/octet-stream", io.MultiReader(strings.NewReader(string(body))))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || got != string(body) {
			t.Fatalf("request %d: got status %d and %d bytes, want 200 and the %d bytes sent", i, resp.StatusCode, len(got), len(body))
		}
	}
}

// A client that leaves while its (allowed) response is still streaming ends
// the upstream request too, and Observe is told why.
func TestTunnelClientGoneCancelsStreamingUpstream(t *testing.T) {
	t.Parallel()
	upstreamDone := make(chan error, 1)
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			upstreamDone <- r.Context().Err()
		case <-time.After(10 * time.Second):
			upstreamDone <- errors.New("still streaming after 10s")
		}
	})
	g := newFakeGate(nil)
	h := startProxy(t, g, up, nil)
	raw, tlsConn, br := holdingTunnel(t, h)
	if _, err := io.WriteString(tlsConn, "GET /events HTTP/1.1\r\nHost: api.example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: got %q, %v", line, err)
	}
	time.Sleep(2 * clientWatchDelay)
	raw.Close()
	select {
	case err := <-upstreamDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("upstream request: got %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream request was still open 2s after the client left")
	}
	if ob := g.waitObserve(t); !errors.Is(ob.Err, ErrClientGone) || !errors.Is(ob.Err, ErrIncomplete) {
		t.Errorf("Observe Err: got %v, want ErrIncomplete and ErrClientGone", ob.Err)
	}
}

// Unit tests of the watcher on one end of a loopback TCP pair.
func tcpPair(t *testing.T) (server *trackedConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); s.Close() })
	return &trackedConn{Conn: s}, client
}

type causeRecorder struct {
	mu    sync.Mutex
	cause error
	ch    chan struct{}
}

func newCauseRecorder() *causeRecorder { return &causeRecorder{ch: make(chan struct{}, 1)} }

func (r *causeRecorder) cancel(err error) {
	r.mu.Lock()
	r.cause = err
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *causeRecorder) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cause
}

func TestWatchKeepsBytesAndStopsCleanly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		delay time.Duration
		// sent while the watch runs, then after it stopped
		during, after string
	}{
		{"immediate, bytes during", 0, "pipelined request bytes", " and more"},
		{"delayed, bytes during", 10 * time.Millisecond, strings.Repeat("y", 5000), "tail"},
		{"immediate, nothing during", 0, "", "only after"},
		{"stopped before the delay", time.Hour, "", "after"},
		{"read-ahead bound reached", 0, strings.Repeat("z", maxWatchAhead+10), "end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := tcpPair(t)
			rec := newCauseRecorder()
			stop := s.watchClient(rec.cancel, tc.delay)
			if second := s.watchClient(rec.cancel, 0); second == nil {
				t.Fatal("second watchClient returned nil stop")
			} else {
				second() // a no-op: the first watch owns the conn
			}
			if tc.during != "" {
				if _, err := io.WriteString(c, tc.during); err != nil {
					t.Fatal(err)
				}
				time.Sleep(tc.delay + 100*time.Millisecond)
			}
			stop()
			stop() // idempotent
			if _, err := io.WriteString(c, tc.after); err != nil {
				t.Fatal(err)
			}
			want := tc.during + tc.after
			_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, len(want))
			if _, err := io.ReadFull(s, buf); err != nil {
				t.Fatalf("read after stop: %v", err)
			}
			if string(buf) != want {
				t.Errorf("read after stop: got %d bytes %.40q…, want %d bytes %.40q…", len(buf), buf, len(want), want)
			}
			if err := rec.get(); err != nil {
				t.Errorf("watch cancelled with %v while the client stayed", err)
			}
			if s.watching.Load() {
				t.Error("conn still marked as watched after stop")
			}
			// A new watch may start once the old one stopped.
			stop = s.watchClient(rec.cancel, 0)
			c.Close()
			select {
			case <-rec.ch:
			case <-time.After(2 * time.Second):
				t.Fatal("second watch did not see the client close")
			}
			stop()
			if err := rec.get(); !errors.Is(err, ErrClientGone) {
				t.Errorf("cause: got %v, want ErrClientGone", err)
			}
		})
	}
}

func TestWatchSeesClientGone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		leave func(c net.Conn)
	}{
		{"close", func(c net.Conn) { c.Close() }},
		{"bytes then close", func(c net.Conn) { _, _ = io.WriteString(c, "\x15\x03\x03\x00\x02\x01\x00"); c.Close() }},
		{"reset", func(c net.Conn) { _ = c.(*net.TCPConn).SetLinger(0); c.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := tcpPair(t)
			rec := newCauseRecorder()
			stop := s.watchClient(rec.cancel, 5*time.Millisecond)
			defer stop()
			tc.leave(c)
			select {
			case <-rec.ch:
			case <-time.After(2 * time.Second):
				t.Fatal("the watch did not see the client go within 2s")
			}
			if err := rec.get(); !errors.Is(err, ErrClientGone) {
				t.Errorf("cause: got %v, want ErrClientGone", err)
			}
		})
	}
}

// BenchmarkClientWatch measures what one request pays for the watch on an
// idle keep-alive connection: started at once (a goroutine, two deadline
// changes, a join) or after a delay the request finishes within (one timer).
func BenchmarkClientWatch(b *testing.B) {
	for _, bc := range []struct {
		name  string
		delay time.Duration
	}{{"immediate", 0}, {"delayed", clientWatchDelay}} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					defer c.Close()
					_, _ = io.Copy(io.Discard, c)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			tc := &trackedConn{Conn: c}
			cancel := func(error) {}
			b.ReportAllocs()
			for b.Loop() {
				stop := tc.watchClient(cancel, bc.delay)
				stop()
			}
		})
	}
}
