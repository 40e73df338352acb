// Package proxy is aarm's egress forward proxy: it terminates every CONNECT
// with aarm's own CA (never goproxy's built-in one), turns each inner request
// into a call to the gate, and applies the gate's verdict before anything
// leaves (DESIGN.md §3, §7).
//
// Division of labour with github.com/elazarl/goproxy (v1.9.3): goproxy parses
// CONNECT, hijacks the client connection, runs the MITM TLS handshake with the
// tls.Config this package supplies (ALPN h2 and http/1.1; goproxy serves h2
// streams with x/net/http2 when AllowHTTP2 is set), reads inner HTTP/1.1 and
// HTTP/2 requests and plain-HTTP proxy requests, and streams responses back.
// This package supplies everything goproxy must not decide: proxy
// authentication, the destination policy, body limits, the gate call, the
// upstream transport (verified TLS, no environment proxy, dials pinned to the
// checked address), the bounded response copy, graceful shutdown, which
// goproxy does not offer (its hijacked tunnels are tracked here through the
// listener, see Serve), and noticing an HTTP/1.1 client inside a tunnel that
// goes away while its request is held or its response streams, which
// goproxy's MITM loop does not report (clientgone.go).
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// Defaults for Options left zero.
const (
	DefaultMaxBody               = 8 << 20
	DefaultMaxInspectResponse    = 1 << 20
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	// DefaultReadHeaderTimeout bounds how long a client may take to send the
	// headers of a request to the proxy listener.
	DefaultReadHeaderTimeout = 30 * time.Second
)

const internalHeaderPrefix = "X-Aarm-Internal-"

// CertSource mints the MITM certificate for a host. *certs.CA implements it.
type CertSource interface {
	TLSConfigFor(host string, nextProtos []string) (*tls.Config, error)
}

// Gate is the AARM control plane as the proxy uses it.
type Gate interface {
	// Authenticate validates the Proxy-Authorization header value. The
	// error's message is shown to the client in the 407 body.
	Authenticate(proxyAuthorization string) (aarm.Identity, error)
	// Mediate judges one request; it never returns nil, never panics on
	// purpose (the proxy recovers anyway → DENY), and may block (holds)
	// until ctx is done.
	Mediate(ctx context.Context, req *gate.Request) *gate.Result
	// Observe reports the response once streamed (or failed); it may be
	// called from the streaming goroutine after the last byte.
	Observe(ctx context.Context, res *gate.Result, resp *gate.Response)
}

// HoldReporter is optionally implemented by a Gate that can say whether a
// Mediate call in progress is a hold (STEP_UP or DEFER waiting on a person or
// on context). Options.GateTimeout does not cut a held call short; without
// this interface every Mediate call is bounded by GateTimeout.
type HoldReporter interface {
	Held(req *gate.Request) bool
}

// Options configure a Proxy. CA and Gate are required.
type Options struct {
	CA     CertSource
	Gate   Gate
	Logger *slog.Logger
	// Resolve maps "host:port" to "ip:port", like curl's --resolve. Targets
	// are explicit configuration and may be private.
	Resolve map[string]string
	// Resolver resolves destination names; nil means net.DefaultResolver.
	Resolver Resolver
	// RootCAs verifies upstream TLS; nil means the system roots. The caller
	// adds upstream.ca_file.
	RootCAs *x509.CertPool
	// AllowPrivate lists private destinations that may be reached: CIDRs,
	// IPs, or host[:port] names.
	AllowPrivate []string
	// MaxBody bounds request bodies (default 8 MiB); MaxInspectResponse
	// bounds the response copy handed to Observe (default 1 MiB).
	MaxBody, MaxInspectResponse int64
	// BodyPassthroughHosts are hosts whose over-limit bodies are forwarded
	// uninspected (the gate still decides, told by gate.Request.BodyUninspected).
	BodyPassthroughHosts []string
	// WebSocketPassthroughHosts are hosts whose WebSocket upgrades are let
	// through (frames are not inspected).
	WebSocketPassthroughHosts []string
	// RefuseAddrs are the proxy's own listen addresses (proxy and admin),
	// host:port. A 0.0.0.0 or :: listener matches every local address with
	// that port.
	RefuseAddrs []string
	// Upstream timeouts; zero means the package default.
	DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout, IdleConnTimeout time.Duration
	// GateTimeout bounds a Mediate call that is not a hold; 0 means no bound
	// beyond the client's context.
	GateTimeout time.Duration
}

