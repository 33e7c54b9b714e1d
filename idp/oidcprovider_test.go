package idp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/idp"
)

// oidcProviderConfig is the jwt-authz config for provider.mjs: RFC 9068 access tokens, so
// types names only their typ and an ID token (typ JWT, or none) is not one.
func oidcProviderConfig(op *idp.OIDCProvider, audiences string) string {
	return fmt.Sprintf(`
providers:
  - name: oidc-provider
    issuer: %s
    audiences: %s
    algorithms: [RS256, ES256, EdDSA]
    types: [at+jwt, application/at+jwt]
    keys:
      - discovery: true
    claims_to_headers: {sub: x-jwt-sub, client_id: x-jwt-client, scope: x-jwt-scope}
rules:
  - name: write
    match: {path_prefix: /write}
    require: {scopes: [write]}
  - name: api
    match: {path_prefix: /}
    require: {providers: [oidc-provider]}
`, op.URL, audiences)
}

// TestOIDCProvider runs jwt-authz against node oidc-provider's JWT access tokens (resource
// indicators, header typ at+jwt) from client credentials and from a browser-style
// authorization-code login, in each of its key types, and refuses its ID tokens.
func TestOIDCProvider(t *testing.T) {
	op := startedOIDCProvider(t)
	a := startAuthz(t, oidcProviderConfig(op, "["+idp.Resource+"]"))
	a.waitReady(t)

	service := func(t *testing.T, client, scope string) string {
		t.Helper()
		tok, err := op.ClientCredentials(client, client+"-secret", scope)
		if err != nil {
			t.Fatalf("client credentials for %s: %v", client, err)
		}
		return tok.AccessToken
	}

	t.Run("client credentials", func(t *testing.T) {
		for _, c := range []struct{ client, alg string }{
			{"svc.example.com", "RS256"}, {"svc-es256", "ES256"}, {"svc-eddsa", "EdDSA"},
		} {
			tok := service(t, c.client, "read")
			h := header(t, tok)
			if h["alg"] != c.alg || h["typ"] != "at+jwt" {
				t.Fatalf("%s's token: alg %v, typ %v, want %s, at+jwt", c.client, h["alg"], h["typ"], c.alg)
			}
			d := a.check(t, "/api/things", tok)
			if d.code != 0 {
				t.Errorf("Check(%s token of %s) = %v, want allowed", c.alg, c.client, d)
				continue
			}
			if got := d.headers["x-jwt-client"]; got != c.client {
				t.Errorf("x-jwt-client = %q, want %s", got, c.client)
			}
		}
	})

	t.Run("scopes", func(t *testing.T) {
		if d := a.check(t, "/write/x", service(t, "svc.example.com", "read")); !d.denied(403, "insufficient_scope") {
			t.Errorf("Check(/write, scope read) = %v, want 403 insufficient_scope", d)
		}
		if d := a.check(t, "/write/x", service(t, "svc.example.com", "read write")); d.code != 0 {
			t.Errorf("Check(/write, scope read write) = %v, want allowed", d)
		}
	})

	t.Run("login", func(t *testing.T) {
		tok, err := op.Login("alice", "openid email read", "")
		if err != nil {
			t.Fatal(err)
		}
		d := a.check(t, "/api/things", tok.AccessToken)
		if d.code != 0 {
			t.Fatalf("Check(alice's access token) = %v, want allowed", d)
		}
		if got := d.headers["x-jwt-sub"]; got != "alice" {
			t.Errorf("x-jwt-sub = %q, want alice", got)
		}
		if got := d.headers["x-jwt-client"]; got != "web-app" {
			t.Errorf("x-jwt-client = %q, want web-app", got)
		}
		if d := a.check(t, "/write/x", tok.AccessToken); !d.denied(403, "insufficient_scope") {
			t.Errorf("Check(/write, alice granted read) = %v, want 403 insufficient_scope", d)
		}
	})

	t.Run("ID token", func(t *testing.T) {
		tok, err := op.Login("alice", "openid email read", "")
		if err != nil {
			t.Fatal(err)
		}
		id := payload(t, tok.IDToken)
		t.Logf("oidc-provider ID token: header typ %v, aud %v, at_hash present %t, c_hash present %t, nonce present %t",
			header(t, tok.IDToken)["typ"], id["aud"], id["at_hash"] != nil, id["c_hash"] != nil, id["nonce"] != nil)
		if d := a.check(t, "/api/things", tok.IDToken); d.code == 0 || d.http != 401 {
			t.Errorf("Check(ID token, aud web-app) = %v, want 401", d)
		}
		// A provider that also lists the client as an audience: no claim marks this ID token
		// (no nonce was sent; at_hash only comes with tokens from the authorization
		// endpoint), and only types [at+jwt] tells it from an access token.
		b := startAuthz(t, oidcProviderConfig(op, "["+idp.Resource+", web-app]"))
		b.waitReady(t)
		if d := b.check(t, "/api/things", tok.IDToken); !d.denied(401, "unsupported_type") {
			t.Errorf("Check(ID token, web-app among the audiences) = %v, want 401 unsupported_type", d)
		}
		if d := b.check(t, "/api/things", tok.AccessToken); d.code != 0 {
			t.Errorf("Check(the access token of the same login) = %v, want allowed", d)
		}
		// Under the default types (which accept a token without typ), an ID token of a
		// login that sent a nonce is told apart by it.
		withNonce, err := op.Login("alice", "openid email read", "n-0S6_WzA2Mj")
		if err != nil {
			t.Fatal(err)
		}
		if got := payload(t, withNonce.IDToken)["nonce"]; got != "n-0S6_WzA2Mj" {
			t.Fatalf("oidc-provider ID token has nonce %v, want the one sent", got)
		}
		if got := payload(t, withNonce.AccessToken)["nonce"]; got != nil {
			t.Errorf("oidc-provider access token carries nonce %v, an ID-token marker", got)
		}
		c := startAuthz(t, strings.Replace(oidcProviderConfig(op, "["+idp.Resource+", web-app]"), "    types: [at+jwt, application/at+jwt]\n", "", 1))
		c.waitReady(t)
		if d := c.check(t, "/api/things", withNonce.IDToken); !d.denied(401, "id_token") {
			t.Errorf("Check(ID token with nonce, default types) = %v, want 401 id_token", d)
		}
		if d := c.check(t, "/api/things", withNonce.AccessToken); d.code != 0 {
			t.Errorf("Check(its access token, default types) = %v, want allowed", d)
		}
	})

	t.Run("foreign issuer", func(t *testing.T) {
		// A token of this issuer presented to a jwt-authz that trusts only another one.
		other := startAuthz(t, strings.Replace(oidcProviderConfig(op, "["+idp.Resource+"]"), "issuer: "+op.URL, "issuer: "+op.URL+"/other", 1))
		if d := other.check(t, "/api/things", service(t, "svc.example.com", "read")); !d.denied(401, "unknown_issuer") {
			t.Errorf("Check(token of an issuer not configured) = %v, want 401 unknown_issuer", d)
		}
	})
}
