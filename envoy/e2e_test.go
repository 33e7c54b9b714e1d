package envoy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEndToEnd drives the demo as a client would: through a real Envoy running envoy.yaml,
// with the real jwt-authz, demo-issuer and demo-upstream behind it. Everything runs twice:
// with Envoy's default header encoding and with encode_raw_headers, where jwt-authz gets
// header_map instead of headers (docs §1, pitfall 6). Each variant gets a stack of its own,
// because the last scenario kills jwt-authz.
func TestEndToEnd(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("encode_raw_headers=%v", raw), func(t *testing.T) {
			s := startStack(t, stackOptions{rawHeaders: raw})
			s.scenarios(t)
		})
	}
}

func (s *stack) scenarios(t *testing.T) {
	alice := s.login(t, "alice", "alice-password")
	admin := s.login(t, "admin", "admin-password")
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	t.Run("login then GET /api/things", func(t *testing.T) {
		r := s.do(t, "GET", "/api/things", bearer(alice), "")
		e := r.upstream(t, 200)
		if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("GET /api/things (alice): upstream saw x-jwt-sub %q, want [alice]", got)
		}
		if got := e.values("x-jwt-scope"); !slices.Equal(got, []string{"read"}) {
			t.Errorf("GET /api/things (alice): upstream saw x-jwt-scope %q, want [read]", got)
		}
		if got := e.values("authorization"); len(got) != 0 {
			t.Errorf("GET /api/things (alice): upstream saw an authorization header, want none (forward_token: false)")
		}
		if e.Path != "/api/things" {
			t.Errorf("GET /api/things (alice): upstream saw path %q", e.Path)
		}
	})

	t.Run("no token is 401 without error=", func(t *testing.T) {
		r := s.do(t, "GET", "/api/things", nil, "")
		r.challenge(t, 401, "")
	})

	t.Run("invalid tokens are 401 invalid_token", func(t *testing.T) {
		kid := s.kid(t)
		t.Run("control: a minted token with the issuer's key is accepted", func(t *testing.T) {
			s.do(t, "GET", "/api/things", bearer(mint(t, s.key, kid, s.claims())), "").upstream(t, 200)
		})
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		with := func(k string, v any) map[string]any {
			c := s.claims()
			c[k] = v
			return c
		}
		hourAgo := time.Now().Add(-time.Hour).Unix()
		expired := with("exp", hourAgo)
		expired["iat"], expired["nbf"] = hourAgo-600, hourAgo-600
		for _, tc := range []struct {
			name  string
			token string
		}{
			{"forged signature (another key, the issuer's kid)", mint(t, other, kid, s.claims())},
			{"expired an hour ago", mint(t, s.key, kid, expired)},
			{"another audience", mint(t, s.key, kid, with("aud", "other-api"))},
			{"another issuer", mint(t, s.key, kid, with("iss", "http://evil.example"))},
			{"alg none", mint(t, nil, kid, s.claims())},
			{"not a JWT", "not-a-jwt"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s.do(t, "GET", "/api/things", bearer(tc.token), "").challenge(t, 401, "invalid_token")
			})
		}
	})

	t.Run("alice on /admin/x is 403 insufficient_scope", func(t *testing.T) {
		s.do(t, "GET", "/admin/x", bearer(alice), "").challenge(t, 403, "insufficient_scope")
	})

	t.Run("admin on /admin/x is 200", func(t *testing.T) {
		e := s.do(t, "GET", "/admin/x", bearer(admin), "").upstream(t, 200)
		if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"admin"}) {
			t.Errorf("GET /admin/x (admin): upstream saw x-jwt-sub %q, want [admin]", got)
		}
	})

	t.Run("wrong password is 401", func(t *testing.T) {
		r := s.do(t, "POST", "/login", jsonHeader, `{"username":"alice","password":"wrong"}`)
		if r.status != 401 || r.isEcho() {
			t.Errorf("POST /login (alice, wrong password) = %d %s, want 401 from the issuer", r.status, clip(r.body))
		}
	})

	spoof := http.Header{"X-Jwt-Sub": {"admin"}, "X-Jwt-Roles": {"admin"}, "X-Jwt-Scope": {"read admin"}}
	t.Run("client x-jwt-* headers are overwritten with a token", func(t *testing.T) {
		h := bearer(alice)
		for k, v := range spoof {
			h[k] = v
		}
		e := s.do(t, "GET", "/api/things", h, "").upstream(t, 200)
		if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("GET /api/things (alice, x-jwt-sub: admin): upstream saw x-jwt-sub %q, want [alice]", got)
		}
		if got := e.values("x-jwt-scope"); !slices.Equal(got, []string{"read"}) {
			t.Errorf("GET /api/things (alice, x-jwt-scope: read admin): upstream saw x-jwt-scope %q, want [read]", got)
		}
		if got := strings.Join(e.values("x-jwt-roles"), ","); strings.Contains(got, "admin") {
			t.Errorf("GET /api/things (alice, x-jwt-roles: admin): upstream saw x-jwt-roles %q", got)
		}
	})

	t.Run("client x-jwt-* headers are removed on the public path", func(t *testing.T) {
		e := s.do(t, "GET", "/public/x", spoof, "").upstream(t, 200)
		for _, h := range []string{"x-jwt-sub", "x-jwt-roles", "x-jwt-scope"} {
			if got := e.values(h); len(got) != 0 {
				t.Errorf("GET /public/x (no token, %s sent): upstream saw %s %q, want none", h, h, got)
			}
		}
	})

	t.Run("issuer routes need no token", func(t *testing.T) {
		for _, p := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
			r := s.do(t, "GET", p, nil, "")
			var doc map[string]any
			if r.status != 200 || json.Unmarshal(r.body, &doc) != nil || r.isEcho() {
				t.Errorf("GET %s (no token) = %d %s, want 200 JSON from the issuer", p, r.status, clip(r.body))
			}
		}
		// POST /login was exercised above; only POST is open: GET /login is the API's.
		s.do(t, "GET", "/login", nil, "").challenge(t, 401, "")
	})

	t.Run("path tricks do not reach the upstream unauthenticated", func(t *testing.T) {
		for _, tc := range []struct{ method, target string }{
			{"POST", "/login/../api"},
			{"GET", "/login/../api"},
			{"GET", "//api"},
			{"GET", "/%2Fapi"},
			{"GET", "/%2fapi"},
			{"POST", "/login/..%2Fapi"},
			{"POST", "/login%2F..%2Fapi"},
			{"GET", "/public/../api"},
			{"GET", "/public/%2e%2e/api"},
			{"GET", "/public/..%2Fapi"},
			{"GET", "/public%2F..%2Fapi"},
			{"GET", "/.well-known/../api"},
			{"GET", "/.well-known/..%2Fapi"},
			{"GET", "/%5Capi"},
			{"GET", "/public/..%5Capi"},
			{"POST", "/login/"},
			{"POST", "/LOGIN"},
		} {
			t.Run(tc.method+" "+tc.target, func(t *testing.T) {
				r := s.raw(t, tc.method, tc.target)
				switch {
				case r.isEcho():
					t.Errorf("%s %s (no token) = %d from the upstream, want it stopped", tc.method, tc.target, r.status)
				case r.status < 300 || !slices.Contains([]int{301, 302, 307, 308, 400, 401, 404}, r.status):
					t.Errorf("%s %s (no token) = %d %s, want 401, 400, 404 or a redirect", tc.method, tc.target, r.status, clip(r.body))
				default:
					t.Logf("%s %s (no token) = %d %s", tc.method, tc.target, r.status, r.header.Get("Location"))
				}
			})
		}
	})

	t.Run("access log explains decisions", func(t *testing.T) {
		lines := [][]string{
			{"GET /admin/x 403", "flags=UAEX", "details=ext_authz_denied", "rule=admin", "sub=alice"},
			{"GET /api/things 200", "upstream=upstream", "rule=api", "sub=alice"},
			{"GET /api/things 401", "flags=UAEX"},
		}
		if s.opts.module { // a local reply of the module's own: its details name the reason
			lines = [][]string{
				{"GET /admin/x 403", "details=jwt_authz_insufficient_scope", "authz_reason=insufficient_scope", "rule=admin", "sub=alice",
					"decision=deny", "provider=demo", "iss=" + s.issuer + " "},
				{"GET /api/things 200", "upstream=upstream", "authz_reason=allowed", "rule=api", "sub=alice",
					"decision=allow", "provider=demo", "iss=" + s.issuer + " "},
				{"GET /api/things 401", "details=jwt_authz_missing_token", "authz_reason=missing_token", "rule=api", "decision=deny",
					"provider=- iss=- "},
			}
		}
		for _, parts := range lines {
			l, err := s.accessLog(parts...)
			if err != nil {
				t.Errorf("Envoy access log: no line with %q", parts)
				continue
			}
			if strings.Contains(l, "401") && strings.Contains(l, "authz_reason=-") {
				t.Errorf("Envoy access log for a 401 has no reason: %s", l)
			}
			t.Log(l)
		}
	})

	// docker-compose.yaml's health checks run each binary with -healthcheck URL (the image has
	// no shell or curl): the same commands, pointed at this stack's ports. Envoy plays no part,
	// so once is enough.
	if s.opts.module { // the rest is about the jwt-authz server behind ext_authz
		return
	}
	if !s.opts.rawHeaders {
		t.Run("compose health checks: -healthcheck URL", func(t *testing.T) {
			port := map[string]int{"jwt-authz": s.AuthzHTTP, "demo-issuer": s.Issuer, "demo-upstream": s.Upstream}
			closed := freePorts(t).Listener
			for name, probe := range goServices {
				t.Run(name, func(t *testing.T) {
					u, err := url.Parse(probe)
					if err != nil {
						t.Fatal(err)
					}
					bin := binary(t, name)
					u.Host = "127.0.0.1:" + strconv.Itoa(port[name])
					if out, err := exec.Command(bin, "-healthcheck", u.String()).CombinedOutput(); err != nil {
						t.Errorf("%s -healthcheck %s: %v, want exit 0\n%s", name, u, err, clip(out))
					}
					u.Host = "127.0.0.1:" + strconv.Itoa(closed)
					if err := exec.Command(bin, "-healthcheck", u.String()).Run(); err == nil {
						t.Errorf("%s -healthcheck %s (nothing listening): exit 0, want failure", name, u)
					}
				})
			}
		})
	}

	// Last: it kills jwt-authz.
	t.Run("jwt-authz down is 503, never 200", func(t *testing.T) {
		s.authz.Kill()
		for i := range 3 {
			for _, tc := range []struct {
				path string
				h    http.Header
			}{{"/api/things", bearer(alice)}, {"/public/x", nil}, {"/api/things", nil}} {
				r := s.do(t, "GET", tc.path, tc.h, "")
				if r.status != 503 || r.isEcho() {
					t.Errorf("try %d: GET %s with jwt-authz down = %d %s, want 503", i, tc.path, r.status, clip(r.body))
				}
			}
		}
		// The issuer's routes do not depend on jwt-authz.
		if r := s.do(t, "POST", "/login", jsonHeader, `{"username":"alice","password":"alice-password"}`); r.status != 200 {
			t.Errorf("POST /login with jwt-authz down = %d, want 200", r.status)
		}
		if l, err := s.accessLog("GET /api/things 503", "flags=UAEX"); err != nil {
			t.Errorf("Envoy access log: no UAEX 503 line")
		} else {
			t.Log(l)
		}
	})
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

