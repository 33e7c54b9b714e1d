package extauthz

import (
	"strings"
	"testing"
)

// browserConfig lets CORS preflights through ahead of a rule that needs a token, and reads
// tokens from a header and from a cookie that one other origin may use.
const browserConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  token_sources:
  - {header: authorization, prefix: Bearer}
  - {cookie: access_token, allowed_origins: ["https://app.example.com", "HTTP://Partner.Example:80"]}
rules:
- name: preflight
  match: {cors_preflight: true}
  action: allow
- name: api
  match: {path_prefix: /}
  require: {}
`

func TestCORSPreflight(t *testing.T) {
	p := newPolicy(t, browserConfig, map[string]KeySource{"demo": newFakeKeys("ec256")})
	preflight := hdrs("origin", "https://app.example.com", "access-control-request-method", "POST")
	tests := []struct {
		name   string
		req    envoyRequest
		rule   string
		reason Reason
		status int
	}{
		{name: "preflight", req: envoyRequest{method: "OPTIONS", headers: preflight}, rule: "preflight", reason: ReasonPublic, status: 200},
		{name: "preflight in header_map", req: envoyRequest{method: "OPTIONS", rawHeader: true, headers: hdrs("Origin", "https://x.example", "Access-Control-Request-Method", "DELETE")}, rule: "preflight", reason: ReasonPublic, status: 200},
		{name: "preflight from any origin", req: envoyRequest{method: "OPTIONS", headers: hdrs("origin", "https://evil.example", "access-control-request-method", "PUT")}, rule: "preflight", reason: ReasonPublic, status: 200},
		{name: "OPTIONS without Origin", req: envoyRequest{method: "OPTIONS", headers: hdrs("access-control-request-method", "POST")}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "OPTIONS without Access-Control-Request-Method", req: envoyRequest{method: "OPTIONS", headers: hdrs("origin", "https://app.example.com")}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "OPTIONS with empty Origin", req: envoyRequest{method: "OPTIONS", headers: hdrs("origin", "", "access-control-request-method", "POST")}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "OPTIONS with two Origins", req: envoyRequest{method: "OPTIONS", rawHeader: true, headers: hdrs("origin", "https://a.example", "origin", "https://b.example", "access-control-request-method", "POST")}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "plain OPTIONS", req: envoyRequest{method: "OPTIONS"}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "POST with preflight headers", req: envoyRequest{method: "POST", headers: preflight}, rule: "api", reason: ReasonMissingToken, status: 401},
		{name: "GET with preflight headers", req: envoyRequest{headers: preflight}, rule: "api", reason: ReasonMissingToken, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, p, tc.req.proto())
			if d.Rule != tc.rule || d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s %v) = rule %q %s %d, want rule %q %s %d", tc.req.method, tc.req.headers, d.Rule, d.Reason, d.HTTPStatus, tc.rule, tc.reason, tc.status)
			}
		})
	}
}

// A CORS preflight rule never matches Istio's TCP checks, which have no method.
func TestCORSPreflightNonHTTP(t *testing.T) {
	p := newPolicy(t, browserConfig+"non_http_action: deny\n", map[string]KeySource{"demo": newFakeKeys("ec256")})
	req := envoyRequest{}.proto()
	req.Attributes.Request = nil
	if _, d := check(t, p, req); d.Allowed || d.Reason != ReasonNonHTTPDeny {
		t.Errorf("Check(TCP) = %v %s, want a non_http_deny", d.Allowed, d.Reason)
	}
}

func TestCSRF(t *testing.T) {
	p := newPolicy(t, browserConfig, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tok := sig.mint(t, "ES256", "ec256", nil)
	cookie := func(kv ...string) []string { return append(hdrs("cookie", "theme=dark; access_token="+tok), kv...) }
	tests := []struct {
		name   string
		req    envoyRequest
		reason Reason
		status int
	}{
		{name: "cookie, GET, no Origin", req: envoyRequest{headers: cookie()}, reason: ReasonAllowed, status: 200},
		{name: "cookie, HEAD, cross-site", req: envoyRequest{method: "HEAD", headers: cookie("origin", "https://evil.example", "sec-fetch-site", "cross-site")}, reason: ReasonAllowed, status: 200},
		{name: "cookie, POST, same-origin", req: envoyRequest{method: "POST", headers: cookie("origin", "https://api.example.com", "sec-fetch-site", "same-origin")}, reason: ReasonAllowed, status: 200},
		{name: "cookie, POST, same-origin without Origin", req: envoyRequest{method: "POST", headers: cookie("sec-fetch-site", "same-origin")}, reason: ReasonAllowed, status: 200},
		{name: "cookie, POST, allowed origin", req: envoyRequest{method: "POST", headers: cookie("origin", "https://app.example.com", "sec-fetch-site", "same-site")}, reason: ReasonAllowed, status: 200},
		{name: "cookie, DELETE, allowed origin written with a default port", req: envoyRequest{method: "DELETE", headers: cookie("origin", "http://partner.example", "sec-fetch-site", "cross-site")}, reason: ReasonAllowed, status: 200},
		{name: "cookie, PUT, allowed origin, header_map", req: envoyRequest{method: "PUT", rawHeader: true, headers: cookie("Origin", "https://app.example.com")}, reason: ReasonAllowed, status: 200},

		{name: "cookie, POST, cross-site", req: envoyRequest{method: "POST", headers: cookie("origin", "https://evil.example", "sec-fetch-site", "cross-site")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, same-site is not same-origin", req: envoyRequest{method: "POST", headers: cookie("origin", "https://blog.example.com", "sec-fetch-site", "same-site")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, no Origin and no Sec-Fetch-Site", req: envoyRequest{method: "POST", headers: cookie()}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, Origin null", req: envoyRequest{method: "POST", headers: cookie("origin", "null")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, allowed origin with a path", req: envoyRequest{method: "POST", headers: cookie("origin", "https://app.example.com/")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, allowed origin's prefix", req: envoyRequest{method: "POST", headers: cookie("origin", "https://app.example.co")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, allowed origin plus a suffix", req: envoyRequest{method: "POST", headers: cookie("origin", "https://app.example.com.evil.example")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, two origins joined", req: envoyRequest{method: "POST", headers: cookie("origin", "https://evil.example", "origin", "https://app.example.com")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, two origins in header_map", req: envoyRequest{method: "POST", rawHeader: true, headers: cookie("origin", "https://app.example.com", "origin", "https://evil.example")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, POST, two Sec-Fetch-Site", req: envoyRequest{method: "POST", rawHeader: true, headers: cookie("sec-fetch-site", "same-origin", "sec-fetch-site", "cross-site")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, PATCH, Sec-Fetch-Site none", req: envoyRequest{method: "PATCH", headers: cookie("sec-fetch-site", "none")}, reason: ReasonCSRF, status: 403},
		{name: "cookie, lower-case post", req: envoyRequest{method: "post", headers: cookie("origin", "https://evil.example")}, reason: ReasonCSRF, status: 403},
		{name: "bad cookie token, POST, cross-site", req: envoyRequest{method: "POST", headers: hdrs("cookie", "access_token=x.y.z", "origin", "https://evil.example")}, reason: ReasonCSRF, status: 403},

		// Header tokens are not sent by browsers on their own: no CSRF check.
		{name: "bearer, POST, cross-site", req: envoyRequest{method: "POST", headers: append(bearer(tok), "origin", "https://evil.example", "sec-fetch-site", "cross-site")}, reason: ReasonAllowed, status: 200},
		{name: "bearer and cookie, POST, cross-site: the header wins", req: envoyRequest{method: "POST", headers: append(bearer(tok), cookie("origin", "https://evil.example")...)}, reason: ReasonAllowed, status: 200},
		{name: "no token, POST, cross-site", req: envoyRequest{method: "POST", headers: hdrs("origin", "https://evil.example")}, reason: ReasonMissingToken, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, d := check(t, p, tc.req.proto())
			if d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s %v) = %s %d, want %s %d", tc.req.method, tc.req.headers, d.Reason, d.HTTPStatus, tc.reason, tc.status)
			}
			if tc.reason == ReasonCSRF {
				body := resp.GetDeniedResponse().GetBody()
				if !strings.Contains(body, `"reason":"csrf_origin"`) || strings.Contains(body, tok) {
					t.Errorf("Check(%s) body = %s, want reason csrf_origin and no token", tc.name, body)
				}
			}
		})
	}
}

// FuzzBrowser: whatever the method and the browser's headers, a valid cookie token allows an
// unsafe method only for Sec-Fetch-Site: same-origin or an allowed Origin, and the preflight
// rule allows only an OPTIONS request with Origin and Access-Control-Request-Method.
func FuzzBrowser(f *testing.F) {
	p := newPolicy(f, browserConfig, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tok := sig.mint(f, "ES256", "ec256", nil)
	f.Add("POST", "https://app.example.com", "cross-site", "", false)
	f.Add("POST", "http://partner.example", "", "", true)
	f.Add("DELETE", "https://evil.example", "same-origin", "", false)
	f.Add("OPTIONS", "https://evil.example", "cross-site", "POST", false)
	f.Add("OPTIONS", "", "", "POST", true)
	f.Add("GET", "null", "none", "", false)
	f.Add("PUT", "https://app.example.com https://evil.example", "same-origin,cross-site", "", true)
	f.Fuzz(func(t *testing.T, method, origin, site, acrm string, raw bool) {
		if method == "" {
			method = "GET"
		}
		headers := hdrs("cookie", "access_token="+tok)
		for _, h := range [][2]string{{"origin", origin}, {"sec-fetch-site", site}, {"access-control-request-method", acrm}} {
			if h[1] != "" {
				headers = append(headers, h[0], h[1])
			}
		}
		resp, d := p.Check(t.Context(), envoyRequest{method: method, headers: headers, rawHeader: raw}.proto(), testNow)
		if err := envoyContract(resp, d); err != nil {
			t.Fatalf("Check(%q, origin %q, site %q) breaks the Envoy contract: %v", method, origin, site, err)
		}
		if !d.Allowed {
			return
		}
		switch d.Rule {
		case "preflight":
			if method != "OPTIONS" || origin == "" || acrm == "" {
				t.Fatalf("Check(%q, origin %q, acrm %q) = allowed as a CORS preflight", method, origin, acrm)
			}
		case "api":
			allowedOrigin := origin == "https://app.example.com" || origin == "http://partner.example"
			if !safeMethod(method) && site != "same-origin" && !allowedOrigin {
				t.Fatalf("Check(%q, origin %q, site %q) = allowed with a cookie token", method, origin, site)
			}
		default:
			t.Fatalf("Check(%q) = allowed by rule %q", method, d.Rule)
		}
	})
}
