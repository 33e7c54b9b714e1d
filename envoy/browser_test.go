package envoy

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBrowser drives the demo page in headless Chromium through the real Envoy, jwt-authz
// and demo-issuer, as a person trying the demo would: log in, read the claims, call the API
// with a bearer token (200, 403 with its challenge, 401 after logging out), use a cookie
// session same-origin, call the API from the page's second origin (CORS preflight and
// 200), have a cross-site form POST refused (403 csrf_origin), and see an origin that is
// not allowed fail CORS. It saves a screenshot at each step: into docs/browser with
// JWT_AUTHZ_SCREENSHOTS=docs/browser (make screenshots), into a temporary folder otherwise.
func TestBrowser(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t, stackOptions{})
	shots := os.Getenv("JWT_AUTHZ_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if !filepath.IsAbs(shots) {
		shots = filepath.Join(repoRoot, shots)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) { b.screenshot(filepath.Join(shots, name+".png")) }
	// The upstream echoes headers as lists: "x-jwt-sub": ["alice"].
	subAlice := regexp.MustCompile(`"x-jwt-sub": \[\s*"alice"\s*\]`)
	secondOrigin := "http://" + local(s.Web)
	result := func() string { return b.text("#status") + "\n" + b.text("#challenge") + "\n" + b.text("#body") }
	callAPI := func(call, wantStatus string) string {
		t.Helper()
		b.js(`document.getElementById("status").textContent = "..."; document.getElementById("result").dataset.status = "";`)
		b.click(`button[data-call="` + call + `"]`)
		b.waitText("#call", call)
		got := b.waitText("#status", wantStatus)
		b.js(`document.getElementById("result").scrollIntoView({block: "center"})`)
		if got != wantStatus {
			t.Errorf("%s in the page: status %q, want %s\n%s", call, got, wantStatus, result())
		}
		return result()
	}
	login := func(user, mode string) {
		t.Helper()
		b.js(`document.getElementById("username").value = arguments[0];
			document.getElementById("password").value = arguments[0] + "-password";
			const m = document.getElementById("mode"); if (m) m.value = arguments[1];`, user, mode)
		b.click("#login")
		b.waitText("#call", "POST /login")
		if st := b.waitText("#status", "200"); st != "200" {
			t.Fatalf("login (%s, %s) in the page: %s", user, mode, result())
		}
	}

	t.Run("log in and call the API with a bearer token", func(t *testing.T) {
		b.open(s.base + "/")
		if title := b.js(`return document.title`); title != "jwt-authz demo" {
			t.Fatalf("GET / in the browser: title %v, want the demo page", title)
		}
		shot("1-page")
		login("alice", "header")
		session := b.waitText("#session", "Logged in as alice")
		claims := b.text("#claims")
		for _, want := range []string{`"sub": "alice"`, `"scope": "read"`, `"aud"`, `"exp"`} {
			if !strings.Contains(claims, want) {
				t.Errorf("the page's claims lack %s:\n%s", want, claims)
			}
		}
		t.Logf("session: %s", session)
		shot("2-logged-in")

		if out := callAPI("GET /api/things", "200"); !subAlice.MatchString(out) {
			t.Errorf("GET /api/things in the page: the upstream's echo lacks x-jwt-sub alice:\n%s", out)
		}
		shot("3-api-200")
		out := callAPI("GET /admin/users", "403")
		if !strings.Contains(out, `error="insufficient_scope"`) || !strings.Contains(out, `scope="admin"`) {
			t.Errorf("GET /admin/users in the page: no insufficient_scope challenge shown:\n%s", out)
		}
		shot("4-admin-403")

		b.click("#logout")
		b.waitText("#session", "Not logged in")
		out = callAPI("GET /api/things", "401")
		if !strings.Contains(out, `Bearer realm="demo"`) || strings.Contains(out, "error=") {
			t.Errorf("GET /api/things after logout: want a challenge without error=:\n%s", out)
		}
		if tok := b.js(`return localStorage.getItem("jwt-authz-demo.token")`); tok != nil {
			t.Errorf("after logout the token is still in local storage")
		}
		shot("5-logged-out-401")
	})

	t.Run("cookie session, same origin", func(t *testing.T) {
		b.open(s.base + "/")
		login("alice", "cookie")
		b.waitText("#session", "HttpOnly cookie")
		if c, _ := b.js(`return document.cookie`).(string); strings.Contains(c, "access_token") {
			t.Errorf("document.cookie = %q: the page can read the session cookie, want HttpOnly", c)
		}
		if out := callAPI("POST /api/things", "200"); !subAlice.MatchString(out) {
			t.Errorf("POST /api/things with the cookie, same origin: no x-jwt-sub alice:\n%s", out)
		}
		shot("6-cookie-session")
	})

	t.Run("the second origin calls the API across origins", func(t *testing.T) {
		b.open(secondOrigin + "/")
		login("alice", "")
		if out := callAPI("GET /api/things", "200"); !subAlice.MatchString(out) {
			t.Errorf("GET /api/things from %s: no x-jwt-sub alice:\n%s", secondOrigin, out)
		}
		out := callAPI("GET /admin/users", "403")
		if !strings.Contains(out, "insufficient_scope") {
			t.Errorf("GET /admin/users from %s: the challenge is not readable across origins:\n%s", secondOrigin, out)
		}
		// The browser's preflight (for the authorization header) was answered by Envoy's CORS
		// filter: it never reached ext_authz or the upstream.
		if l, err := s.accessLog("OPTIONS /api/things 200"); err != nil {
			t.Errorf("Envoy access log: no preflight OPTIONS /api/things 200")
		} else if !strings.Contains(l, "authz_reason=- ") || strings.Contains(l, "via_upstream") {
			t.Errorf("the preflight went past Envoy's CORS filter: %s", l)
		} else {
			t.Log(l)
		}
		b.js(`window.scrollTo(0, 0)`) // the header says which origin the page is on
		shot("7-cross-origin")
	})

	t.Run("a cross-site form POST with the cookie is refused", func(t *testing.T) {
		// The cookie session from above is still in the browser. Another port of the same
		// host is the same site, so SameSite=Strict does not stop the browser sending it.
		b.open(secondOrigin + "/")
		b.click("#csrf")
		b.waitJS(`return location.href`, s.base+"/api/things")
		body := b.waitText("body", "csrf_origin")
		if !strings.Contains(body, `"error":"access_denied"`) {
			t.Errorf("the form POST's answer: %s, want access_denied csrf_origin", body)
		}
		if l, err := s.accessLog("POST /api/things 403", "authz_reason=csrf_origin"); err != nil {
			t.Errorf("Envoy access log: no POST /api/things 403 csrf_origin line")
		} else {
			t.Log(l)
		}
		shot("8-csrf-refused")
	})

	t.Run("an origin that is not allowed fails CORS", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!doctype html><title>elsewhere</title><p>another origin</p>"))
		}))
		defer other.Close()
		b.open(other.URL + "/")
		tok := s.login(t, "alice", "alice-password")
		got := b.jsAsync(`const done = arguments[arguments.length - 1];
			fetch("` + s.base + `/api/things", {headers: {authorization: "Bearer ` + tok + `"}})
				.then((r) => done("status " + r.status), (e) => done("refused " + e.name));`)
		if got != "refused TypeError" {
			t.Errorf("fetch from %s with a bearer header = %v, want the browser to refuse it (CORS)", other.URL, got)
		}
	})
}
