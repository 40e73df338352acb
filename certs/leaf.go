package certs

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Leaf minting parameters.
const (
	// LeafValidity is how long a minted leaf is valid after it is minted
	// (NotBefore is Backdate earlier). Leaves live only in memory, so they
	// can be short: a stolen one is useless after a day.
	LeafValidity = 24 * time.Hour
	// RenewBefore is how long before its expiry a cached leaf is replaced by
	// a new one, so that no connection is handed a leaf about to lapse.
	RenewBefore = time.Hour
	// DefaultCacheSize is how many leaves a CA keeps unless WithCacheSize
	// says otherwise.
	DefaultCacheSize = 1024

	// maxHostLen bounds the host string accepted from a CONNECT line: a
	// bracketed IPv6 literal with zone-free address and port, or a 253-byte
	// DNS name with a trailing dot and port, both fit.
	maxHostLen = 253 + 1 + 6
	// leafOrganization is the Subject O of minted leaves.
	leafOrganization = "aarm proxy"
)

// ErrInvalidHost means a host given to CertFor is neither a DNS name nor an IP
// literal that a certificate can name.
var ErrInvalidHost = errors.New("certs: invalid host")

// defaultNextProtos is what TLSConfig advertises: the proxy's interception
// speaks HTTP/1.1 unless the caller asks for more with TLSConfigFor.
var defaultNextProtos = []string{"http/1.1"}

// NormalizeHost returns the canonical form of host as CertFor keys and names
// leaves: an optional port is stripped, brackets around an IPv6 literal are
// removed, IPv4-mapped IPv6 addresses become IPv4, a DNS name is lower-cased
// and loses one trailing dot. It returns an error wrapping ErrInvalidHost for
// anything else: empty strings, non-ASCII names (send the A-label, as clients
// do on the wire), IPv6 zones, bad ports, wildcards, bad labels.
//
// The proxy can use it to compare an inner request's Host with the CONNECT
// target (DESIGN.md §7 property 5).
func NormalizeHost(host string) (string, error) {
	name, ip, err := parseHost(host)
	if err != nil {
		return "", err
	}
	if ip.IsValid() {
		return ip.String(), nil
	}
	return name, nil
}

// parseHost splits host into a DNS name or an IP address (exactly one is set).
func parseHost(host string) (string, netip.Addr, error) {
	bad := func(why string) (string, netip.Addr, error) {
		q := host
		if len(q) > 64 {
			q = q[:64] + "..."
		}
		return "", netip.Addr{}, fmt.Errorf("%w %q: %s", ErrInvalidHost, q, why)
	}
	if host == "" {
		return bad("empty")
	}
	if len(host) > maxHostLen {
		return bad("too long")
	}
	h := host
	switch colons := strings.Count(host, ":"); {
	case host[0] == '[':
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return bad("missing ]")
		}
		h = host[1:end]
		if rest := host[end+1:]; rest != "" {
			if rest[0] != ':' || !validPort(rest[1:]) {
				return bad("bad port after ]")
			}
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is6() {
			return bad("brackets must hold an IPv6 address")
		}
		if ip.Zone() != "" {
			return bad("IPv6 zones cannot be named in a certificate")
		}
		return "", ip.Unmap(), nil
	case colons > 1:
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return bad("neither host:port nor an IPv6 address")
		}
		if ip.Zone() != "" {
			return bad("IPv6 zones cannot be named in a certificate")
		}
		return "", ip.Unmap(), nil
	case colons == 1:
		var port string
		var err error
		h, port, err = net.SplitHostPort(host)
		if err != nil || !validPort(port) {
			return bad("bad port")
		}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if !ip.Is4() {
			return bad("IPv6 address with a port needs brackets")
		}
		return "", ip, nil
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if why := checkDNSName(name); why != "" {
		return bad(why)
	}
	return name, netip.Addr{}, nil
}

