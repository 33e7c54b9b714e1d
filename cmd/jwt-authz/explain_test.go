package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// explainRun runs jwt-authz with args and stdin and returns what it printed.
func explainRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := runIO(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr); err != nil {
		t.Fatalf("jwt-authz %s = %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("-explain output lacks %q:\n%s", w, out)
		}
	}
}

// TestExplainFileKeys: offline, with the example's own HMAC key; the token comes from a
// file and from stdin, and neither it nor its signature is ever printed.
func TestExplainFileKeys(t *testing.T) {
	const cfg = "../../config/testdata/example.yaml"
	alice, err := os.ReadFile("../../config/testdata/tokens/alice.jwt")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(alice))
	signature := token[strings.LastIndexByte(token, '.')+1:]
	args := []string{"-config", cfg, "-explain", "-method", "DELETE", "-path", "/public/../admin/users", "-now", "2026-05-01T12:00:00Z"}
	for name, out := range map[string]string{
		"file":  explainRun(t, "", append(args, "-token", "../../config/testdata/tokens/alice.jwt")...),
		"stdin": explainRun(t, "Bearer "+token+"\n", append(args, "-token", "-")...),
	} {
		t.Run(name, func(t *testing.T) {
			wantLines(t, out,
				`note: provider "demo" has remote keys, not fetched (use -fetch-keys)`,
				"rules see the path as /admin/users",
				`rule "public": not selected: path /admin/users is not under /public`,
				`rule "admin": selected`,
				"credential: found in header authorization",
				`token header: alg HS256, kid "hs-1", typ JWT`,
				`iss "https://issuer.example": provider "demo"`,
				"exp: 2026-05-01T13:00:00Z (now 2026-05-01T12:00:00Z, skew 30s; now < exp + skew): ok",
				`signature and claims: verified (sub "alice")`,
				"scopes required [admin], missing [admin]: FAILS",
				`decision: deny, reason insufficient_scope, HTTP 403, rule "admin"`,
				`www-authenticate: Bearer realm="demo", error="insufficient_scope"`,
			)
			if strings.Contains(out, signature) || strings.Contains(out, token[:20]) {
				t.Errorf("-explain printed the token or its signature:\n%s", out)
			}
		})
	}
	out := explainRun(t, "", append(args[:len(args)-6], "-path", "/orders", "-token", "../../config/testdata/tokens/tampered.jwt")...)
	wantLines(t, out, `rule "api": selected`, "verification ends: invalid_signature", "decision: deny, reason invalid_signature, HTTP 401")
}

// TestExplainCELAndRemoteKeys: keys fetched from a JWKS URL with -fetch-keys, a CEL
// condition shown with the header values it reads, and the allow's upstream headers.
func TestExplainCELAndRemoteKeys(t *testing.T) {
	key, err := generateKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*key.pub}})
	}))
	defer jwks.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cel.yaml")
	cfgText := `grpc_address: 127.0.0.1:0
providers:
- name: idp
  issuer: https://idp.example
  audiences: [api]
  algorithms: [ES256]
  keys: [{jwks_uri: "` + jwks.URL + `"}]
  claims_to_headers: {tenant: x-tenant}
rules:
- name: tenant
  match: {path_prefix: /t}
  require: {cel: "claims.tenant == request.headers['x-tenant-id']"}
`
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.sign(&cfg.Providers[0], map[string]any{"sub": "bob", "tenant": "acme"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", cfgPath, "-explain", "-path", "/t/x", "-token", "-", "-header", "X-Tenant-Id: acme"}
	out := explainRun(t, token, append(args, "-fetch-keys")...)
	wantLines(t, out,
		`key "k1": found`,
		"require.cel claims.tenant == request.headers['x-tenant-id']",
		`request.headers["x-tenant-id"] = "acme"`,
		"    = true",
		"decision: allow, reason allowed, HTTP 200",
		"upstream header x-tenant: acme",
	)
	out = explainRun(t, token, args...)
	wantLines(t, out, `provider "idp" has remote keys, not fetched`, "keys: unavailable", "reason keys_unavailable, HTTP 503")
}

// TestExplainIntrospection: an opaque token of a provider with introspection. Offline the
// endpoint is not called and the answer says so (introspection_unavailable, never
// malformed_token); with -fetch-keys the real endpoint answers and the token is allowed.
func TestExplainIntrospection(t *testing.T) {
	const secret, opaque = "explain-secret-42c1", "opaque-explain-5e7b90a1"
	calls := 0
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if _, s, ok := r.BasicAuth(); !ok || s != secret || r.PostFormValue("token") != opaque {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"iss":"https://idp.example","sub":"carol","aud":"api","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	defer endpoint.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "intro.secret"), secret+"\n")
	cfgPath := filepath.Join(dir, "intro.yaml")
	cfgText := `grpc_address: 127.0.0.1:0
providers:
- name: idp
  issuer: https://idp.example
  audiences: [api]
  algorithms: [ES256]
  keys: [{jwks_uri: "https://idp.example/jwks"}]
  introspection: {endpoint: "` + endpoint.URL + `", client_id: explain, client_secret_file: intro.secret}
  claims_to_headers: {sub: x-sub}
rules:
- name: api
  match: {path_prefix: /}
  require: {providers: [idp]}
`
	writeFile(t, cfgPath, cfgText)
	args := []string{"-config", cfgPath, "-explain", "-path", "/orders", "-token", "-"}
	out := explainRun(t, opaque, args...)
	wantLines(t, out, `note: provider "idp" introspects opaque tokens; its endpoint is not called (use -fetch-keys)`,
		"introspection_unavailable")
	if strings.Contains(out, "malformed_token") || calls != 0 {
		t.Errorf("offline -explain of an opaque token: %d calls to the endpoint, output:\n%s", calls, out)
	}
	out = explainRun(t, opaque, append(args, "-fetch-keys")...)
	wantLines(t, out, `token: opaque (neither a JWS nor a JWE): introspected at the endpoint of [idp]`,
		"decision: allow, reason allowed, HTTP 200", "upstream header x-sub: carol")
	if calls != 1 {
		t.Errorf("-explain -fetch-keys called the introspection endpoint %d times, want 1", calls)
	}
	for _, never := range []string{secret, opaque} {
		if strings.Contains(out, never) {
			t.Errorf("-explain printed %q:\n%s", never, out)
		}
	}
}
