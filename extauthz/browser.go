package extauthz

import "strings"

// What a browser's request says about the page that started it. Two defences rest on it:
// letting CORS preflights through (they carry no credential), and refusing a cookie token on
// a cross-site unsafe request (cross-site request forgery).

// isCORSPreflight: an OPTIONS request with Origin and Access-Control-Request-Method, which is
// how the Fetch standard defines a CORS-preflight request. Any other OPTIONS is not one.
func isCORSPreflight(r *request) bool {
	if r.method != "OPTIONS" {
		return false
	}
	origin, n := r.header("origin")
	acrm, m := r.header("access-control-request-method")
	return n == 1 && origin != "" && m == 1 && acrm != ""
}

// safeMethod: RFC 9110 §9.2.1. Browsers send cookies on cross-site navigations with these, so
// they must not change state; the CSRF defence covers the others.
func safeMethod(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// csrfAllowed reports whether a token read from the cookie source src may be used for r. A
// browser attaches cookies to requests started by any site, so on an unsafe method the
// request must show it comes from the site itself (Sec-Fetch-Site: same-origin, a header
// page scripts cannot set) or from an origin in the source's allowed_origins. A request that
// shows neither (no Origin, Origin: null, an old browser, curl) is refused: fail closed.
func csrfAllowed(r *request, src tokenSource) bool {
	if src.kind != fromCookie || safeMethod(r.method) {
		return true
	}
	if site, n := r.header("sec-fetch-site"); n == 1 && site == "same-origin" {
		return true
	}
	origin, n := r.header("origin")
	if n != 1 || origin == "" || strings.ContainsAny(origin, " ,") {
		return false
	}
	// origins is "o1 o2 ... ": match a whole entry. Browsers serialize Origin in lower case
	// without a default port, as config.Origin writes the allowlist.
	for rest := src.origins; rest != ""; {
		var o string
		o, rest, _ = strings.Cut(rest, " ")
		if o == origin {
			return true
		}
	}
	return false
}
