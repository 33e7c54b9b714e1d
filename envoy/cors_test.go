package envoy

import (
	"net/http"
	"strings"
	"testing"
)

// TestCORSAndCookies: the browser-facing parts of the demo at the HTTP level (TestBrowser
// drives the same through Chromium): the page is served through Envoy, Envoy's CORS filter
// answers preflights before ext_authz and adds CORS headers to denials too, a cookie session
// works same-origin and is refused as CSRF cross-origin, and the access log keeps no query.
func TestCORSAndCookies(t *testing.T) {
	s := startStack(t, stackOptions{})
	page := "http://" + local(s.Web)
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"}}
	}

	t.Run("the page is served through Envoy without a token", func(t *testing.T) {
		for _, p := range []string{"/", "/web/app.js", "/web/style.css"} {
			r := s.do(t, "GET", p, nil, "")
			if r.status != 200 || r.isEcho() || r.header.Get("Content-Security-Policy") == "" {
				t.Errorf("GET %s = %d (CSP %q), want 200 from the issuer with a CSP", p, r.status, r.header.Get("Content-Security-Policy"))
			}
		}
		s.do(t, "POST", "/", nil, "").challenge(t, 401, "") // only GET is the page's
	})

	t.Run("a preflight from the page's origin is answered by Envoy", func(t *testing.T) {
		r := s.do(t, "OPTIONS", "/api/things", preflight(page), "")
		if r.status != 200 || r.isEcho() || r.header.Get("Access-Control-Allow-Origin") != page ||
			!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("OPTIONS /api/things (preflight from %s) = %d %v, want 200 allowing the origin and authorization", page, r.status, r.header)
		}
		if r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("OPTIONS /api/things: Access-Control-Allow-Credentials = %q, want none", r.header.Get("Access-Control-Allow-Credentials"))
		}
	})

	t.Run("a preflight from another origin gets no CORS headers and never reaches ext_authz", func(t *testing.T) {
		r := s.do(t, "OPTIONS", "/api/things", preflight("http://evil.example"), "")
		if r.isEcho() || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("OPTIONS /api/things (preflight from evil.example) = %d %v, want no Access-Control-Allow-Origin", r.status, r.header)
		}
		if l, err := s.accessLog("OPTIONS /api/things"); err == nil && !strings.Contains(l, "authz_reason=-") {
			t.Errorf("a preflight reached ext_authz: %s", l)
		}
	})

	t.Run("cross-origin answers carry CORS headers, denials included", func(t *testing.T) {
		tok := s.login(t, "alice", "alice-password")
		h := http.Header{"Origin": {page}, "Authorization": {"Bearer " + tok}}
		if r := s.do(t, "GET", "/api/things", h, ""); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != page {
			t.Errorf("GET /api/things (bearer, Origin %s) = %d, Access-Control-Allow-Origin %q", page, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
		r := s.do(t, "GET", "/admin/users", h, "")
		r.challenge(t, 403, "insufficient_scope")
		if r.header.Get("Access-Control-Allow-Origin") != page || !strings.Contains(strings.ToLower(r.header.Get("Access-Control-Expose-Headers")), "www-authenticate") {
			t.Errorf("GET /admin/users (403) from %s: CORS headers %v, want the origin allowed and www-authenticate exposed", page, r.header)
		}
	})

	t.Run("cookie session", func(t *testing.T) {
		r := s.do(t, "POST", "/login", jsonHeader, `{"username":"alice","password":"alice-password","cookie":true}`)
		cookies := (&http.Response{Header: r.header}).Cookies()
		if r.status != 200 || len(cookies) != 1 || cookies[0].Name != "access_token" || !cookies[0].HttpOnly || !cookies[0].Secure {
			t.Fatalf("POST /login (cookie) = %d, cookies %v, want 200 and an HttpOnly Secure access_token", r.status, cookies)
		}
		if strings.Contains(string(r.body), cookies[0].Value) {
			t.Errorf("POST /login (cookie): the body holds the token")
		}
		cookie := "theme=dark; access_token=" + cookies[0].Value
		with := func(kv ...string) http.Header {
			h := http.Header{"Cookie": {cookie}}
			for i := 0; i+1 < len(kv); i += 2 {
				h.Set(kv[i], kv[i+1])
			}
			return h
		}
		e := s.do(t, "GET", "/api/things", with(), "").upstream(t, 200)
		if got := e.values("cookie"); len(got) != 1 || got[0] != "theme=dark" {
			t.Errorf("GET /api/things (cookie): upstream saw cookie %q, want only theme=dark (forward_token: false)", got)
		}
		s.do(t, "POST", "/api/things", with("Sec-Fetch-Site", "same-origin", "Origin", s.base), "").upstream(t, 200)
		for _, tc := range []struct {
			name string
			h    http.Header
		}{
			{"from the page's second origin", with("Sec-Fetch-Site", "same-site", "Origin", page)},
			{"from another site", with("Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")},
			{"without Origin or Sec-Fetch-Site", with()},
		} {
			r := s.do(t, "POST", "/api/things", tc.h, "")
			if r.status != 403 || r.isEcho() || !strings.Contains(string(r.body), `"reason":"csrf_origin"`) {
				t.Errorf("POST /api/things (cookie, %s) = %d %s, want 403 csrf_origin", tc.name, r.status, clip(r.body))
			}
		}
		// A bearer header is not sent by a browser on its own: no CSRF check.
		tok := s.login(t, "alice", "alice-password")
		s.do(t, "POST", "/api/things", http.Header{"Authorization": {"Bearer " + tok}, "Origin": {"http://evil.example"}}, "").upstream(t, 200)

		out := s.do(t, "POST", "/logout", nil, "")
		gone := (&http.Response{Header: out.header}).Cookies()
		if out.status != 204 || len(gone) != 1 || gone[0].MaxAge >= 0 {
			t.Errorf("POST /logout = %d, cookies %v, want 204 deleting access_token", out.status, gone)
		}
	})

	t.Run("the access log keeps no query credential", func(t *testing.T) {
		tok := s.login(t, "alice", "alice-password")
		s.do(t, "GET", "/api/things?access_token="+tok+"&page=2", nil, "").challenge(t, 401, "") // not a source here
		l, err := s.accessLog("GET /api/things 401")
		if err != nil {
			t.Fatal(err)
		}
		if log := s.envoy.Out.String(); strings.Contains(log, tok) || strings.Contains(log, "access_token=") {
			t.Errorf("Envoy's access log holds the query credential: %s", l)
		}
	})
}

// TestCORSPreflightRule: an operator who puts ext_authz before the CORS filter (or has none)
// lets exactly the preflights through with a cors_preflight rule; other OPTIONS still need a
// token.
func TestCORSPreflightRule(t *testing.T) {
	s := startStack(t, stackOptions{
		editEnvoy: func(t *testing.T, root map[string]any, _ ports) {
			h, err := hcm(root)
			if err != nil {
				t.Fatal(err)
			}
			filters, _ := list(h, "http_filters")
			var kept []any
			for _, f := range filters {
				if name, _ := dig(f, "name"); name != corsName {
					kept = append(kept, f)
				}
			}
			h["http_filters"] = kept
		},
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			rules, _ := list(root, "rules")
			preflight := map[string]any{"name": "cors-preflight", "match": map[string]any{"cors_preflight": true}, "action": "allow"}
			root["rules"] = append([]any{preflight}, rules...)
		},
	})
	e := s.do(t, "OPTIONS", "/api/things", http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}}, "").upstream(t, 200)
	if e.Method != "OPTIONS" {
		t.Errorf("preflight: the upstream saw %s, want OPTIONS", e.Method)
	}
	if l, err := s.accessLog("OPTIONS /api/things 200", "rule=cors-preflight"); err != nil {
		t.Errorf("Envoy access log: no preflight allowed by rule cors-preflight")
	} else {
		t.Log(l)
	}
	s.do(t, "OPTIONS", "/api/things", http.Header{"Origin": {"https://app.example"}}, "").challenge(t, 401, "")
	s.do(t, "OPTIONS", "/api/things", nil, "").challenge(t, 401, "")
}
