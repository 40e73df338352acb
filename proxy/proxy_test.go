package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

func decodeDeny(t *testing.T, r io.Reader) denyBody {
	t.Helper()
	var d denyBody
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		t.Fatalf("decode JSON body: %v", err)
	}
	return d
}

func TestAllowForwardsBodyIntact(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, nil)
	body := `{"title":"bug","body":"` + strings.Repeat("x", 5000) + `"}`
	resp, err := h.client(t, "good", false).Post("https://api.example.com/repos/acme/web/issues?x=1", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || got != body {
		t.Fatalf("got status %d body %d bytes, want 200 and the %d bytes sent", resp.StatusCode, len(got), len(body))
	}
	if v := resp.Header.Get("X-Upstream-Proxy-Auth"); v != "" {
		t.Errorf("upstream saw Proxy-Authorization %q, want it stripped", v)
	}
	if v := resp.Header.Get("X-Upstream-Host"); v != "api.example.com" {
		t.Errorf("upstream saw Host %q, want api.example.com", v)
	}
	if v := resp.Header.Get("X-AARM-Receipt"); v != "rcpt-allow" {
		t.Errorf("got X-AARM-Receipt %q, want rcpt-allow", v)
	}
	gr := h.gate.lastRequest(t)
	if string(gr.Body) != body {
		t.Errorf("gate saw body of %d bytes, want the %d bytes sent", len(gr.Body), len(body))
	}
	want := "https://api.example.com/repos/acme/web/issues?x=1"
	if gr.URL.String() != want || gr.Method != http.MethodPost {
		t.Errorf("gate saw %s %s, want POST %s", gr.Method, gr.URL, want)
	}
	if gr.Identity.Agent != "agent-1" || !gr.Identity.Verified {
		t.Errorf("gate saw identity %+v, want agent-1 verified (captured at CONNECT)", gr.Identity)
	}
	if gr.Header.Get("Proxy-Authorization") != "" {
		t.Error("gate's header copy holds Proxy-Authorization, want it removed")
	}
	obs := h.gate.waitObserve(t)
	if obs.StatusCode != http.StatusOK || string(obs.Body) != body || obs.Err != nil {
		t.Errorf("Observe got status %d, %d body bytes, err %v; want 200, full body, nil", obs.StatusCode, len(obs.Body), obs.Err)
	}
}

func TestDenyNeverReachesUpstream(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(func(*gate.Request) *gate.Result {
		return &gate.Result{Decision: aarm.Decision{Verdict: aarm.Deny, Rule: "no-delete", Reason: "deleting repositories is forbidden"}, ReceiptID: "rcpt-42"}
	})
	h := startProxy(t, g, up, nil)
	req, _ := http.NewRequest(http.MethodDelete, "https://api.example.com/repos/acme/web", nil)
	resp, err := h.client(t, "good", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got status %d, want 403", resp.StatusCode)
	}
	d := decodeDeny(t, resp.Body)
	want := denyBody{Error: "denied", ReceiptID: "rcpt-42", Reason: "deleting repositories is forbidden",
		Decision: &aarm.Decision{Verdict: aarm.Deny, Rule: "no-delete", Reason: "deleting repositories is forbidden"}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("deny body (-want +got):\n%s", diff)
	}
	if v := resp.Header.Get("X-AARM-Receipt"); v != "rcpt-42" {
		t.Errorf("got X-AARM-Receipt %q, want rcpt-42", v)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream was hit %d times, want 0", n)
	}
}

func TestHeldVerdictsThatComeBackAreRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []aarm.Verdict{aarm.StepUp, aarm.Defer, aarm.Verdict(99)} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, true, echo)
			g := newFakeGate(func(*gate.Request) *gate.Result {
				return &gate.Result{Decision: aarm.Decision{Verdict: v, Reason: "held"}, ReceiptID: "r"}
			})
			h := startProxy(t, g, up, nil)
			resp, err := h.client(t, "good", false).Get("https://api.example.com/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || up.hits.Load() != 0 {
				t.Errorf("got status %d, upstream hits %d; want 403, 0", resp.StatusCode, up.hits.Load())
			}
		})
	}
}