// Proxy is the forward proxy. Create it with New.
type Proxy struct {
	gate         Gate
	ca           CertSource
	log          *slog.Logger
	gp           *goproxy.ProxyHttpServer
	transport    *http.Transport
	resolver     Resolver
	resolve      map[string]netip.AddrPort
	allowPrivate allowList
	self         selfAddrs
	bodyPass     map[string]bool
	wsPass       map[string]bool
	maxBody      int64
	maxInspect   int64
	gateTimeout  time.Duration

	closing  atomic.Bool
	inflight sync.WaitGroup

	mu      sync.Mutex
	servers []*http.Server
	tunnels map[net.Conn]struct{}

	// dial is the network dialer behind the pinned upstream dial (tests
	// observe which address was dialed).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New validates opts and builds a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.CA == nil {
		return nil, fmt.Errorf("%w: CA is required", ErrConfig)
	}
	if opts.Gate == nil {
		return nil, fmt.Errorf("%w: Gate is required", ErrConfig)
	}
	p := &Proxy{
		gate:        opts.Gate,
		ca:          opts.CA,
		log:         opts.Logger,
		resolver:    opts.Resolver,
		resolve:     map[string]netip.AddrPort{},
		bodyPass:    hostSet(opts.BodyPassthroughHosts),
		wsPass:      hostSet(opts.WebSocketPassthroughHosts),
		maxBody:     orDefault(opts.MaxBody, DefaultMaxBody),
		maxInspect:  orDefault(opts.MaxInspectResponse, DefaultMaxInspectResponse),
		gateTimeout: opts.GateTimeout,
		tunnels:     map[net.Conn]struct{}{},
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	for k, v := range opts.Resolve {
		hp, err := canonicalHostPort(k, "")
		if err != nil || !strings.Contains(k, ":") {
			return nil, fmt.Errorf("%w: upstream.resolve key %q is not host:port", ErrConfig, k)
		}
		ap, err := netip.ParseAddrPort(v)
		if err != nil {
			return nil, fmt.Errorf("%w: upstream.resolve %q → %q: want ip:port: %v", ErrConfig, k, v, err)
		}
		p.resolve[hp] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	var err error
	if p.allowPrivate, err = newAllowList(opts.AllowPrivate); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.self, err = newSelfAddrs(ctx, p.resolver, opts.RefuseAddrs); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: orDefault(opts.DialTimeout, DefaultDialTimeout), KeepAlive: 30 * time.Second}
	p.dial = dialer.DialContext
	p.transport = p.newTransport(opts)

	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slogPrintf{p.log}
	gp.Verbose = false
	// goproxy's defaults skip upstream TLS verification and honour the
	// environment's proxy; replace both so no path can fall back to them.
	gp.Tr = p.transport
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(*http.Request, string, string) (net.Conn, error) {
		return nil, errors.New("opaque CONNECT tunnels are not offered: every tunnel is inspected")
	}
	gp.AllowHTTP2 = true
	gp.NonproxyHandler = http.HandlerFunc(p.nonProxy)
	gp.OnRequest().HandleConnectFunc(p.safeConnect)
	gp.OnRequest().DoFunc(p.handleRequest)
	p.gp = gp
	return p, nil
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func hostSet(hosts []string) map[string]bool {
	m := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		m[normHost(h)] = true
	}
	return m
}

// listed reports whether hostport or its host alone is in set.
func listed(set map[string]bool, hostport string) bool {
	if set[hostport] {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && set[host]
}

// ServeHTTP handles one request on the proxy listener: CONNECT tunnels and
// absolute-form plain-HTTP proxy requests.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.gp.ServeHTTP(w, r)
}

// Serve accepts proxy connections on ln until Shutdown. Connections accepted
// here are tracked so that Shutdown can close hijacked CONNECT tunnels.
func (p *Proxy) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		// The accepted connection travels in every request's context so
		// that a CONNECT can hand its tunnel's connection to the inner
		// requests (tunnel.conn, see clientgone.go).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*trackedConn); ok {
				return context.WithValue(ctx, connKey{}, tc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				p.mu.Lock()
				if tc, ok := c.(*trackedConn); ok && !tc.closed.Load() {
					p.tunnels[tc] = struct{}{}
				}
				p.mu.Unlock()
			}
		},
	}
	p.mu.Lock()
	if p.closing.Load() {
		p.mu.Unlock()
		return http.ErrServerClosed
	}
	p.servers = append(p.servers, srv)
	p.mu.Unlock()
	return srv.Serve(&trackingListener{Listener: ln, p: p})
}

