// Package e2e drives the built aarm binary with real clients (curl, Python's
// standard library, Go's net/http) against local TLS servers standing in for
// real APIs. Nothing here reaches beyond loopback: the proxy is pointed at the
// stand-ins through its upstream.resolve map and trusts them through
// upstream.ca_file (DESIGN.md §7.9).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// aarmBin is the binary built once for the whole package.
var aarmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aarm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aarmBin = filepath.Join(dir, "aarm")
	build := exec.Command("go", "build", "-o", aarmBin, "../cmd/aarm")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build aarm:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// upstreamCA signs the stand-in servers' certificates; aarm trusts it through
// upstream.ca_file, the clients never see it (they trust aarm's CA).
type upstreamCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newUpstreamCA(t testing.TB) *upstreamCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &upstreamCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *upstreamCA) leaf(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		DNSNames: hosts, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// hit is one request an upstream stand-in received.
type hit struct {
	Method, Path, Host string
	Header             http.Header
	Body               []byte
}

// upstream is a local TLS server standing in for a real API host.
type upstream struct {
	host string
	srv  *httptest.Server
	n    atomic.Int64
	mu   sync.Mutex
	hits []hit
	// respond writes the answer; the default echoes the request as JSON.
	respond func(w http.ResponseWriter, r *http.Request, body []byte)
}

func (u *upstream) Hits() []hit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]hit(nil), u.hits...)
}

func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

func newUpstream(t testing.TB, ca *upstreamCA, host string) *upstream {
	t.Helper()
	u := &upstream{host: host}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.n.Add(1)
		u.mu.Lock()
		u.hits = append(u.hits, hit{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body})
		u.mu.Unlock()
		if u.respond != nil {
			u.respond(w, r, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"echo": string(body), "method": r.Method, "path": r.URL.RequestURI(), "host": r.Host})
	}))
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, host)}, NextProtos: []string{"h2", "http/1.1"}}
	u.srv.EnableHTTP2 = true
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

// instance is one running aarm.
type instance struct {
	dir        string
	proxy      string // host:port
	admin      string // host:port
	adminToken string
	cmd        *exec.Cmd
	logs       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// aarmCmd runs the binary to completion and returns its output and exit code.
func aarmCmd(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(aarmBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("aarm %v: %v", args, err)
	}
	return string(out), code
}

// startAarm initialises a data dir, writes config (the YAML given, with the
// upstream stand-ins resolved and trusted) and runs aarm on free ports.
func startAarm(t testing.TB, ca *upstreamCA, ups []*upstream, extraConfig string, policy string) *instance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if out, code := aarmCmd(t, nil, "init", "--dir", dir); code != 0 {
		t.Fatalf("aarm init: exit %d\n%s", code, out)
	}
	caFile := filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	logLevel := "debug"
	if strings.HasPrefix(extraConfig, "log-level: ") { // a benchmark quietens the log
		first, rest, _ := strings.Cut(extraConfig, "\n")
		logLevel, extraConfig = strings.TrimPrefix(first, "log-level: "), rest
	}
	fmt.Fprintf(&cfg, "version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\nlog:\n  format: json\n  level: %s\nupstream:\n  ca_file: %s\n  resolve:\n", logLevel, caFile)
	for _, u := range ups {
		fmt.Fprintf(&cfg, "    %q: %q\n", u.host+":443", u.addr())
	}
	cfg.WriteString(extraConfig)
	if err := os.WriteFile(filepath.Join(dir, "aarm.yaml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if policy != "" {
		if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inst := &instance{dir: dir, logs: &syncBuffer{}}
	inst.cmd = exec.Command(aarmBin, "run", "--dir", dir)
	inst.cmd.Stdout, inst.cmd.Stderr = inst.logs, inst.logs
	if err := inst.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- inst.cmd.Wait() }()
	t.Cleanup(func() {
		_ = inst.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = inst.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("aarm logs:\n%s", inst.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "run", "addr.json"))
		if err == nil {
			var a struct{ Proxy, Admin string }
			if json.Unmarshal(b, &a) == nil && a.Proxy != "" {
				inst.proxy, inst.admin = a.Proxy, a.Admin
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("aarm run exited early: %v\n%s", err, inst.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("aarm did not start in time\n%s", inst.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	inst.adminToken = strings.TrimSpace(string(tok))
	return inst
}

func (in *instance) caFile() string { return filepath.Join(in.dir, "ca.pem") }

// api calls the admin API directly (never through a proxy).
func (in *instance) api(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+in.admin+path, r)
	req.Header.Set("Authorization", "Bearer "+in.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		data, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// session is a started session with its agent environment.
type session struct {
	ID    string            `json:"id"`
	Token string            `json:"token"`
	Env   map[string]string `json:"env"`
}

func (in *instance) startSession(t testing.TB, user, agent, intent string, scope ...string) session {
	t.Helper()
	var s session
	if code := in.api(t, http.MethodPost, "/api/v1/sessions", map[string]any{"user": user, "agent": agent, "intent": intent, "scope": scope}, &s); code != http.StatusCreated {
		t.Fatalf("start session: status %d", code)
	}
	if s.Token == "" || s.Env["HTTPS_PROXY"] == "" {
		t.Fatalf("session without token or env: %+v", s)
	}
	return s
}

func (s session) envList() []string {
	var env []string
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// goClient is Go's net/http configured the way the env lines say: the proxy
// URL with the token and the aarm CA trusted.
func (in *instance) goClient(t testing.TB, token string, http2 bool) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(in.caFile())
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	pu := &url.URL{Scheme: "http", Host: in.proxy}
	if token != "" {
		pu.User = url.UserPassword("agent", token)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: http2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// logLines returns the JSON log lines with msg == "decision".
func (in *instance) decisions() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}

// waitDecision waits for a decision log line matching pred.
func (in *instance) waitDecision(t testing.TB, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range in.decisions() {
			if pred(d) {
				return d
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no matching decision line; decisions: %v", in.decisions())
	return nil
}

func runCmd(ctx context.Context, env []string, name string, args ...string) (string, int, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}

// cleanEnv is the environment without any proxy settings of the machine.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE":
			continue
		}
		env = append(env, kv)
	}
	return env
}