// validPort accepts 1 to 5 decimal digits with a value of at most 65535.
func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// checkDNSName returns why name (lower-case, no trailing dot) cannot be a
// certificate's DNS SAN, or "" when it can. Underscores are allowed because
// real hosts use them and crypto/x509 matches them.
func checkDNSName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > 253 {
		return "name longer than 253 bytes"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "label longer than 63 bytes"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return fmt.Sprintf("byte %q not allowed in a DNS name", c)
			}
		}
	}
	// "1.2.3" or "01.2.3.4" is not an IP literal netip accepts, and no top
	// level domain is numeric: refusing it avoids a SAN clients would read
	// differently from us.
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "numeric top-level label (not a valid IP literal either)"
	}
	return ""
}

// CertFor returns a certificate for host (see NormalizeHost for the forms
// accepted), signed by the CA and chained to it: Certificate holds the leaf
// and then the CA certificate, Leaf is populated.
//
// Leaves are cached by normalised host (an LRU of WithCacheSize entries) and
// re-minted when within RenewBefore of expiry. Concurrent calls for a host
// that is not cached mint one leaf between them. All leaves of one CA share
// one in-memory ECDSA P-256 key (see the CA type). The returned value is
// shared: callers must not modify it.
func (ca *CA) CertFor(host string) (*tls.Certificate, error) {
	name, ip, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	key := name
	if ip.IsValid() {
		key = ip.String()
	}
	if c, ok := ca.cached(key); ok {
		return c, nil
	}
	v, err, _ := ca.flight.Do(key, func() (any, error) {
		// A flight that finished just before this one started has already
		// filled the cache.
		if c, ok := ca.cached(key); ok {
			return c, nil
		}
		c, err := ca.mint(name, ip, ca.now())
		if err != nil {
			return nil, err
		}
		ca.cache.Add(key, c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// cached returns the cached leaf for key if it is not close to expiry.
func (ca *CA) cached(key string) (*tls.Certificate, bool) {
	c, ok := ca.cache.Get(key)
	if !ok || !ca.now().Before(c.Leaf.NotAfter.Add(-RenewBefore)) {
		return nil, false
	}
	return c, true
}

// mint signs a new leaf for exactly one of name or ip.
func (ca *CA) mint(name string, ip netip.Addr, now time.Time) (*tls.Certificate, error) {
	if !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("%w: %s expired on %s; run aarm ca uninstall, move both CA files aside, run aarm init and aarm ca install",
			ErrInvalidCA, ca.Path(), ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notBefore := now.Add(-Backdate)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	notAfter := now.Add(ca.leafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{leafOrganization}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip.IsValid() {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
		tmpl.Subject.CommonName = ip.String()
	} else {
		tmpl.DNSNames = []string{name}
		if len(name) <= 64 { // RFC 5280 ub-common-name; the SAN is what counts
			tmpl.Subject.CommonName = name
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign leaf for %s: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse minted leaf: %w", err)
	}
	ca.minted.Add(1)
	return &tls.Certificate{
		Certificate: [][]byte{der, ca.cert.Raw},
		PrivateKey:  ca.leafKey,
		Leaf:        leaf,
	}, nil
}

// Minted returns how many leaves this CA has signed since Load, for tests and
// metrics (cache hits do not count).
func (ca *CA) Minted() uint64 { return ca.minted.Load() }

// TLSConfig returns a server TLS configuration presenting the leaf for host,
// advertising HTTP/1.1 only. Use TLSConfigFor to advertise other protocols.
func (ca *CA) TLSConfig(host string) (*tls.Config, error) {
	return ca.TLSConfigFor(host, defaultNextProtos)
}

// TLSConfigFor returns a server TLS configuration presenting the leaf for
// host, advertising nextProtos through ALPN in the given order (for example
// []string{"h2", "http/1.1"}), with TLS 1.2 as the minimum version. Each call
// returns a new Config the caller may modify.
func (ca *CA) TLSConfigFor(host string, nextProtos []string) (*tls.Config, error) {
	c, err := ca.CertFor(host)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*c},
		NextProtos:   slices.Clone(nextProtos),
		MinVersion:   tls.VersionTLS12,
	}, nil
}
