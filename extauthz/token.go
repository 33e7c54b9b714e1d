package extauthz

import (
	"net/url"
	"strings"

	"github.com/jwt-authz/jwt-authz/config"
)

// tokenSource is one place a credential is looked for.
type tokenSource struct {
	kind   sourceKind
	name   string // header name (lower case), cookie name or query parameter name
	prefix string // header scheme, e.g. "Bearer"; empty for none
	// removeWire keeps the credential from the upstream: the encoded headers_to_remove or
	// query_parameters_to_remove entry for it (for a cookie, the whole cookie header).
	removeWire string
	// origins, for a cookie source, are the allowed_origins in canonical form, each followed
	// by a space (a string keeps tokenSource comparable; see csrfAllowed).
	origins string
}

type sourceKind uint8

const (
	fromHeader sourceKind = iota
	fromCookie
	fromQuery
)

func newTokenSource(s config.TokenSource) tokenSource {
	switch {
	case s.Cookie != "":
		var origins strings.Builder
		for _, o := range s.AllowedOrigins {
			if o, err := config.Origin(o); err == nil { // validated: err is always nil
				origins.WriteString(o + " ")
			}
		}
		return tokenSource{kind: fromCookie, name: s.Cookie, removeWire: wireRemoveCookie, origins: origins.String()}
	case s.Query != "":
		return tokenSource{kind: fromQuery, name: s.Query, removeWire: string(appendString(nil, fieldOKQueryToRemove, s.Query))}
	default:
		name := strings.ToLower(s.Header)
		return tokenSource{kind: fromHeader, name: name, prefix: s.Prefix, removeWire: string(appendString(nil, fieldOKHeadersToRemove, name))}
	}
}

func (s tokenSource) String() string {
	switch s.kind {
	case fromCookie:
		return "cookie " + s.name
	case fromQuery:
		return "query " + s.name
	default:
		return "header " + s.name
	}
}

// extract looks for a credential in the sources in order and returns the first one found.
// found is false when no source holds one. A request that is ambiguous about its credential
// (the header twice, a comma inside it, the cookie or parameter twice) gets errMultipleTokens
// rather than a guess; one over maxBytes gets errTokenTooLarge before any parsing.
func extract(r *request, sources []tokenSource, maxBytes int) (tok string, src tokenSource, found bool, err error) {
	for _, s := range sources {
		var ok bool
		switch s.kind {
		case fromHeader:
			tok, ok, err = fromHeaderSource(r, s)
		case fromCookie:
			tok, ok, err = fromCookieSource(r, s.name)
		case fromQuery:
			tok, ok, err = fromQuerySource(r.query, s.name)
		}
		if err != nil {
			return "", s, false, err
		}
		if !ok {
			continue
		}
		if len(tok) > maxBytes {
			return "", s, false, errTokenTooLarge
		}
		if tok == "" {
			return "", s, false, errMalformed
		}
		return tok, s, true, nil
	}
	return "", tokenSource{}, false, nil
}

func fromHeaderSource(r *request, s tokenSource) (string, bool, error) {
	v, n := r.header(s.name)
	if n == 0 {
		return "", false, nil
	}
	if n > 1 {
		return "", false, errMultipleTokens
	}
	if s.prefix != "" {
		// RFC 7235 §2.1: the scheme is case-insensitive; RFC 6750 §2.1: one or more spaces.
		if len(v) <= len(s.prefix) || !strings.EqualFold(v[:len(s.prefix)], s.prefix) || v[len(s.prefix)] != ' ' {
			return "", false, nil // another scheme (Basic, DPoP, ...): not ours
		}
		v = strings.TrimLeft(v[len(s.prefix):], " ")
	}
	// Envoy joins repeated headers with "," in the headers encoding (§6.7); a JWT never
	// contains a comma, so one means two credentials.
	if strings.IndexByte(v, ',') >= 0 {
		return "", false, errMultipleTokens
	}
	// Two byte searches, not ContainsAny: over a token of a kilobyte these are vectorised
	// and ContainsAny is a byte-at-a-time loop (~0.4 µs per request, on Envoy's worker in
	// process).
	if strings.IndexByte(v, ' ') >= 0 || strings.IndexByte(v, '\t') >= 0 {
		return "", false, errMalformed
	}
	return v, true, nil
}

func fromCookieSource(r *request, name string) (tok string, found bool, err error) {
	r.headerValues("cookie", func(header string) bool {
		for header != "" {
			var pair string
			pair, header, _ = strings.Cut(header, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if k != name {
				continue
			}
			if found {
				err = errMultipleTokens
				return false
			}
			tok, found = strings.Trim(v, `"`), true
		}
		return true
	})
	if err != nil {
		return "", false, err
	}
	return tok, found, nil
}

func fromQuerySource(query, name string) (tok string, found bool, err error) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != name {
			if uk, uerr := url.QueryUnescape(k); uerr != nil || uk != name {
				continue
			}
		}
		if found {
			return "", false, errMultipleTokens
		}
		if tok, err = url.QueryUnescape(v); err != nil {
			return "", false, errMalformed
		}
		found = true
	}
	return tok, found, nil
}
