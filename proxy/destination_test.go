package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIsBlockedAddr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"10.0.0.1", true},
		{"172.16.5.4", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"100.64.0.1", true},
		{"100.127.255.254", true},
		{"100.128.0.1", false},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"198.18.0.1", true},
		{"93.184.216.34", false},
		{"8.8.8.8", false},
		{"::1", true},
		{"::", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.1.1", true},
		{"::ffff:8.8.8.8", false},
		{"::127.0.0.1", true},
		{"fe80::1", true},
		{"fd12:3456::1", true},
		{"fc00::1", true},
		{"ff02::1", true},
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"64:ff9b::808:808", false},  // NAT64 of 8.8.8.8
		{"2002:a00:1::1", true},      // 6to4 of 10.0.0.1
		{"2606:4700:4700::1111", false},
	}
	for _, tc := range cases {
		if got := isBlockedAddr(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("isBlockedAddr(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

func TestCheckDestination(t *testing.T) {
	t.Parallel()
	p := &Proxy{
		resolve:  map[string]netip.AddrPort{"api.example.com:443": netip.MustParseAddrPort("127.0.0.1:9443"), "admin.example.com:443": netip.MustParseAddrPort("127.0.0.1:8081")},
		resolver: &scriptedDNS{answers: [][]netip.Addr{addrs("10.1.1.1")}},
	}
	var err error
	if p.allowPrivate, err = newAllowList([]string{"10.2.0.0/16", "192.168.7.7", "nas.lan", "db.lan:5432"}); err != nil {
		t.Fatal(err)
	}
	if p.self, err = newSelfAddrs(context.Background(), noDNS{}, []string{"127.0.0.1:8080", "127.0.0.1:8081", "[::]:9000"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		target  string
		want    string // dialed address, "" when refused
		wantErr error
	}{
		{"api.example.com:443", "127.0.0.1:9443", nil},
		{"admin.example.com:443", "", ErrSelfAddress},
		{"127.0.0.1:8080", "", ErrSelfAddress},
		{"127.0.0.1:9000", "", ErrSelfAddress},
		{"8.8.8.8:443", "8.8.8.8:443", nil},
		{"10.2.3.4:443", "10.2.3.4:443", nil},
		{"10.3.3.4:443", "", ErrPrivateDestination},
		{"192.168.7.7:80", "192.168.7.7:80", nil},
		{"192.168.7.8:80", "", ErrPrivateDestination},
		{"nas.lan:443", "10.1.1.1:443", nil},
		{"db.lan:5432", "10.1.1.1:5432", nil},
		{"db.lan:22", "", ErrPrivateDestination},
		{"other.lan:443", "", ErrPrivateDestination},
	}
	for _, tc := range cases {
		d, err := p.checkDestination(context.Background(), tc.target)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("checkDestination(%s): got err %v, want %v", tc.target, err, tc.wantErr)
			continue
		}
		got := ""
		if err == nil {
			got = d.addr.String()
		}
		if got != tc.want {
			t.Errorf("checkDestination(%s): dials %q, want %q", tc.target, got, tc.want)
		}
	}
}

func TestCanonicalHostPort(t *testing.T) {
	t.Parallel()
	cases := []struct{ host, scheme, want string }{
		{"API.Example.com", "https", "api.example.com:443"},
		{"api.example.com.", "https", "api.example.com:443"},
		{"api.example.com:8443", "https", "api.example.com:8443"},
		{"example.com", "http", "example.com:80"},
		{"[::1]", "https", "[::1]:443"},
		{"[::1]:80", "http", "[::1]:80"},
		{"", "https", ""},
		{"x:0", "https", ""},
		{"x:99999", "https", ""},
		{":443", "https", ""},
		{"0]0", "https", ""},
		{"a b.example.com", "https", ""},
		{"[fe80::1%25eth0]:443", "https", ""},
		{"under_score.example.com", "https", "under_score.example.com:443"},
	}
	for _, tc := range cases {
		got, err := canonicalHostPort(tc.host, tc.scheme)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("canonicalHostPort(%q, %q) = %q, %v; want %q", tc.host, tc.scheme, got, err, tc.want)
		}
	}
}

func FuzzCanonicalHostPort(f *testing.F) {
	for _, s := range []string{"api.example.com", "a:1", "[::1]:443", "[", "::", "x.:80", "%zz", "Ａ.com:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got, err := canonicalHostPort(host, "https")
		if err != nil {
			return
		}
		// Canonical form is a fixed point.
		again, err := canonicalHostPort(got, "https")
		if err != nil || again != got {
			t.Errorf("canonicalHostPort(%q) = %q, which canonicalises to %q, %v", host, got, again, err)
		}
	})
}

func TestStripHopByHop(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Connection":          {"keep-alive, X-Secret-Hop"},
		"X-Secret-Hop":        {"1"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {"Basic x"},
		"Te":                  {"trailers"},
		"Upgrade":             {"h2c"},
		"X-Aarm-Internal-Foo": {"forged"},
		"Authorization":       {"Bearer upstream-token"},
		"Content-Type":        {"application/json"},
	}
	stripHopByHop(h, false)
	want := http.Header{"Authorization": {"Bearer upstream-token"}, "Content-Type": {"application/json"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("headers after stripping (-want +got):\n%s", diff)
	}
}
