package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestWebPage(t *testing.T) {
	ti := startIssuer(t, "-cookie", "access_token", "-web-addr", "127.0.0.1:0", "-api-origin", "http://127.0.0.1:8000")
	tests := []struct {
		name       string
		url        string
		status     int
		contains   []string
		missing    []string
		connectSrc string
	}{
		{name: "page on the API's origin", url: ti.public + "/", status: 200,
			contains:   []string{`<meta name="api-origin" content="">`, `id="mode"`, `src="/web/app.js"`},
			missing:    []string{`id="csrf-form"`},
			connectSrc: "connect-src 'self';"},
		{name: "page on the second origin", url: ti.web + "/", status: 200,
			contains: []string{`<meta name="api-origin" content="http://127.0.0.1:8000">`, `id="csrf-form"`,
				`action="http://127.0.0.1:8000/api/things"`},
			missing:    []string{`id="mode"`}, // a cookie session belongs to the API's own origin
			connectSrc: "connect-src 'self' http://127.0.0.1:8000;"},
		{name: "script", url: ti.public + "/web/app.js", status: 200, contains: []string{"async function login"}},
		{name: "style on the second origin", url: ti.web + "/web/style.css", status: 200, contains: []string{"body {"}},
		{name: "no listing", url: ti.public + "/web/", status: 404},
		{name: "no raw template", url: ti.public + "/web/index.html", status: 404},
		{name: "nothing else", url: ti.web + "/login", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, "GET", tc.url, "", "")
			if res.status != tc.status {
				t.Fatalf("GET %s = %d, want %d", tc.url, res.status, tc.status)
			}
			for _, s := range tc.contains {
				if !strings.Contains(string(res.body), s) {
					t.Errorf("GET %s: body lacks %s", tc.url, s)
				}
			}
			for _, s := range tc.missing {
				if strings.Contains(string(res.body), s) {
					t.Errorf("GET %s: body has %s", tc.url, s)
				}
			}
			if tc.status == 200 && res.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options = %q, want nosniff", tc.url, res.header.Get("X-Content-Type-Options"))
			}
			if csp := res.header.Get("Content-Security-Policy"); tc.connectSrc != "" &&
				(!strings.Contains(csp, tc.connectSrc) || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'")) {
				t.Errorf("GET %s: Content-Security-Policy = %q, want script-src 'self', frame-ancestors 'none' and %s", tc.url, csp, tc.connectSrc)
			}
		})
	}
}

func TestCookieLogin(t *testing.T) {
	ti := startIssuer(t, "-cookie", "access_token", "-ttl", "10m")
	res := do(t, "POST", ti.public+"/login", "application/json", `{"username":"alice","password":"alice-password","cookie":true}`)
	if res.status != http.StatusOK {
		t.Fatalf("POST /login (cookie) = %d %s, want 200", res.status, res.body)
	}
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("POST /login (cookie) set %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	ti.secrets = append(ti.secrets, c.Value)
	if c.Name != "access_token" || c.Path != "/" || c.MaxAge != 600 || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("POST /login (cookie) cookie = %+v, want access_token, Path=/, Max-Age=600, HttpOnly, Secure, SameSite=Strict", c)
	}
	if _, _, err := ti.verify(t, c.Value, "ES256"); err != nil {
		t.Errorf("the cookie's token does not verify: %v", err)
	}
	if body := string(res.body); strings.Contains(body, c.Value) || !strings.Contains(body, `"cookie":"access_token"`) {
		t.Errorf("POST /login (cookie) body = %s, want the cookie's name and no token", body)
	}

	out := do(t, "POST", ti.public+"/logout", "", "")
	gone := (&http.Response{Header: out.header}).Cookies()
	if out.status != http.StatusNoContent || len(gone) != 1 || gone[0].Name != "access_token" || gone[0].MaxAge >= 0 || gone[0].Value != "" {
		t.Errorf("POST /logout = %d, cookies %+v, want 204 and access_token deleted", out.status, gone)
	}
}

func TestCookieLoginOff(t *testing.T) {
	ti := startIssuer(t)
	res := do(t, "POST", ti.public+"/login", "application/json", `{"username":"alice","password":"alice-password","cookie":true}`)
	if res.status != http.StatusBadRequest || len(res.header.Values("Set-Cookie")) != 0 || !strings.Contains(string(res.body), "-cookie") {
		t.Errorf("POST /login (cookie, without -cookie) = %d %s, want 400 naming -cookie and no cookie", res.status, res.body)
	}
	if out := do(t, "POST", ti.public+"/logout", "", ""); out.status != http.StatusNoContent || len(out.header.Values("Set-Cookie")) != 0 {
		t.Errorf("POST /logout without -cookie = %d %v, want 204 without Set-Cookie", out.status, out.header.Values("Set-Cookie"))
	}
}
