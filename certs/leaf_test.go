package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "example.com", want: "example.com"},
		{in: "API.GitHub.com", want: "api.github.com"},
		{in: "api.github.com.", want: "api.github.com"},
		{in: "api.github.com:443", want: "api.github.com"},
		{in: "API.github.com.:8443", want: "api.github.com"},
		{in: "localhost", want: "localhost"},
		{in: "_dmarc.example.com", want: "_dmarc.example.com"},
		{in: "127.0.0.1", want: "127.0.0.1"},
		{in: "127.0.0.1:8080", want: "127.0.0.1"},
		{in: "::1", want: "::1"},
		{in: "[::1]", want: "::1"},
		{in: "[::1]:443", want: "::1"},
		{in: "[2001:DB8::1]:443", want: "2001:db8::1"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{in: "[::ffff:10.0.0.1]:443", want: "10.0.0.1"},
		{in: "", bad: true},
		{in: ":443", bad: true},
		{in: "example.com:", bad: true},
		{in: "example.com:65536", bad: true},
		{in: "example.com:http", bad: true},
		{in: "example..com", bad: true},
		{in: ".example.com", bad: true},
		{in: "example.com..", bad: true},
		{in: "*.example.com", bad: true},
		{in: "exa mple.com", bad: true},
		{in: "exämple.com", bad: true},
		{in: "example.com/path", bad: true},
		{in: "user@example.com", bad: true},
		{in: "1.2.3", bad: true},
		{in: "01.2.3.4", bad: true},
		{in: "256.1.1.1", bad: true},
		{in: "[::1", bad: true},
		{in: "[::1]x", bad: true},
		{in: "[127.0.0.1]", bad: true},
		{in: "[fe80::1%eth0]:443", bad: true},
		{in: "fe80::1%eth0", bad: true},
		{in: strings.Repeat("a", 64) + ".com", bad: true},
		{in: strings.Repeat("abcdefg.", 40) + "com", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizeHost(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrInvalidHost) {
					t.Errorf("got (%q, %v), want ErrInvalidHost", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got (%q, %v), want (%q, nil)", got, err, tc.want)
			}
		})
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"example.com", "API.x.io.:443", "[::1]:80", "::ffff:1.2.3.4", "1.2.3.4:0", "a_b.c", "[fe80::1%25x]", "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeHost(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidHost) {
				t.Fatalf("NormalizeHost(%q): error %v does not wrap ErrInvalidHost", in, err)
			}
			return
		}
		again, err := NormalizeHost(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeHost(%q) = %q, but NormalizeHost(%q) = (%q, %v): not idempotent", in, got, got, again, err)
		}
		if got != strings.ToLower(got) || strings.HasSuffix(got, ".") || len(got) > 253 {
			t.Fatalf("NormalizeHost(%q) = %q: not canonical", in, got)
		}
	})
}

func TestCertForVerifiesAgainstCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cases := []struct {
		host   string
		verify string // the name a client would check
		isIP   bool
	}{
		{"example.com", "example.com", false},
		{"API.GitHub.com.:443", "api.github.com", false},
		{"localhost:8443", "localhost", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"[::1]:443", "::1", true},
		{"2001:db8::7", "2001:db8::7", true},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			t.Parallel()
			before := time.Now()
			c, err := ca.CertFor(tc.host)
			if err != nil {
				t.Fatalf("CertFor: %v", err)
			}
			if len(c.Certificate) != 2 || c.Leaf == nil {
				t.Fatalf("got chain of %d with Leaf=%v, want leaf+CA with Leaf set", len(c.Certificate), c.Leaf != nil)
			}
			if string(c.Certificate[1]) != string(ca.Cert().Raw) {
				t.Error("second certificate in the chain is not the CA")
			}
			leaf := c.Leaf
			if _, err := leaf.Verify(x509.VerifyOptions{
				DNSName:   tc.verify,
				Roots:     ca.Pool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("Verify for %q: %v", tc.verify, err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: ca.Pool()}); err == nil {
				t.Error("leaf verified for other.example, want a hostname error")
			}
			if got := len(leaf.IPAddresses) == 1 && len(leaf.DNSNames) == 0; got != tc.isIP {
				t.Errorf("got IP SANs %v and DNS SANs %v, want isIP=%v", leaf.IPAddresses, leaf.DNSNames, tc.isIP)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got != LeafValidity+Backdate {
				t.Errorf("leaf lifetime: got %v, want %v", got, LeafValidity+Backdate)
			}
			if !leaf.NotBefore.Before(before) {
				t.Errorf("leaf NotBefore %v is not backdated before %v", leaf.NotBefore, before)
			}
		})
	}
}

// A real TLS handshake over an in-memory pipe: the client trusts only the CA
// and negotiates h2 from the ALPN list given to TLSConfigFor.
func TestTLSConfigForHandshake(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	srvConf, err := ca.TLSConfigFor("api.example.com:443", []string{"h2", "http/1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if srvConf.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion: got %x, want TLS 1.2", srvConf.MinVersion)
	}
	cConn, sConn := net.Pipe()
	defer cConn.Close()
	defer sConn.Close()
	srv := tls.Server(sConn, srvConf)
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(t.Context()) }()
	cli := tls.Client(cConn, &tls.Config{RootCAs: ca.Pool(), ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}})
	if err := cli.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := cli.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("ALPN: got %q, want h2", got)
	}

	def, err := ca.TLSConfig("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := def.NextProtos; len(got) != 1 || got[0] != "http/1.1" {
		t.Errorf("TLSConfig NextProtos: got %v, want [http/1.1]", got)
	}
	def.NextProtos[0] = "spoiled"
	if again, _ := ca.TLSConfig("api.example.com"); again.NextProtos[0] != "http/1.1" {
		t.Error("modifying one TLSConfig's NextProtos changed the next one")
	}
}

