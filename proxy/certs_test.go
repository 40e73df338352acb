package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm/certs"
)

// The local CA satisfies the interface the proxy consumes.
var _ CertSource = (*certs.CA)(nil)

func TestWithLocalCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.Create(dir, "proxy test"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, true, echo)
	h := startProxy(t, newFakeGate(nil), up, func(o *Options) { o.CA = ca })
	h.ca.pool = ca.Pool() // clients trust the local CA, as aarm exec arranges
	for _, h2 := range []bool{false, true} {
		resp, err := h.client(t, "good", h2).Post("https://api.example.com/x", "text/plain", strings.NewReader("via certs"))
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		got := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || got != "via certs" || (resp.ProtoMajor == 2) != h2 {
			t.Errorf("h2=%v: got %d %q over %s, want 200, the body, the negotiated protocol", h2, resp.StatusCode, got, resp.Proto)
		}
	}
}
