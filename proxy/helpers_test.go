package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// testCA is a throwaway CA standing in for certs.CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	mu   sync.Mutex
	leaf map[string]*tls.Certificate
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "aarm proxy test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, leaf: map[string]*tls.Certificate{}}
}

func (ca *testCA) TLSConfigFor(host string, nextProtos []string) (*tls.Config, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	c, ok := ca.leaf[host]
	if !ok {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: host},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		} else {
			tmpl.DNSNames = []string{host}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
		if err != nil {
			return nil, err
		}
		c = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		ca.leaf[host] = c
	}
	return &tls.Config{Certificates: []tls.Certificate{*c}, NextProtos: nextProtos, MinVersion: tls.VersionTLS12}, nil
}

// fakeGate authenticates the password "good" and answers Mediate with
// decide (ALLOW when nil), recording every call.
type fakeGate struct {
	decide func(*gate.Request) *gate.Result

	mu       sync.Mutex
	requests []*gate.Request
	observed []*gate.Response
	obsCh    chan *gate.Response
	mediates atomic.Int64
}

func newFakeGate(decide func(*gate.Request) *gate.Result) *fakeGate {
	return &fakeGate{decide: decide, obsCh: make(chan *gate.Response, 64)}
}

var errBadToken = errors.New("session token missing, expired or revoked")

func (g *fakeGate) Authenticate(h string) (aarm.Identity, error) {
	const prefix = "Basic "
	if !strings.HasPrefix(h, prefix) {
		return aarm.Identity{}, errBadToken
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return aarm.Identity{}, errBadToken
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	if pass != "good" {
		return aarm.Identity{}, errBadToken
	}
	return aarm.Identity{Agent: user, Session: "sess-1", Verified: true}, nil
}

func (g *fakeGate) Mediate(ctx context.Context, req *gate.Request) *gate.Result {
	g.mediates.Add(1)
	g.mu.Lock()
	g.requests = append(g.requests, req)
	g.mu.Unlock()
	if req.Refusal != "" {
		return &gate.Result{Decision: aarm.Decision{Reason: req.Refusal}, ReceiptID: "rcpt-refusal", Status: req.RefusalStatus}
	}
	if g.decide != nil {
		return g.decide(req)
	}
	return allow()
}

func (g *fakeGate) Observe(_ context.Context, _ *gate.Result, resp *gate.Response) {
	g.mu.Lock()
	g.observed = append(g.observed, resp)
	g.mu.Unlock()
	select {
	case g.obsCh <- resp:
	default: // nobody waits (benchmarks)
	}
}

func (g *fakeGate) lastRequest(t *testing.T) *gate.Request {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.requests) == 0 {
		t.Fatal("gate saw no request, want one")
	}
	return g.requests[len(g.requests)-1]
}

func (g *fakeGate) waitObserve(t *testing.T) *gate.Response {
	t.Helper()
	select {
	case r := <-g.obsCh:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Observe was not called within 10s")
		return nil
	}
}

func allow() *gate.Result {
	return &gate.Result{Decision: aarm.Decision{Verdict: aarm.Allow, Reason: "ok"}, ReceiptID: "rcpt-allow"}
}

// upstream is a TLS (or plain) server standing in for a real API.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newUpstream(t testing.TB, tlsOn bool, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		h(w, r)
	}))
	if tlsOn {
		u.srv.EnableHTTP2 = true
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

func (u *upstream) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(u.srv.Certificate())
	return p
}

func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Upstream-Host", r.Host)
	w.Header().Set("X-Upstream-Content-Length", r.Header.Get("Content-Length"))
	w.Header().Set("X-Upstream-Proxy-Auth", r.Header.Get("Proxy-Authorization"))
	w.Header().Set("X-Upstream-Proto", r.Proto)
	_, _ = io.Copy(w, r.Body)
}

// harness is a running proxy with its gate and CA.
type harness struct {
	p     *Proxy
	gate  *fakeGate
	ca    *testCA
	addr  string
	dials chan string
}

// startProxy starts a proxy on loopback. The upstream (when non-nil) is
// reachable as api.example.com:443 through the resolve map and trusted.
func startProxy(t testing.TB, g *fakeGate, up *upstream, mod func(*Options)) *harness {
	return startProxyWith(t, g, g, up, mod)
}

// startProxyWith is startProxy with a gate that wraps the fake.
func startProxyWith(t testing.TB, g *fakeGate, pg Gate, up *upstream, mod func(*Options)) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	opts := Options{
		CA:          ca,
		Gate:        pg,
		Logger:      slog.New(slog.DiscardHandler),
		Resolve:     map[string]string{},
		RefuseAddrs: []string{ln.Addr().String()},
		GateTimeout: 5 * time.Second,
		Resolver:    noDNS{},
	}
	if up != nil {
		opts.Resolve["api.example.com:443"] = up.addr()
		opts.RootCAs = up.pool()
	} else {
		opts.RootCAs = x509.NewCertPool()
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{p: p, gate: g, ca: ca, addr: ln.Addr().String(), dials: make(chan string, 128)}
	inner := p.dial
	p.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case h.dials <- addr:
		default:
		}
		return inner(ctx, network, addr)
	}
	go func() { _ = p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return h
}

// client returns an HTTP client that uses the proxy with the given password.
func (h *harness) client(t testing.TB, password string, h2 bool) *http.Client {
	t.Helper()
	pu := &url.URL{Scheme: "http", Host: h.addr}
	if password != "" {
		pu.User = url.UserPassword("agent-1", password)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyURL(pu),
		TLSClientConfig:     &tls.Config{RootCAs: h.ca.pool},
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: 100,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// rawConnect sends a CONNECT and returns the proxy's answer and the conn.
func (h *harness) rawConnect(t *testing.T, target, password string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if password != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("agent-1:"+password)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("read CONNECT response: %v", err)
	}
	return resp, c, br
}

// tunnelTLS opens a CONNECT tunnel and a TLS session inside it.
func (h *harness) tunnelTLS(t *testing.T, target, serverName string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	resp, c, _ := h.rawConnect(t, target, "good")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: got status %d, want 200", target, resp.StatusCode)
	}
	tc := tls.Client(c, &tls.Config{ServerName: serverName, RootCAs: h.ca.pool, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS inside tunnel: %v", err)
	}
	return tc, bufio.NewReader(tc)
}

// noDNS fails every lookup: tests never reach real DNS.
type noDNS struct{}

func (noDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no DNS in tests", Name: host, IsNotFound: true}
}

// scriptedDNS answers lookups from a list of answers, one per call; the
// last answer repeats.
type scriptedDNS struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	calls   int
}

func (s *scriptedDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.answers)-1)
	s.calls++
	return s.answers[i], nil
}

func (s *scriptedDNS) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// firstLineWithin GETs url and returns the first line of the body, failing
// the test when headers and that line do not arrive within d (the upstreams
// in streaming tests hold the rest of the body back until released).
func firstLineWithin(t *testing.T, c *http.Client, url string, d time.Duration) (string, *bufio.Reader) {
	t.Helper()
	type result struct {
		line string
		br   *bufio.Reader
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			ch <- result{err: err}
			return
		}
		t.Cleanup(func() { resp.Body.Close() })
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		ch <- result{line, br, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("GET %s: %v", url, r.err)
		}
		return r.line, r.br
	case <-time.After(d):
		t.Fatalf("GET %s: first line did not arrive within %v while the upstream was still open: response is buffered, want streamed", url, d)
		return "", nil
	}
}