func TestCertForRejectsBadHost(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	for _, h := range []string{"", "*.example.com", "a..b", "[fe80::1%eth0]"} {
		if _, err := ca.CertFor(h); !errors.Is(err, ErrInvalidHost) {
			t.Errorf("CertFor(%q): got %v, want ErrInvalidHost", h, err)
		}
		if _, err := ca.TLSConfig(h); !errors.Is(err, ErrInvalidHost) {
			t.Errorf("TLSConfig(%q): got %v, want ErrInvalidHost", h, err)
		}
	}
	if got := ca.Minted(); got != 0 {
		t.Errorf("Minted: got %d, want 0", got)
	}
}

func TestCertForCachesBySpelling(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	first, err := ca.CertFor("example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"example.com", "EXAMPLE.com", "example.com.", "example.com:443"} {
		c, err := ca.CertFor(h)
		if err != nil {
			t.Fatal(err)
		}
		if c != first {
			t.Errorf("CertFor(%q) returned a different certificate, want the cached one", h)
		}
	}
	if got := ca.Minted(); got != 1 {
		t.Errorf("Minted: got %d, want 1", got)
	}
}

func TestCertForMintsOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	const n = 64
	var wg sync.WaitGroup
	got := make([]*tls.Certificate, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := ca.CertFor("burst.example.com")
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		})
	}
	close(start)
	wg.Wait()
	if m := ca.Minted(); m != 1 {
		t.Errorf("Minted after %d concurrent requests for one host: got %d, want 1", n, m)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got a different certificate", i)
		}
	}
}

func TestCertForLRUEviction(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, WithCacheSize(2))
	mint := func(h string) {
		t.Helper()
		if _, err := ca.CertFor(h); err != nil {
			t.Fatal(err)
		}
	}
	mint("a.test")
	mint("b.test")
	mint("a.test") // a is now most recently used
	mint("c.test") // evicts b
	if got := ca.Minted(); got != 3 {
		t.Fatalf("Minted: got %d, want 3", got)
	}
	mint("a.test")
	if got := ca.Minted(); got != 3 {
		t.Errorf("a.test after eviction of b: got %d mints, want 3 (a still cached)", got)
	}
	mint("b.test")
	if got := ca.Minted(); got != 4 {
		t.Errorf("b.test after its eviction: got %d mints, want 4 (re-minted)", got)
	}
	if got := ca.cache.Len(); got != 2 {
		t.Errorf("cache length: got %d, want 2", got)
	}
}

func TestCertForRemintsNearExpiry(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	clock := &fakeClock{t: time.Now()}
	ca.now = clock.now
	first, err := ca.CertFor("example.com")
	if err != nil {
		t.Fatal(err)
	}
	clock.t = first.Leaf.NotAfter.Add(-RenewBefore - time.Second)
	c, err := ca.CertFor("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c != first || ca.Minted() != 1 {
		t.Errorf("just outside the renewal window: got a new leaf (minted %d), want the cached one", ca.Minted())
	}
	clock.t = first.Leaf.NotAfter.Add(-RenewBefore + time.Second)
	c, err = ca.CertFor("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c == first || ca.Minted() != 2 {
		t.Fatalf("inside the renewal window: got the cached leaf (minted %d), want a new one", ca.Minted())
	}
	if !c.Leaf.NotAfter.After(first.Leaf.NotAfter) || c.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Errorf("re-minted leaf: got NotAfter %v serial %v, want later than %v and a new serial",
			c.Leaf.NotAfter, c.Leaf.SerialNumber, first.Leaf.NotAfter)
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	clock := &fakeClock{t: ca.Cert().NotAfter.Add(-2 * time.Hour)}
	ca.now = clock.now
	c, err := ca.CertFor("late.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.NotAfter.Equal(ca.Cert().NotAfter) {
		t.Errorf("leaf NotAfter: got %v, want clamped to the CA's %v", c.Leaf.NotAfter, ca.Cert().NotAfter)
	}
	clock.t = ca.Cert().NotAfter.Add(time.Second)
	if _, err := ca.CertFor("after.example.com"); !errors.Is(err, ErrInvalidCA) {
		t.Errorf("after CA expiry: got %v, want ErrInvalidCA", err)
	}
}

func TestLeafValidityInjectable(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	ca.leafValidity = 3 * time.Hour
	c, err := ca.CertFor("short.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore); got != 3*time.Hour+Backdate {
		t.Errorf("leaf lifetime: got %v, want %v", got, 3*time.Hour+Backdate)
	}
}

func BenchmarkCertForCached(b *testing.B) {
	ca := newTestCA(b)
	if _, err := ca.CertFor("cached.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.CertFor("cached.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCertForNewHost(b *testing.B) {
	ca := newTestCA(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := ca.CertFor(fmt.Sprintf("h%d.example.com", i)); err != nil {
			b.Fatal(err)
		}
	}
}
