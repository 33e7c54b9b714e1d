package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// validateHTTPAuthz checks the HTTP decision listener's keys. The forwarded request details
// (X-Original-Method, X-Forwarded-Uri, ...) decide which rule applies, so they are believed
// only from the proxies named here: an empty list trusts no one, and those endpoints refuse.
func (c *Config) validateHTTPAuthz(bad func(path, format string, args ...any)) {
	if a := c.HTTPAuthzAddress; strings.HasPrefix(a, "unix:") && !strings.HasPrefix(a, "unix:///") {
		bad("http_authz_address", "a unix socket is written unix:///absolute/path")
	}
	for i, p := range c.HTTPAuthzTrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad(fmt.Sprintf("http_authz_trusted_proxies[%d]", i), "must be an IP address or CIDR, got %q", p)
		}
	}
	if len(c.HTTPAuthzTrustedProxies) > 0 && c.HTTPAuthzAddress == "" {
		bad("http_authz_trusted_proxies", "set without http_authz_address")
	}
}

// TrustedProxies is http_authz_trusted_proxies as prefixes (an address is a /32 or /128).
func (c *Config) TrustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.HTTPAuthzTrustedProxies {
		if pr, err := parsePrefix(p); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