func Test407ForMissingOrBadAuth(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, false, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, nil, func(o *Options) {
		o.Resolve["plain.example.com:80"] = up.addr()
	})
	for _, pass := range []string{"", "forged"} {
		t.Run("CONNECT/"+pass, func(t *testing.T) {
			resp, _, _ := h.rawConnect(t, "api.example.com:443", pass)
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Fatalf("got status %d, want 407", resp.StatusCode)
			}
			if got := resp.Header.Get("Proxy-Authenticate"); !strings.HasPrefix(got, "Basic") {
				t.Errorf("got Proxy-Authenticate %q, want Basic challenge", got)
			}
			d := decodeDeny(t, resp.Body)
			if d.Error != "proxy_authentication_required" || d.Reason != errBadToken.Error() || !strings.Contains(d.Fix, "HTTPS_PROXY") {
				t.Errorf("got 407 body %+v, want error, the gate's reason and a fix naming HTTPS_PROXY", d)
			}
		})
		t.Run("plain/"+pass, func(t *testing.T) {
			resp, err := h.client(t, pass, false).Get("http://plain.example.com/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Fatalf("got status %d, want 407", resp.StatusCode)
			}
			if d := decodeDeny(t, resp.Body); d.Fix == "" {
				t.Errorf("407 body %+v names no fix", d)
			}
		})
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times, want 0", n)
	}
	if n := g.mediates.Load(); n != 0 {
		t.Errorf("Mediate called %d times for unauthenticated requests, want 0", n)
	}
}

func TestTunnelHostMismatchRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) {
		o.Resolve["other.example.com:443"] = up.addr()
	})
	cases := []struct{ name, reqLine, host string }{
		{"host header", "GET /x HTTP/1.1", "other.example.com"},
		{"absolute form", "GET https://other.example.com/x HTTP/1.1", "other.example.com"},
		{"absolute form, matching Host header", "GET https://other.example.com/x HTTP/1.1", "api.example.com"},
		{"other port", "GET /x HTTP/1.1", "api.example.com:8443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, br := h.tunnelTLS(t, "api.example.com:443", "api.example.com")
			fmt.Fprintf(c, "%s\r\nHost: %s\r\n\r\n", tc.reqLine, tc.host)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got status %d, want 403", resp.StatusCode)
			}
			gr := h.gate.lastRequest(t)
			if !strings.Contains(gr.Refusal, ErrHostMismatch.Error()) {
				t.Errorf("gate saw Refusal %q, want it to contain %q", gr.Refusal, ErrHostMismatch)
			}
		})
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream hit %d times, want 0", n)
	}
}

func TestConnectToOwnAddressesRefused(t *testing.T) {
	t.Parallel()
	admin := newUpstream(t, false, echo)
	_, adminPort, _ := net.SplitHostPort(admin.addr())
	wild := newUpstream(t, false, echo)
	_, wildPort, _ := net.SplitHostPort(wild.addr())
	g := newFakeGate(nil)
	h := startProxy(t, g, nil, func(o *Options) {
		// Loopback is allowed here so that only the self check can refuse.
		o.AllowPrivate = []string{"127.0.0.0/8", "::1"}
		o.RefuseAddrs = append(o.RefuseAddrs, admin.addr(), "0.0.0.0:"+wildPort)
		o.Resolve["dashboard.example.com:443"] = admin.addr()
	})
	for _, target := range []string{
		h.addr,                      // the proxy itself
		admin.addr(),                // the admin API
		"localhost.:" + adminPort,   // not resolvable here: refused anyway
		"dashboard.example.com:443", // resolve map pointing at the admin API
		"127.0.0.1:" + wildPort,     // a 0.0.0.0 listener
		"[::ffff:127.0.0.1]:" + adminPort,
	} {
		t.Run(target, func(t *testing.T) {
			resp, _, _ := h.rawConnect(t, target, "good")
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("CONNECT %s: got 200, want a refusal", target)
			}
			gr := h.gate.lastRequest(t)
			if gr.Refusal == "" || gr.Method != http.MethodConnect {
				t.Errorf("gate saw %s Refusal %q, want a CONNECT refusal", gr.Method, gr.Refusal)
			}
		})
	}
	// Plain HTTP aimed at the admin API is refused the same way.
	resp, err := h.client(t, "good", false).Get("http://" + admin.addr() + "/api/v1/approvals")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain GET to admin: got status %d, want 403", resp.StatusCode)
	}
	if admin.hits.Load() != 0 || wild.hits.Load() != 0 {
		t.Errorf("own listeners hit %d/%d times, want 0", admin.hits.Load(), wild.hits.Load())
	}
}

func TestPrivateDestinationsRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target string
		dns          []netip.Addr
	}{
		{"loopback via a name without resolve entry", "internal.example.com:443", addrs("127.0.0.1")},
		{"cloud metadata", "169.254.169.254:80", nil},
		{"RFC 1918", "10.1.2.3:443", nil},
		{"CGNAT", "100.64.1.1:443", nil},
		{"IPv6 ULA via name", "ula.example.com:443", addrs("fd00::1")},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:443", nil},
		{"one of two answers private", "mixed.example.com:443", addrs("93.184.216.34", "10.0.0.7")},
		{"unspecified", "0.0.0.0:443", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newFakeGate(nil)
			h := startProxy(t, g, nil, func(o *Options) {
				if tc.dns != nil {
					o.Resolver = &scriptedDNS{answers: [][]netip.Addr{tc.dns}}
				}
			})
			resp, _, _ := h.rawConnect(t, tc.target, "good")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got status %d, want 403", resp.StatusCode)
			}
			d := decodeDeny(t, resp.Body)
			if !strings.Contains(d.Reason, ErrPrivateDestination.Error()) {
				t.Errorf("got reason %q, want it to name the private destination", d.Reason)
			}
			if gr := h.gate.lastRequest(t); gr.Refusal == "" {
				t.Error("gate saw no Refusal, want one")
			}
			select {
			case a := <-h.dials:
				t.Errorf("proxy dialed %s, want no dial", a)
			default:
			}
		})
	}
}

func TestPrivateDestinationAllowedWhenListed(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	_, port, _ := net.SplitHostPort(up.addr())
	for _, entry := range []string{"internal.example.com", "internal.example.com:" + port, "127.0.0.1", "127.0.0.0/8"} {
		t.Run(entry, func(t *testing.T) {
			t.Parallel()
			g := newFakeGate(nil)
			h := startProxy(t, g, nil, func(o *Options) {
				o.RootCAs = up.pool()
				o.AllowPrivate = []string{entry}
				o.Resolver = &scriptedDNS{answers: [][]netip.Addr{addrs("127.0.0.1")}}
			})
			resp, err := h.client(t, "good", false).Get("https://internal.example.com:" + port + "/ok")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
		})
	}
}

func TestDNSRebindingCannotSlipPast(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	_, port, _ := net.SplitHostPort(up.addr())
	// First answer: an address the operator allowed; every later answer:
	// a private address that is not allowed.
	dns := &scriptedDNS{answers: [][]netip.Addr{addrs("127.0.0.1"), addrs("10.9.9.9")}}
	g := newFakeGate(nil)
	h := startProxy(t, g, nil, func(o *Options) {
		o.RootCAs = up.pool()
		o.AllowPrivate = []string{"127.0.0.1"}
		o.Resolver = dns
	})
	target := "https://rebind.example.com:" + port + "/"
	c := h.client(t, "good", false)
	for i := range 3 {
		resp, err := c.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d in the first tunnel: got %d, want 200", i, resp.StatusCode)
		}
	}
	if n := dns.count(); n != 1 {
		t.Errorf("resolver asked %d times for one tunnel, want 1 (the checked answer is pinned)", n)
	}
	for len(h.dials) > 0 {
		if a := <-h.dials; a != "127.0.0.1:"+port {
			t.Errorf("proxy dialed %s, want only the checked 127.0.0.1:%s", a, port)
		}
	}
	// A new tunnel gets the rebound answer and is refused.
	resp, _, _ := h.rawConnect(t, "rebind.example.com:"+port, "good")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("new tunnel after rebinding: got %d, want 403", resp.StatusCode)
	}
	select {
	case a := <-h.dials:
		t.Errorf("proxy dialed %s after the rebound answer, want no dial", a)
	default:
	}
}

