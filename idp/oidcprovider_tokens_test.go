package idp_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/idp"
)

// writeFile writes text to name in a fresh temporary directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opaqueConfig is the jwt-authz config for oidc-provider's opaque access tokens: the
// introspection endpoint from discovery, jwt-authz authenticated as introspection (the
// introspection block's members), write needing the scope write.
func opaqueConfig(op *idp.OIDCProvider, introspection string) string {
	return fmt.Sprintf(`
providers:
  - name: oidc-provider
    issuer: %s
    audiences: [%s]
    algorithms: [RS256]
    keys: [{discovery: true}]
    claims_to_headers: {sub: x-jwt-sub, client_id: x-jwt-client, scope: x-jwt-scope}
    introspection: {%s}
rules:
  - name: write
    match: {path_prefix: /write}
    require: {scopes: [write]}
  - name: api
    match: {path_prefix: /}
    require: {providers: [oidc-provider]}
`, op.URL, idp.OpaqueResource, introspection)
}

// TestOIDCProviderOpaque: oidc-provider issues opaque access tokens for a resource server
// whose accessTokenFormat is opaque, and jwt-authz checks them at oidc-provider's RFC 7662
// introspection endpoint, found by discovery, authenticated with client_secret_basic.
func TestOIDCProviderOpaque(t *testing.T) {
	op := startedOIDCProvider(t)
	const rsSecret = "rs.example.com-secret"
	var a *authz
	var read string
	// Registered before startAuthz, so run after jwt-authz has exited: its log is complete.
	t.Cleanup(func() {
		if read != "" && strings.Contains(a.out.String(), read) || strings.Contains(a.out.String(), rsSecret) {
			t.Errorf("jwt-authz's log holds the token or the introspection secret")
		}
	})
	// cache_for 1ms: an active answer is asked again at the next check, so a revocation shows.
	a = startAuthz(t, opaqueConfig(op, fmt.Sprintf("client_id: rs.example.com, client_secret_file: %s, cache_for: 1ms",
		writeFile(t, "secret", rsSecret+"\n"))))
	a.waitReady(t)

	tokens := func(t *testing.T, scope string) idp.Tokens {
		t.Helper()
		tok, err := op.ClientCredentialsFor(idp.OpaqueResource, "svc.example.com", "svc.example.com-secret", scope, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tok.AccessToken, ".") {
			t.Fatalf("oidc-provider's access token for %s has dots: not opaque", idp.OpaqueResource)
		}
		return tok
	}
	token := func(t *testing.T, scope string) string { t.Helper(); return tokens(t, scope).AccessToken }

	first := tokens(t, "read")
	read = first.AccessToken
	t.Logf("oidc-provider opaque access token: %d characters, token_type %s", len(read), first.TokenType)
	d := a.check(t, "/api/things", read)
	if d.code != 0 {
		t.Fatalf("Check(opaque token) = %v, want allowed", d)
	}
	t.Logf("jwt-authz: allowed, x-jwt-client %q, x-jwt-scope %q", d.headers["x-jwt-client"], d.headers["x-jwt-scope"])
	if d.headers["x-jwt-client"] != "svc.example.com" || d.headers["x-jwt-scope"] != "read" {
		t.Errorf("identity headers %v, want x-jwt-client svc.example.com and x-jwt-scope read from the introspection answer", d.headers)
	}

	t.Run("scopes", func(t *testing.T) {
		if d := a.check(t, "/write/x", read); !d.denied(403, "insufficient_scope") {
			t.Errorf("Check(/write, scope read) = %v, want 403 insufficient_scope", d)
		}
		if d := a.check(t, "/write/x", token(t, "read write")); d.code != 0 {
			t.Errorf("Check(/write, scope read write) = %v, want allowed", d)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		used, unused := token(t, "read"), token(t, "read")
		if d := a.check(t, "/api/things", used); d.code != 0 {
			t.Fatalf("Check(before revocation) = %v, want allowed", d)
		}
		for _, tok := range []string{used, unused} {
			if err := op.Revoke("svc.example.com", "svc.example.com-secret", tok); err != nil {
				t.Fatal(err)
			}
		}
		for name, tok := range map[string]string{"checked before": used, "never checked": unused} {
			d := a.check(t, "/api/things", tok)
			if !d.denied(401, "token_inactive") || !strings.HasPrefix(d.challenge, "Bearer") {
				t.Errorf("Check(revoked token, %s) = %v, want 401 token_inactive with a Bearer challenge", name, d)
			}
		}
	})

	t.Run("not issued", func(t *testing.T) {
		if d := a.check(t, "/api/things", strings.Repeat("A", len(read))); !d.denied(401, "token_inactive") {
			t.Errorf("Check(an opaque token oidc-provider never issued) = %v, want 401 token_inactive", d)
		}
	})

	t.Run("wrong client secret", func(t *testing.T) {
		// oidc-provider refuses the introspection call itself (401 invalid_client): fail closed.
		b := startAuthz(t, opaqueConfig(op, fmt.Sprintf("client_id: rs.example.com, client_secret_file: %s",
			writeFile(t, "secret", "not-the-secret"))))
		if d := b.check(t, "/api/things", token(t, "read")); !d.denied(503, "introspection_unavailable") {
			t.Errorf("Check(introspection with a wrong secret) = %v, want 503 introspection_unavailable", d)
		}
	})
}
