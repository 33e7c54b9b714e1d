package forwardauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
)

const testConfig = `
grpc_address: 127.0.0.1:0
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub, email: x-jwt-email}
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: admin
  match: {path_prefix: /admin}
  require: {scopes: [admin]}
- name: api
  match: {path_prefix: /api}
  require: {}
`

// staticKeys is one ES256 key, always ready.
type staticKeys struct{ key *jose.JSONWebKey }

func (s staticKeys) Lookup(_ context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	return s.key, kid == s.key.KeyID || kid == "", nil
}
func (staticKeys) Ready() bool { return true }

type fixture struct {
	url    string
	priv   *ecdsa.PrivateKey
	h      *Handler
	seen   []extauthz.Decision
	server *extauthz.Server
}

// newFixture serves a Handler on 127.0.0.1 trusting the given proxies.
func newFixture(t testing.TB, trusted ...string) *fixture {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(testConfig), t.TempDir())
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	p, err := extauthz.NewPolicy(cfg, map[string]extauthz.KeySource{
		"demo": staticKeys{&jose.JSONWebKey{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	f := &fixture{priv: priv}
	f.server = extauthz.NewServer(p, extauthz.Options{Observe: func(d extauthz.Decision, _ time.Duration) { f.seen = append(f.seen, d) }})
	var prefixes []netip.Prefix
	for _, s := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(s))
	}
	f.h = New(f.server, prefixes)
	ts := httptest.NewServer(f.h)
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

func (f *fixture) mint(t testing.TB, scope string) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{"iss": "https://issuer.example", "aud": "demo-api", "sub": "alice",
		"email": "alice@example.com", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if scope != "" {
		claims["scope"] = scope
	}
	tok, err := jwt.Signed(sg).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends one check request and returns the response with its body read.
func call(t *testing.T, method, url string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func reasonOf(body string) string {
	var v struct{ Reason string }
	json.Unmarshal([]byte(body), &v)
	return v.Reason
}

func TestEnvoyHTTPFace(t *testing.T) {
	f := newFixture(t) // Envoy's face reads no forwarded headers: no trust needed
	tok, admin := f.mint(t, ""), f.mint(t, "admin")
	for _, tc := range []struct {
		name, method, path string
		headers            []string
		status             int
		reason             string
		sub                string
		challenge          string
	}{
		{name: "allow", method: "GET", path: "/api/items?x=1", headers: []string{"Authorization", "Bearer " + tok}, status: 200, sub: "alice"},
		{name: "allow HEAD", method: "HEAD", path: "/api/items", headers: []string{"Authorization", "Bearer " + tok}, status: 200, sub: "alice"},
		{name: "spoofed identity", method: "GET", path: "/api/items", headers: []string{"Authorization", "Bearer " + tok, "X-Jwt-Sub", "root"}, status: 200, sub: "alice"},
		{name: "public", method: "GET", path: "/public/x", status: 200},
		{name: "no token", method: "GET", path: "/api/items", status: 401, reason: "missing_token", challenge: `Bearer realm="demo"`},
		{name: "bad token", method: "GET", path: "/api/items", headers: []string{"Authorization", "Bearer " + tok[:len(tok)-6] + "AAAAAA"}, status: 401, reason: "invalid_signature", challenge: `error="invalid_token"`},
		{name: "two tokens", method: "GET", path: "/api/items", headers: []string{"Authorization", "Bearer " + tok, "Authorization", "Bearer " + tok}, status: 400, reason: "multiple_tokens", challenge: `error="invalid_request"`},
		{name: "missing scope", method: "GET", path: "/admin/users", headers: []string{"Authorization", "Bearer " + tok}, status: 403, reason: "insufficient_scope", challenge: `error="insufficient_scope"`},
		{name: "scope", method: "DELETE", path: "/admin/users", headers: []string{"Authorization", "Bearer " + admin}, status: 200, sub: "alice"},
		{name: "dot segments", method: "GET", path: "/public/../admin/users", headers: []string{"Authorization", "Bearer " + tok}, status: 403, reason: "insufficient_scope", challenge: `scope="admin"`},
		{name: "encoded", method: "GET", path: "/%61dmin/users", headers: []string{"Authorization", "Bearer " + tok}, status: 403, reason: "insufficient_scope", challenge: `scope="admin"`},
		{name: "double slash", method: "GET", path: "//admin/users", headers: []string{"Authorization", "Bearer " + tok}, status: 403, reason: "insufficient_scope", challenge: `scope="admin"`},
		{name: "no rule", method: "GET", path: "", headers: []string{"Authorization", "Bearer " + tok}, status: 403, reason: "no_matching_rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, tc.method, f.url+EnvoyPrefix+tc.path, tc.headers...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s%s = %d %s, want %d", tc.method, EnvoyPrefix, tc.path, resp.StatusCode, body, tc.status)
			}
			if got := resp.Header.Get("X-Jwt-Sub"); got != tc.sub {
				t.Errorf("X-Jwt-Sub = %q, want %q", got, tc.sub)
			}
			if tc.status == 200 {
				rm := resp.Header.Get("X-Envoy-Auth-Headers-To-Remove")
				if tc.sub == "" && rm != "x-jwt-email, x-jwt-sub" || tc.sub != "" && rm != "" {
					t.Errorf("X-Envoy-Auth-Headers-To-Remove = %q: every injectable header not set must be removed", rm)
				}
				if tc.sub != "" && resp.Header.Get("X-Jwt-Email") != "alice@example.com" {
					t.Errorf("X-Jwt-Email = %q, want the claim", resp.Header.Get("X-Jwt-Email"))
				}
				return
			}
			if tc.method != "HEAD" && reasonOf(body) != tc.reason {
				t.Errorf("body = %s, want reason %s", body, tc.reason)
			}
			if ch := resp.Header.Get("Www-Authenticate"); !strings.Contains(ch, tc.challenge) || (tc.challenge == "") != (ch == "") {
				t.Errorf("WWW-Authenticate = %q, want %q", ch, tc.challenge)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}
	for _, d := range f.seen {
		if d.Front != extauthz.FrontEnvoyHTTP {
			t.Errorf("decision %+v not labelled envoy_http", d)
		}
	}
}

func TestForwardedFaces(t *testing.T) {
	f := newFixture(t, "127.0.0.0/8")
	tok := f.mint(t, "")
	orig := func(method, uri string) []string {
		return []string{"X-Original-Method", method, "X-Original-Uri", uri, "Host", "api.example.com"}
	}
	fwd := func(method, uri string) []string {
		return []string{"X-Forwarded-Method", method, "X-Forwarded-Uri", uri, "X-Forwarded-Host", "api.example.com", "X-Forwarded-Proto", "https"}
	}
	bearer := []string{"Authorization", "Bearer " + tok}
	for _, tc := range []struct {
		name, path string
		headers    []string
		status     int
		reason     string
	}{
		{"nginx allow", OriginalPath, append(orig("GET", "/api/items?a=1,2"), bearer...), 200, ""},
		{"nginx no token", OriginalPath, orig("GET", "/api/items"), 401, "missing_token"},
		{"nginx path trick", OriginalPath, append(orig("GET", "/public/%2e%2e/admin"), bearer...), 403, "insufficient_scope"},
		{"nginx no uri", OriginalPath, append([]string{"X-Original-Method", "GET"}, bearer...), 400, "malformed_request"},
		{"nginx absolute uri", OriginalPath, append(orig("GET", "http://evil/public"), bearer...), 400, "malformed_request"},
		{"nginx bad method", OriginalPath, append(orig("G T", "/api/items"), bearer...), 400, "malformed_request"},
		{"forwarded allow", ForwardedPath, append(fwd("POST", "/api/items"), bearer...), 200, ""},
		{"forwarded no token", ForwardedPath, fwd("GET", "/api/items"), 401, "missing_token"},
		{"forwarded two uris", ForwardedPath, append(fwd("GET", "/public/x"), "X-Forwarded-Uri", "/api/items"), 400, "malformed_request"},
		{"forwarded two hosts", ForwardedPath, append(fwd("GET", "/public/x")[:4], "X-Forwarded-Host", "a.example, b.example"), 400, "malformed_request"},
		{"forwarded no host", ForwardedPath, fwd("GET", "/public/x")[:4], 400, "malformed_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, "GET", f.url+tc.path, tc.headers...)
			if resp.StatusCode != tc.status || reasonOf(body) != tc.reason {
				t.Fatalf("GET %s %v = %d %s, want %d %s", tc.path, tc.headers, resp.StatusCode, body, tc.status, tc.reason)
			}
			if tc.status == 200 && resp.Header.Get("X-Jwt-Sub") != "alice" {
				t.Errorf("allow without X-Jwt-Sub: %v", resp.Header)
			}
			if tc.status != 200 && tc.path == OriginalPath && resp.Header.Get(DenialHeader) != body {
				t.Errorf("%s = %q, want the body %q for nginx to render", DenialHeader, resp.Header.Get(DenialHeader), body)
			}
		})
	}
}

func TestUntrustedProxy(t *testing.T) {
	f := newFixture(t, "10.0.0.0/8") // the test client is 127.0.0.1: not trusted
	tok := f.mint(t, "")
	for _, path := range []string{OriginalPath, ForwardedPath} {
		resp, body := call(t, "GET", f.url+path, "Authorization", "Bearer "+tok,
			"X-Original-Method", "GET", "X-Original-Uri", "/api/items",
			"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/items", "X-Forwarded-Host", "api.example.com")
		if resp.StatusCode != 403 || reasonOf(body) != "untrusted_proxy" {
			t.Errorf("GET %s from an untrusted peer = %d %s, want 403 untrusted_proxy", path, resp.StatusCode, body)
		}
	}
	// A reload that trusts the peer takes effect at once.
	f.h.SetTrustedProxies([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	resp, body := call(t, "GET", f.url+ForwardedPath, "Authorization", "Bearer "+tok,
		"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/items", "X-Forwarded-Host", "api.example.com")
	if resp.StatusCode != 200 {
		t.Errorf("after trusting 127.0.0.1: %d %s, want 200", resp.StatusCode, body)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	f := newFixture(t, "127.0.0.0/8")
	for _, path := range []string{"/", "/envoyx/api", "/auth", "/auth/original/x", "/metrics"} {
		if resp, _ := call(t, "GET", f.url+path); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if len(f.seen) != 0 {
		t.Errorf("unknown endpoints were counted as decisions: %+v", f.seen)
	}
}

// FuzzForwarded: whatever a trusted proxy forwards, the answer is 200 only for the public
// rule or with the one valid token, and is never a 2xx other than 200 (which Envoy would
// read as a denial with an empty body, and nginx as an allow).
func FuzzForwarded(f *testing.F) {
	fx := newFixture(f, "127.0.0.0/8")
	tok := fx.mint(f, "admin")
	f.Add("GET", "/api/items", "api.example.com", "Bearer "+tok, false)
	f.Add("GET", "/public/../api", "h", "Bearer x.y.z", true)
	f.Add("POST", "//admin/%2e%2e/api?x=1", "h:80", "bearer "+tok, true)
	f.Add("GET", "/%61pi", "", "", false)
	f.Fuzz(func(t *testing.T, method, uri, host, authz string, nginx bool) {
		path, mh, uh, hh := ForwardedPath, "X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"
		if nginx {
			path, mh, uh, hh = OriginalPath, "X-Original-Method", "X-Original-Uri", "Host"
		}
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		for name, v := range map[string]string{mh: method, uh: uri, "Authorization": authz} {
			r.Header[name] = []string{v}
		}
		if nginx {
			r.Host = host
		} else {
			r.Header[hh] = []string{host}
		}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		if w.Code >= 200 && w.Code < 300 && w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code != 200 {
			return
		}
		d := fx.seen[len(fx.seen)-1]
		if d.Reason != extauthz.ReasonPublic && !strings.Contains(authz, tok) {
			t.Fatalf("%s %q with %q = allowed (%s) without the valid token", method, uri, authz, d.Reason)
		}
	})
}