func TestPinnedDialRefusesUncheckedAddress(t *testing.T) {
	t.Parallel()
	h := startProxy(t, newFakeGate(nil), nil, nil)
	cases := []struct {
		name string
		ctx  context.Context
		addr string
	}{
		{"no state", context.Background(), "127.0.0.1:1"},
		{"other host", context.WithValue(context.Background(), stateKey{}, &reqState{dest: destination{hostport: "a.example.com:443", addr: netip.MustParseAddrPort("127.0.0.1:1")}}), "b.example.com:443"},
	}
	for _, tc := range cases {
		if _, err := h.p.pinnedDial(tc.ctx, "tcp", tc.addr); !errors.Is(err, ErrUnpinnedDial) {
			t.Errorf("%s: got %v, want ErrUnpinnedDial", tc.name, err)
		}
	}
}

func TestBodyOverLimit(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) { o.MaxBody = 1024 })
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = bytes.NewReader(make([]byte, 4096))
			if chunked {
				body = io.MultiReader(body) // unknown length → chunked
			}
			resp, err := h.client(t, "good", false).Post("https://api.example.com/upload", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("got status %d, want 413", resp.StatusCode)
			}
			if d := decodeDeny(t, resp.Body); !strings.Contains(d.Reason, "max_body") || d.ReceiptID == "" {
				t.Errorf("got body %+v, want a reason naming limits.max_body and a receipt", d)
			}
			gr := h.gate.lastRequest(t)
			if gr.RefusalStatus != http.StatusRequestEntityTooLarge || gr.Body != nil {
				t.Errorf("gate saw RefusalStatus %d, body %d bytes; want 413, nil", gr.RefusalStatus, len(gr.Body))
			}
		})
	}
	// At the limit exactly: forwarded.
	resp, err := h.client(t, "good", false).Post("https://api.example.com/upload", "application/octet-stream", bytes.NewReader(make([]byte, 1024)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || up.hits.Load() != 1 {
		t.Errorf("body at the limit: got %d, upstream hits %d; want 200, 1", resp.StatusCode, up.hits.Load())
	}
}

func TestBodyPassthroughHostForwardsUninspected(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) {
		o.MaxBody = 1024
		o.BodyPassthroughHosts = []string{"api.example.com"}
	})
	body := bytes.Repeat([]byte("abcdefgh"), 1000)
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.com/upload", io.MultiReader(bytes.NewReader(body)))
	resp, err := h.client(t, "good", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || got != string(body) {
		t.Fatalf("got status %d and %d bytes, want 200 and %d bytes", resp.StatusCode, len(got), len(body))
	}
	gr := h.gate.lastRequest(t)
	if gr.Body != nil || gr.Refusal != "" || !strings.Contains(gr.BodyUninspected, "max_body") {
		t.Errorf("gate saw body %d bytes, Refusal %q, BodyUninspected %q; want nil, empty, the proxy's note",
			len(gr.Body), gr.Refusal, gr.BodyUninspected)
	}
	// A small body to the same host is inspected as usual.
	req, _ = http.NewRequest(http.MethodPost, "https://api.example.com/small", strings.NewReader("hi"))
	resp2, err := h.client(t, "good", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if gr := h.gate.lastRequest(t); gr.BodyUninspected != "" || string(gr.Body) != "hi" {
		t.Errorf("small body: gate saw %q, BodyUninspected %q", gr.Body, gr.BodyUninspected)
	}
}

func TestHTTP2ClientThroughConnect(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, nil)
	c := h.client(t, "good", true)
	for i := range 3 {
		resp, err := c.Post("https://api.example.com/h2", "text/plain", strings.NewReader("hello h2 "+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("got client-side protocol %s, want HTTP/2", resp.Proto)
		}
		if resp.StatusCode != http.StatusOK || got != "hello h2 "+strconv.Itoa(i) {
			t.Errorf("got %d %q, want 200 and the echoed body", resp.StatusCode, got)
		}
	}
	if n := g.mediates.Load(); n != 3 {
		t.Errorf("Mediate called %d times, want 3", n)
	}
}

func TestPlainHTTPForwarding(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, false, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, nil, func(o *Options) {
		o.Resolve["plain.example.com:80"] = up.addr()
	})
	resp, err := h.client(t, "good", false).Post("http://plain.example.com/p?q=1", "text/plain", strings.NewReader("plain body"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || got != "plain body" {
		t.Fatalf("got %d %q, want 200 and the body", resp.StatusCode, got)
	}
	if v := resp.Header.Get("X-Upstream-Proxy-Auth"); v != "" {
		t.Errorf("upstream saw Proxy-Authorization %q, want it stripped", v)
	}
	gr := h.gate.lastRequest(t)
	if gr.URL.String() != "http://plain.example.com/p?q=1" || gr.Identity.Agent != "agent-1" {
		t.Errorf("gate saw %s as %+v, want the absolute URL and agent-1", gr.URL, gr.Identity)
	}
	// A request that is not a proxy request gets a JSON 400, not a page.
	r2, err := http.Get("http://" + h.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request to the proxy: got %d, want 400", r2.StatusCode)
	}
}

func TestSSEResponseStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			g := newFakeGate(nil)
			h := startProxy(t, g, up, nil)
			line, br := firstLineWithin(t, h.client(t, "good", h2), "https://api.example.com/events", 5*time.Second)
			if line != "data: first\n" {
				t.Fatalf("got first line %q, want %q", line, "data: first\n")
			}
			release <- struct{}{}
			rest := readAll(t, br)
			if rest != "\ndata: second\n\n" {
				t.Errorf("got rest %q, want the second event", rest)
			}
			obs := g.waitObserve(t)
			if string(obs.Body) != "data: first\n\ndata: second\n\n" || obs.Err != nil {
				t.Errorf("Observe got %q err %v, want both events, nil", obs.Body, obs.Err)
			}
		})
	}
}

func TestPlainHTTPChunkedResponseStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprint(w, "{\"n\":1}\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "{\"n\":2}\n")
	})
	h := startProxy(t, newFakeGate(nil), nil, func(o *Options) { o.Resolve["plain.example.com:80"] = up.addr() })
	line, br := firstLineWithin(t, h.client(t, "good", false), "http://plain.example.com/stream", 5*time.Second)
	if line != "{\"n\":1}\n" {
		t.Fatalf("got first line %q, want the first record", line)
	}
	close(release)
	if rest := readAll(t, br); rest != "{\"n\":2}\n" {
		t.Errorf("got rest %q, want the second record", rest)
	}
}

func TestObserveGetsBoundedCopy(t *testing.T) {
	t.Parallel()
	payload := strings.Repeat("0123456789", 100)
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, payload) })
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) { o.MaxInspectResponse = 64 })
	resp, err := h.client(t, "good", false).Get("https://api.example.com/big")
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp.Body)
	resp.Body.Close()
	if got != payload {
		t.Fatalf("client got %d bytes, want all %d", len(got), len(payload))
	}
	obs := g.waitObserve(t)
	if string(obs.Body) != payload[:64] || !obs.Truncated || obs.StatusCode != 200 || obs.Err != nil {
		t.Errorf("Observe got %d bytes truncated=%v status %d err %v; want the first 64, true, 200, nil",
			len(obs.Body), obs.Truncated, obs.StatusCode, obs.Err)
	}
}

