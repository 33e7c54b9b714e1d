package config

import (
	"errors"
	"strings"
)

// ParseSPIFFEID splits a SPIFFE ID (SPIFFE-ID specification §2) into its trust domain and
// path: "spiffe://example.org/ns/prod/sa/api" gives "example.org" and "/ns/prod/sa/api".
// It refuses what the specification refuses: another scheme, upper case in the trust
// domain, a port, user info, a query or fragment, empty, "." or ".." path segments, and
// characters outside [A-Za-z0-9._-] in a segment.
func ParseSPIFFEID(id string) (trustDomain, path string, err error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", errors.New("a SPIFFE ID starts with spiffe://")
	}
	trustDomain, path, _ = strings.Cut(rest, "/")
	if !validTrustDomain(trustDomain) {
		return "", "", errors.New("the trust domain holds only lower-case letters, digits, '.', '-' and '_'")
	}
	if path == "" {
		if strings.HasSuffix(rest, "/") {
			return "", "", errors.New("a SPIFFE ID path does not end in /")
		}
		return trustDomain, "", nil
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", errors.New("a SPIFFE ID path has no empty, '.' or '..' segment")
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return "", "", errors.New("a SPIFFE ID path segment holds only letters, digits, '.', '-' and '_'")
			}
		}
	}
	return trustDomain, "/" + path, nil
}

func validTrustDomain(td string) bool {
	if td == "" || len(td) > 255 {
		return false
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
