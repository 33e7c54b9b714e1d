package idp_test

import (
	"fmt"
	"testing"
)

// TestHydra runs jwt-authz against Ory Hydra's JWT access tokens (client credentials; scopes
// in an scp array, the client in client_id and sub), and a new signing key that Hydra uses
// at once.
func TestHydra(t *testing.T) {
	h := startedHydra(t)
	const audience = "https://api.example.com"
	err := h.CreateClient(map[string]any{
		"client_id": "svc.example.com", "client_secret": "svc-secret-0123456789",
		"grant_types": []string{"client_credentials"}, "scope": "read write",
		"audience": []string{audience}, "token_endpoint_auth_method": "client_secret_post",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := startAuthz(t, fmt.Sprintf(`
providers:
  - name: hydra
    issuer: %s
    audiences: [%s]
    algorithms: [RS256]
    keys:
      - discovery: true
        unknown_kid_cooldown: 1s
    claims_to_headers: {sub: x-jwt-sub, client_id: x-jwt-client, scp: x-jwt-scope}
rules:
  - name: write
    match: {path_prefix: /write}
    require: {scopes: [write]}
  - name: api
    match: {path_prefix: /}
    require: {providers: [hydra]}
`, h.URL, audience))
	a.waitReady(t)
	token := func(t *testing.T, scope string) string {
		t.Helper()
		tok, err := h.ClientCredentials("svc.example.com", "svc-secret-0123456789", scope, audience)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}

	t.Run("client credentials", func(t *testing.T) {
		tok := token(t, "read")
		t.Logf("Hydra access token: header %v; scp %v, client_id %v", header(t, tok), payload(t, tok)["scp"], payload(t, tok)["client_id"])
		d := a.check(t, "/api/things", tok)
		if d.code != 0 {
			t.Fatalf("Check(Hydra token) = %v, want allowed", d)
		}
		if got := d.headers["x-jwt-client"]; got != "svc.example.com" {
			t.Errorf("x-jwt-client = %q, want svc.example.com", got)
		}
		if got := d.headers["x-jwt-scope"]; got != "read" {
			t.Errorf("x-jwt-scope = %q, want read", got)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		if d := a.check(t, "/write/x", token(t, "read")); !d.denied(403, "insufficient_scope") {
			t.Errorf("Check(/write, scp [read]) = %v, want 403 insufficient_scope", d)
		}
		if d := a.check(t, "/write/x", token(t, "read write")); d.code != 0 {
			t.Errorf("Check(/write, scp [read write]) = %v, want allowed", d)
		}
	})

	t.Run("new signing key", func(t *testing.T) {
		before := token(t, "read")
		if err := h.AddSigningKey("rotated-1"); err != nil {
			t.Fatal(err)
		}
		after := token(t, "read")
		if got := header(t, after)["kid"]; got != "rotated-1" {
			t.Fatalf("Hydra signs with kid %v after adding rotated-1", got)
		}
		if d := a.check(t, "/api/things", after); d.code != 0 {
			t.Errorf("Check(token of the new key) = %v, want allowed", d)
		}
		if d := a.check(t, "/api/things", before); d.code != 0 {
			t.Errorf("Check(token of the previous key, still published) = %v, want allowed", d)
		}
	})
}