func TestWebSocketUpgradeDenied(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, nil)
	c, br := h.tunnelTLS(t, "api.example.com:443", "api.example.com")
	io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got status %d, want 403", resp.StatusCode)
	}
	if d := decodeDeny(t, resp.Body); !strings.Contains(d.Reason, "websocket_passthrough_hosts") {
		t.Errorf("got reason %q, want it to name limits.websocket_passthrough_hosts", d.Reason)
	}
	if gr := h.gate.lastRequest(t); gr.Refusal != ErrWebSocket.Error() {
		t.Errorf("gate saw Refusal %q, want %q", gr.Refusal, ErrWebSocket)
	}
	if up.hits.Load() != 0 {
		t.Errorf("upstream hit %d times, want 0", up.hits.Load())
	}
}

func TestUntrustedUpstreamCertFails(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(nil)
	h := startProxy(t, g, up, func(o *Options) { o.RootCAs = nil }) // system roots only
	for range 2 {
		resp, err := h.client(t, "good", false).Get("https://api.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		d := decodeDeny(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || d.Error != "upstream_error" || !strings.Contains(d.Reason, "certificate") {
			t.Fatalf("got %d %+v, want 502 naming the certificate", resp.StatusCode, d)
		}
	}
	if up.hits.Load() != 0 {
		t.Errorf("upstream handler ran %d times, want 0", up.hits.Load())
	}
	if obs := g.waitObserve(t); obs.Err == nil || obs.StatusCode != http.StatusBadGateway {
		t.Errorf("Observe got status %d err %v, want 502 and the TLS error", obs.StatusCode, obs.Err)
	}
}

// Not parallel: t.Setenv.
func TestEnvProxyIgnoredByUpstreamTransport(t *testing.T) {
	var envHits atomic.Int64
	envProxy := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		envHits.Add(1)
		http.Error(w, "env proxy", http.StatusTeapot)
	})
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"} {
		t.Setenv(k, "http://"+envProxy.addr())
	}
	t.Setenv("NO_PROXY", "")
	up := newUpstream(t, true, echo)
	plain := newUpstream(t, false, echo)
	h := startProxy(t, newFakeGate(nil), up, func(o *Options) { o.Resolve["plain.example.com:80"] = plain.addr() })
	for _, u := range []string{"https://api.example.com/", "http://plain.example.com/"} {
		resp, err := h.client(t, "good", false).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want 200 straight from the upstream", u, resp.StatusCode)
		}
	}
	if n := envHits.Load(); n != 0 {
		t.Errorf("environment proxy got %d requests, want 0", n)
	}
	if h.p.transport.Proxy != nil {
		t.Error("upstream transport has a Proxy func, want nil")
	}
}

func TestGatePanicDenies(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(func(*gate.Request) *gate.Result { panic("boom") })
	h := startProxy(t, g, up, nil)
	resp, err := h.client(t, "good", false).Get("https://api.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	d := decodeDeny(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || d.Decision == nil || d.Decision.Verdict != aarm.Deny {
		t.Fatalf("got %d %+v, want 403 DENY", resp.StatusCode, d)
	}
	if up.hits.Load() != 0 {
		t.Errorf("upstream hit %d times, want 0", up.hits.Load())
	}
}

func TestGateNilAndTimeoutDeny(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		decide func(*gate.Request) *gate.Result
	}{
		{"nil result", func(*gate.Request) *gate.Result { return nil }},
		{"slow", func(*gate.Request) *gate.Result { time.Sleep(2 * time.Second); return allow() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, true, echo)
			h := startProxy(t, newFakeGate(tc.decide), up, func(o *Options) { o.GateTimeout = 200 * time.Millisecond })
			resp, err := h.client(t, "good", false).Get("https://api.example.com/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || up.hits.Load() != 0 {
				t.Errorf("got %d, upstream hits %d; want 403, 0", resp.StatusCode, up.hits.Load())
			}
		})
	}
}

