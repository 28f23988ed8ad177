package ratelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address a request should be limited by.
//
// That is the TCP peer, unless the peer is one of the trusted proxies (the
// load balancer). Then it walks X-Forwarded-For from the right, skipping
// addresses that are themselves trusted proxies, and returns the first one
// that is not: the rightmost address no one we trust could have forged.
// Everything to its left was written by the client and is ignored, so a
// client cannot pick its own rate-limit key by sending X-Forwarded-For.
// An entry that does not parse ends the walk at the last trusted hop: a
// trusted proxy that writes garbage is misconfigured, and its own address
// is the best we know.
//
// The result is unmapped (::ffff:1.2.3.4 becomes 1.2.3.4) and the zero Addr
// when RemoteAddr itself does not parse.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedFor(r.Header)
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHost(hops[i])
		if !a.IsValid() {
			return last
		}
		if !isTrusted(a, trusted) {
			return a
		}
		last = a
	}
	return last
}

// forwardedFor returns the X-Forwarded-For hops in order, across repeated
// header lines (which HTTP allows to be joined with commas).
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// parseHost parses "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or "[::1]".
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies parses a list of CIDR prefixes or bare addresses
// ("10.0.0.0/8", "127.0.0.1", "::1") for ClientIP. Empty entries are
// skipped, so a comma-split empty flag gives no proxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
