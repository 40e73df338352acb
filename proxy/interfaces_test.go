package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// The gate satisfies the interfaces the proxy consumes.
var (
	_ Gate         = (*gate.Gate)(nil)
	_ HoldReporter = (*gate.Gate)(nil)
)

// heldGate reports every request as held.
type heldGate struct{ *fakeGate }

func (heldGate) Held(*gate.Request) bool { return true }

func TestGateTimeoutSparesHolds(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(func(*gate.Request) *gate.Result { time.Sleep(400 * time.Millisecond); return allow() })
	h := startProxyWith(t, g, heldGate{g}, up, func(o *Options) { o.GateTimeout = 50 * time.Millisecond })
	resp, err := h.client(t, "good", false).Get("https://api.example.com/held")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("held request outlasting the gate timeout: got %d, want 200 (holds end on the gate's own timeout)", resp.StatusCode)
	}
}

func TestWebSocketPassthroughHost(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n') // stands in for a frame
		fmt.Fprint(brw, "echo "+line)
		brw.Flush()
	})
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) { o.WebSocketPassthroughHosts = []string{"api.example.com"} })
	c, br := h.tunnelTLS(t, "api.example.com:443", "api.example.com")
	io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got status %d, want 101", resp.StatusCode)
	}
	io.WriteString(c, "hello\n")
	got, err := bufio.NewReader(br).ReadString('\n')
	if err != nil || got != "echo hello\n" {
		t.Errorf("got %q, %v through the upgraded tunnel, want %q", got, err, "echo hello\n")
	}
	if obs := g.waitObserve(t); obs.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("Observe got status %d, want 101", obs.StatusCode)
	}
}

// panicAuthGate panics in Authenticate, which the proxy calls directly.
type panicAuthGate struct{ *fakeGate }

func (panicAuthGate) Authenticate(string) (aarm.Identity, error) { panic("auth boom") }

func TestAuthenticatePanicRefuses(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, false, echo)
	g := newFakeGate(nil)
	h := startProxyWith(t, g, panicAuthGate{g}, nil, func(o *Options) { o.Resolve["plain.example.com:80"] = up.addr() })
	resp, _, _ := h.rawConnect(t, "api.example.com:443", "good")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT with a panicking gate: got %d, want 403", resp.StatusCode)
	}
	r2, err := h.client(t, "good", false).Get("http://plain.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden || up.hits.Load() != 0 {
		t.Errorf("plain request with a panicking gate: got %d, upstream hits %d; want 403, 0", r2.StatusCode, up.hits.Load())
	}
}