func TestModifyForwardsEditedBody(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	edited := []byte(`{"title":"bug","labels":["triage"],"assignee":null,"extra":"` + strings.Repeat("y", 300) + `"}`)
	g := newFakeGate(func(r *gate.Request) *gate.Result {
		u := *r.URL
		u.RawQuery = "edited=1"
		hd := r.Header.Clone()
		hd.Set("X-Edited", "yes")
		return &gate.Result{Decision: aarm.Decision{Verdict: aarm.Modify, Reason: "capped"}, ReceiptID: "rcpt-mod", URL: &u, Header: hd, Body: edited}
	})
	var seenQuery atomic.Value
	up2 := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		seenQuery.Store(r.URL.RawQuery + "|" + r.Header.Get("X-Edited"))
		echo(w, r)
	})
	_ = up
	h := startProxy(t, g, up2, nil)
	resp, err := h.client(t, "good", false).Post("https://api.example.com/repos/a/b/issues", "application/json", strings.NewReader(`{"title":"bug"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readAll(t, resp.Body); got != string(edited) {
		t.Fatalf("upstream got body %q, want the edited body", got)
	}
	if cl := resp.Header.Get("X-Upstream-Content-Length"); cl != strconv.Itoa(len(edited)) {
		t.Errorf("upstream saw Content-Length %q, want %d", cl, len(edited))
	}
	if q := seenQuery.Load(); q != "edited=1|yes" {
		t.Errorf("upstream saw query|header %q, want edited=1|yes", q)
	}
}

func TestModifyMayNotChangeDestination(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	g := newFakeGate(func(r *gate.Request) *gate.Result {
		return &gate.Result{Decision: aarm.Decision{Verdict: aarm.Modify}, ReceiptID: "m", URL: &url.URL{Scheme: "https", Host: "evil.example.com", Path: "/"}}
	})
	h := startProxy(t, g, up, func(o *Options) { o.Resolve["evil.example.com:443"] = up.addr() })
	resp, err := h.client(t, "good", false).Get("https://api.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || up.hits.Load() != 0 {
		t.Errorf("got %d, upstream hits %d; want 403, 0", resp.StatusCode, up.hits.Load())
	}
	if obs := g.waitObserve(t); !errors.Is(obs.Err, ErrModifiedDestination) {
		t.Errorf("Observe got err %v, want ErrModifiedDestination", obs.Err)
	}
}

func TestShutdownRefusesNewInnerRequestsAndDrains(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, true, echo)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	g := newFakeGate(func(r *gate.Request) *gate.Result {
		if r.URL.Path == "/held" {
			entered <- struct{}{}
			<-release
		}
		return allow()
	})
	h := startProxy(t, g, up, nil)
	held, other := h.client(t, "good", false), h.client(t, "good", false)
	// Open the second tunnel before shutdown begins.
	if resp, err := other.Get("https://api.example.com/warm"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	heldDone := make(chan int, 1)
	go func() {
		resp, err := held.Get("https://api.example.com/held")
		if err != nil {
			heldDone <- -1
			return
		}
		resp.Body.Close()
		heldDone <- resp.StatusCode
	}()
	<-entered
	shutDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutDone <- h.p.Shutdown(ctx)
	}()
	for !h.p.closing.Load() {
		time.Sleep(time.Millisecond)
	}
	resp, err := other.Get("https://api.example.com/late")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("inner request after shutdown began: got %d, want 503", resp.StatusCode)
	}
	close(release)
	if code := <-heldDone; code != http.StatusOK {
		t.Errorf("in-flight request: got %d, want 200 (allowed to finish)", code)
	}
	if err := <-shutDone; err != nil {
		t.Errorf("Shutdown: %v, want nil", err)
	}
}