var client = &http.Client{
	Timeout: 10 * time.Second,
	// A redirect is an answer to check, not to follow.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// reply is Envoy's answer to one request.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *stack) do(t *testing.T, method, path string, h http.Header, body string) reply {
	t.Helper()
	r, err := s.send(method, path, h, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is do for a goroutine other than the test's: it returns its error.
func (s *stack) send(method, path string, h http.Header, body string) (reply, error) {
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

// raw sends a request line byte for byte (net/http would clean or re-escape the target).
func (s *stack) raw(t *testing.T, method, target string) reply {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: demo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, target); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// login returns an access token from POST /login through Envoy.
func (s *stack) login(t *testing.T, user, password string) string {
	t.Helper()
	tok, err := s.accessToken(user, password)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// accessToken is login for a goroutine other than the test's: it returns its error.
func (s *stack) accessToken(user, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	r, err := s.send("POST", "/login", jsonHeader, string(body))
	if err != nil {
		return "", err
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("POST /login (%s) = %d %s, want 200 and an access_token", user, r.status, clip(r.body))
	}
	if tok.Token != tok.AccessToken || !strings.EqualFold(tok.TokenType, "Bearer") {
		return "", fmt.Errorf("POST /login (%s): token == access_token is %v, token_type %q; want true, Bearer", user, tok.Token == tok.AccessToken, tok.TokenType)
	}
	return tok.AccessToken, nil
}

// echo is demo-upstream's answer: the request as it arrived there.
type echo struct {
	Method  string         `json:"method"`
	Path    string         `json:"path"`
	Headers map[string]any `json:"headers"`
}

func (r reply) isEcho() bool {
	var e echo
	return json.Unmarshal(r.body, &e) == nil && e.Method != "" && e.Headers != nil
}

// upstream checks that the request reached the upstream with status and returns what the
// upstream saw.
func (r reply) upstream(t *testing.T, status int) echo {
	t.Helper()
	var e echo
	if r.status != status || json.Unmarshal(r.body, &e) != nil || e.Headers == nil {
		t.Fatalf("status %d, body %s; want %d from the upstream", r.status, clip(r.body), status)
	}
	return e
}

// values returns the values the upstream saw for header name, whether the echo lists a
// header as a string or as a list of strings.
func (e echo) values(name string) []string {
	var out []string
	for k, v := range e.Headers {
		if !strings.EqualFold(k, name) {
			continue
		}
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, s := range v {
				out = append(out, fmt.Sprint(s))
			}
		}
	}
	return out
}

// challenge checks a denial from jwt-authz: status, a Bearer challenge with a realm and
// error=code (none at all when code is empty: RFC 6750 §3.1), and for an error a JSON body
// with the same code.
func (r reply) challenge(t *testing.T, status int, code string) {
	t.Helper()
	if r.isEcho() {
		t.Fatalf("status %d from the upstream, want %d from jwt-authz", r.status, status)
	}
	if r.status != status {
		t.Errorf("status %d (%s), want %d", r.status, clip(r.body), status)
	}
	www := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(www, "Bearer ") || !strings.Contains(www, `realm="`) {
		t.Errorf("WWW-Authenticate %q, want Bearer realm=...", www)
	}
	if code == "" {
		if strings.Contains(www, "error=") {
			t.Errorf("WWW-Authenticate %q, want no error= without a token", www)
		}
		return
	}
	if !strings.Contains(www, `error="`+code+`"`) {
		t.Errorf("WWW-Authenticate %q, want error=%q", www, code)
	}
	var body struct{ Error string }
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error != code {
		t.Errorf("body %s, want JSON error %q", clip(r.body), code)
	}
}
