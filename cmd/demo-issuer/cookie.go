package main

import (
	"net/http"
	"strings"
	"time"
)

// Cookie sessions (-cookie NAME): a login that asks for one gets its token in an HttpOnly
// cookie, which the page's script can never read (an injected script cannot steal it),
// instead of in the body. The browser then sends it on every request to the API's site,
// including requests that other sites start; jwt-authz's CSRF check (token_sources[].
// allowed_origins) is what keeps those from acting for the user.

// sessionCookie is the cookie carrying token for ttl. Secure: browsers accept it from
// http://localhost and 127.0.0.1 too, which count as secure origins. SameSite=Strict: not
// sent on requests from other sites; but a site ignores ports, so another port of the same
// host is the same site, which is why jwt-authz checks Origin as well.
func sessionCookie(name, token string, ttl time.Duration) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: token, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

// handleLogout is POST /logout: the session cookie is removed. Without -cookie there is none,
// and the page forgets its token by itself.
func (s *issuer) handleLogout(w http.ResponseWriter, _ *http.Request) {
	if s.cookie != "" {
		c := sessionCookie(s.cookie, "", 0)
		c.MaxAge = -1 // Max-Age=0: delete now
		http.SetCookie(w, c)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// validCookieName: an RFC 6265 §4.1.1 cookie-name (an RFC 7230 token).
func validCookieName(name string) bool {
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return name != ""
}
