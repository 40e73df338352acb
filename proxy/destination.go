package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements
// it; tests inject their own to play DNS rebinding.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// destination is a checked upstream: the host:port the client asked for and
// the ip:port the proxy will dial. The dial must use addr and nothing else,
// so a second DNS answer cannot replace the address that was checked
// (DESIGN.md §7.8).
type destination struct {
	hostport string         // canonical "host:port" as requested (lower case)
	addr     netip.AddrPort // the one address that was checked and will be dialed
	explicit bool           // taken from upstream.resolve
}

// blockedPrefixes are ranges an agent must not reach unless upstream.allow_private
// names them: loopback, link-local (cloud metadata at 169.254.169.254), RFC 1918,
// CGNAT, "this network", IETF protocol assignments, benchmarking, multicast and
// reserved space, and their IPv6 counterparts (ULA, link-local, site-local,
// multicast, IPv4-compatible). IPv4-mapped IPv6 is unmapped before matching;
// NAT64 and 6to4 embed an IPv4 address that is checked as well.
var blockedPrefixes = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"224.0.0.0/4", "240.0.0.0/4",
	"::/96", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "100::/64",
)

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// isBlockedAddr reports whether ip lies in a range the proxy refuses by default.
func isBlockedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() ||
		ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.Is6() && (nat64Prefix.Contains(ip) || sixToFour.Contains(ip)) {
		b := ip.As16()
		var v4 [4]byte
		if nat64Prefix.Contains(ip) {
			copy(v4[:], b[12:16])
		} else {
			copy(v4[:], b[2:6])
		}
		return isBlockedAddr(netip.AddrFrom4(v4))
	}
	return false
}

// allowList is upstream.allow_private compiled: CIDRs, single IPs, and host or
// host:port names.
type allowList struct {
	prefixes []netip.Prefix
	hosts    map[string]bool // "host" or "host:port", lower case
}

func newAllowList(entries []string) (allowList, error) {
	a := allowList{hosts: map[string]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			return a, fmt.Errorf("%w: empty upstream.allow_private entry", ErrConfig)
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		a.hosts[normHost(e)] = true
	}
	return a, nil
}

// allows reports whether a private address ip reached for hostport is listed.
func (a allowList) allows(hostport string, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	if a.hosts[hostport] {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && a.hosts[host]
}

// selfAddrs are the proxy's own listen addresses (proxy and admin). A listener
// on 0.0.0.0 or :: matches every local address with its port.
type selfAddrs struct {
	exact    map[netip.AddrPort]bool
	anyPorts map[uint16]bool
	local    func() []netip.Addr
}

func newSelfAddrs(ctx context.Context, r Resolver, addrs []string) (selfAddrs, error) {
	s := selfAddrs{exact: map[netip.AddrPort]bool{}, anyPorts: map[uint16]bool{}, local: localAddrs}
	for _, a := range addrs {
		host, portStr, err := net.SplitHostPort(a)
		if err != nil {
			return s, fmt.Errorf("%w: refuse address %q is not host:port: %v", ErrConfig, a, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return s, fmt.Errorf("%w: refuse address %q has a bad port", ErrConfig, a)
		}
		if host == "" {
			s.anyPorts[uint16(port)] = true
			continue
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else {
			ips, err = r.LookupNetIP(ctx, "ip", host)
			if err != nil {
				return s, fmt.Errorf("%w: resolve refuse address %q: %v", ErrConfig, a, err)
			}
		}
		for _, ip := range ips {
			ip = ip.Unmap()
			if ip.IsUnspecified() {
				s.anyPorts[uint16(port)] = true
				continue
			}
			s.exact[netip.AddrPortFrom(ip, uint16(port))] = true
		}
	}
	return s, nil
}

// matches reports whether dialing ap would reach the proxy itself.
func (s selfAddrs) matches(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if s.exact[ap] {
		return true
	}
	if !s.anyPorts[ap.Port()] {
		return false
	}
	ip := ap.Addr()
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	for _, l := range s.local() {
		if l.Unmap() == ip {
			return true
		}
	}
	return false
}

func localAddrs() []netip.Addr {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// normHost lower-cases a host or host:port and drops a trailing dot from the
// host so "API.github.com.:443" and "api.github.com:443" compare equal.
func normHost(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if host, port, err := net.SplitHostPort(s); err == nil {
		return net.JoinHostPort(strings.TrimSuffix(host, "."), port)
	}
	return strings.TrimSuffix(strings.Trim(s, "[]"), ".")
}

// canonicalHostPort returns "host:port" for a URL host, adding the scheme's
// default port.
func canonicalHostPort(host, scheme string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("%w: empty host", ErrBadTarget)
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h = strings.Trim(host, "[]")
		switch scheme {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	h = strings.TrimSuffix(h, ".")
	if !validHost(h) {
		return "", fmt.Errorf("%w: bad host in %q", ErrBadTarget, host)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%w: bad port in %q", ErrBadTarget, host)
	}
	return normHost(net.JoinHostPort(h, port)), nil
}

// validHost accepts an IP literal without zone or a DNS name of letters,
// digits, '-', '_' and '.'.
func validHost(h string) bool {
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Zone() == ""
	}
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return false // empty labels
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// checkDestination resolves hostport (the resolve map first) and applies the
// destination policy to every address it resolves to. A name with any
// disallowed address is refused: the proxy does not try "the other" one.
func (p *Proxy) checkDestination(ctx context.Context, hostport string) (destination, error) {
	d := destination{hostport: hostport}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return d, fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	if target, ok := p.resolve[hostport]; ok {
		// upstream.resolve targets are explicit operator configuration and
		// may be private; they may still never be the proxy itself.
		if p.self.matches(target) {
			return d, &DestinationError{Host: hostport, Addr: target.Addr(), Err: ErrSelfAddress}
		}
		d.addr, d.explicit = target, true
		return d, nil
	}
	port, _ := strconv.ParseUint(portStr, 10, 16)
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = p.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return d, &DestinationError{Host: hostport, Err: fmt.Errorf("%w: %v", ErrResolve, err)}
		}
		if len(ips) == 0 {
			return d, &DestinationError{Host: hostport, Err: ErrResolve}
		}
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		ap := netip.AddrPortFrom(ip, uint16(port))
		if p.self.matches(ap) {
			return d, &DestinationError{Host: hostport, Addr: ip, Err: ErrSelfAddress}
		}
		if isBlockedAddr(ip) && !p.allowPrivate.allows(hostport, ip) {
			return d, &DestinationError{Host: hostport, Addr: ip, Err: ErrPrivateDestination}
		}
	}
	d.addr = netip.AddrPortFrom(ips[0].Unmap(), uint16(port))
	return d, nil
}

// DestinationError says why a destination was refused, with the address
// that caused it.
type DestinationError struct {
	Host string
	Addr netip.Addr // zero when resolution failed
	Err  error
}

func (e *DestinationError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("destination %s (%s): %v", e.Host, e.Addr, e.Err)
	}
	return fmt.Sprintf("destination %s: %v", e.Host, e.Err)
}

// Unwrap returns the sentinel (ErrPrivateDestination, ErrSelfAddress, ErrResolve).
func (e *DestinationError) Unwrap() error { return e.Err }