// Shutdown stops accepting, refuses inner requests that arrive from now on
// (503), lets in-flight requests finish until ctx ends, then closes every
// tunnel. It returns ctx.Err() when in-flight requests had to be cut off.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	p.mu.Lock()
	servers := append([]*http.Server(nil), p.servers...)
	p.mu.Unlock()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	p.mu.Lock()
	tunnels := make([]net.Conn, 0, len(p.tunnels))
	for c := range p.tunnels {
		tunnels = append(tunnels, c)
	}
	p.mu.Unlock()
	for _, c := range tunnels {
		_ = c.Close() // trackedConn.Close takes p.mu
	}
	p.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// trackingListener wraps accepted connections so hijacked tunnels can be
// found (ConnState) and forgotten when goproxy closes them.
type trackingListener struct {
	net.Listener
	p *Proxy
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, p: l.p}, nil
}

// trackedConn is one accepted proxy connection. Besides letting Shutdown
// find hijacked tunnels, it lets a client-gone watcher (clientgone.go) read
// ahead of goproxy's MITM loop: bytes the watcher read are kept in pending
// and handed out first by Read, so nothing the client sent is lost.
type trackedConn struct {
	net.Conn
	p      *Proxy
	closed atomic.Bool

	// watching is set while a connWatch owns reads of Conn.
	watching atomic.Bool
	// hasPending says pending holds bytes; it keeps the mutex off the
	// read path of connections that were never watched.
	hasPending atomic.Bool
	pmu        sync.Mutex
	pending    []byte
}

// connKey is the request-context key of the *trackedConn a request arrived on.
type connKey struct{}

// Read returns bytes a watcher read ahead first, then reads the connection.
func (c *trackedConn) Read(b []byte) (int, error) {
	if c.hasPending.Load() {
		c.pmu.Lock()
		if len(c.pending) > 0 {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			if len(c.pending) == 0 {
				c.pending = nil
				c.hasPending.Store(false)
			}
			c.pmu.Unlock()
			return n, nil
		}
		c.pmu.Unlock()
	}
	return c.Conn.Read(b)
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.p.mu.Lock()
		delete(c.p.tunnels, c)
		c.p.mu.Unlock()
	}
	return c.Conn.Close()
}

// CloseWrite and CloseRead keep the half-close ability of the TCP conn.
func (c *trackedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Close()
}

// CloseRead half-closes the read side when the underlying conn supports it.
func (c *trackedConn) CloseRead() error {
	if hc, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return hc.CloseRead()
	}
	return nil
}

// safeConnect keeps a bug (or a panicking gate method) from taking the
// process down; handleRequest recovers the same way, since goproxy runs MITM
// tunnels in goroutines of its own without recover. A panic refuses.
func (p *Proxy) safeConnect(host string, ctx *goproxy.ProxyCtx) (a *goproxy.ConnectAction, h string) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("panic handling CONNECT", "panic", fmt.Sprint(v), "host", host)
			resp := jsonResponse(ctx.Req, http.StatusForbidden, denyBody{Error: "denied", Reason: "internal error"})
			resp.Close = true
			ctx.Resp = resp
			a, h = &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
		}
	}()
	return p.handleConnect(host, ctx)
}

// nonProxy answers requests that are not proxy requests (origin-form on the
// proxy listener): the proxy serves nothing of its own.
func (p *Proxy) nonProxy(w http.ResponseWriter, r *http.Request) {
	resp := jsonResponse(r, http.StatusBadRequest, denyBody{
		Error:  "not_a_proxy_request",
		Reason: "this is the aarm egress proxy; it serves no pages of its own",
		Fix:    "send requests through it with HTTPS_PROXY=http://AGENT:TOKEN@HOST:PORT",
	})
	writeResponse(w, resp)
}

func writeResponse(w http.ResponseWriter, resp *http.Response) {
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = copyBody(w, resp.Body)
	_ = resp.Body.Close()
}

// slogPrintf adapts goproxy's Printf logger to slog. goproxy logs only
// warnings when Verbose is false.
type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	s.l.Debug("goproxy", "msg", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
