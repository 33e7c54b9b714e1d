package extauthz

import "unicode/utf8"

// Bounds on the decision log's fields. The path, method, kid, sub and x-request-id come
// from the request or from a token, so a client chooses their length: without a bound one
// request with a 1 MiB path writes a 1 MiB log line. A path gets more room because
// operators read it; 256 bytes holds any real method, kid, subject or request id.
const (
	maxLoggedPath  = 1024
	maxLoggedField = 256
)

// clipPath bounds a path for the log.
func clipPath(v string) string { return clipLogged(v, maxLoggedPath) }

// clipField bounds any other logged field that comes from the request or a token.
func clipField(v string) string { return clipLogged(v, maxLoggedField) }

// clipLogged cuts v to at most n bytes, on a UTF-8 boundary so the line stays valid text,
// and marks the cut with "..." so a reader knows the value was longer.
func clipLogged(v string, n int) string {
	if len(v) <= n {
		return v
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "..."
}
