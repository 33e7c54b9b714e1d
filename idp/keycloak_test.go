package idp_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/idp"
)

// signingAlgorithms are the realm key types the tests sign with, each through a client whose
// access tokens use it (the client attribute access.token.signed.response.alg), besides the
// realm's default RS256.
var signingAlgorithms = []struct {
	alg, provider string
	config        map[string]string
}{
	{"PS256", "rsa-generated", map[string]string{"priority": "100", "algorithm": "PS256"}},
	{"ES256", "ecdsa-generated", map[string]string{"priority": "100", "ecdsaEllipticCurveKey": "P-256"}},
	{"EdDSA", "eddsa-generated", map[string]string{"priority": "100", "eddsaEllipticCurveKey": "Ed25519"}},
}

// createRealm imports testdata/keycloak-realm.json as realm name, with one client per entry
// of signingAlgorithms (alg-ps256, ...) and the key providers they need.
func createRealm(t *testing.T, kc *idp.Keycloak, name string) {
	t.Helper()
	realm, err := idp.LoadRealm("testdata/keycloak-realm.json", name)
	if err != nil {
		t.Fatal(err)
	}
	clients := realm["clients"].([]any)
	for _, a := range signingAlgorithms {
		clients = append(clients, map[string]any{
			"clientId": "alg-" + strings.ToLower(a.alg), "secret": "alg-secret", "publicClient": false,
			"serviceAccountsEnabled": true, "standardFlowEnabled": false,
			"attributes":      map[string]string{"access.token.signed.response.alg": a.alg},
			"protocolMappers": clients[0].(map[string]any)["protocolMappers"], // the api audience
		})
	}
	realm["clients"] = clients
	if err := kc.CreateRealm(realm); err != nil {
		t.Fatalf("create realm %s: %v", name, err)
	}
	for _, a := range signingAlgorithms {
		if _, err := kc.AddKeyProvider(name, strings.ToLower(a.alg)+"-key", a.provider, a.config); err != nil {
			t.Fatalf("realm %s: add %s key provider: %v", name, a.alg, err)
		}
	}
}

// addOptionalScope creates a client scope that is listed in the scope claim when asked for,
// and offers it to clientID as an optional scope.
func addOptionalScope(t *testing.T, kc *idp.Keycloak, realm, clientID, scope string) {
	t.Helper()
	err := kc.Admin("POST", "/"+realm+"/client-scopes", map[string]any{
		"name": scope, "protocol": "openid-connect",
		"attributes": map[string]string{"include.in.token.scope": "true", "display.on.consent.screen": "false"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var scopes []struct{ ID, Name string }
	if err := kc.Admin("GET", "/"+realm+"/client-scopes", nil, &scopes); err != nil {
		t.Fatal(err)
	}
	var clients []struct{ ID string }
	if err := kc.Admin("GET", "/"+realm+"/clients?clientId="+clientID, nil, &clients); err != nil || len(clients) != 1 {
		t.Fatalf("find client %s: %v (%d found)", clientID, err, len(clients))
	}
	for _, s := range scopes {
		if s.Name == scope {
			if err := kc.Admin("PUT", "/"+realm+"/clients/"+clients[0].ID+"/optional-client-scopes/"+s.ID, nil, nil); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("client scope %s not listed after creating it", scope)
}

// keycloakConfig is a jwt-authz config with one provider for realm, keys by OIDC discovery:
// the recipe of docs/identity-providers.md, Keycloak's access tokens being typ Bearer.
func keycloakConfig(kc *idp.Keycloak, realm, keys string) string {
	return keycloakConfigWith(kc, realm, keys, "")
}

// keycloakConfigWith is keycloakConfig with extra provider settings (indented 4 spaces).
func keycloakConfigWith(kc *idp.Keycloak, realm, keys, extra string) string {
	return fmt.Sprintf(`
providers:
  - name: keycloak
    issuer: %s
    audiences: [api.example.com]
    algorithms: [RS256, PS256, ES256, EdDSA]
    required_claims: {typ: Bearer}
%s    keys:
%s
    claims_to_headers:
      sub: x-jwt-sub
      azp: x-jwt-client
      realm_access.roles: x-jwt-realm-roles
      resource_access.inventory.roles: x-jwt-inventory-roles
      /resource_access/billing.example.com/roles: x-jwt-billing-roles
rules:
  - name: billing
    match: {path_prefix: /billing}
    require: {claims: {/resource_access/billing.example.com/roles: invoice-write}}
  - name: invoices
    match: {path_prefix: /invoices}
    require: {scopes: [invoices:read]}
  - name: ops
    match: {path_prefix: /ops}
    require: {claims: {realm_access.roles: ops}}
  - name: api
    match: {path_prefix: /}
    require: {providers: [keycloak]}
`, kc.Issuer(realm), extra, keys)
}

const discoveryKeys = "      - discovery: true\n"

// TestKeycloak runs jwt-authz against tokens from a real Keycloak realm: client-credentials
// and password grants, every realm key type, scopes, realm and client roles to headers and
// rules, and the tokens it must refuse.
func TestKeycloak(t *testing.T) {
	kc := startedKeycloak(t)
	createRealm(t, kc, "shop")
	addOptionalScope(t, kc, "shop", "billing.example.com", "invoices:read")
	a := startAuthz(t, keycloakConfig(kc, "shop", discoveryKeys))
	a.waitReady(t)

	service := func(t *testing.T, client, secret, scope string) string {
		t.Helper()
		tok, err := kc.ClientCredentials("shop", client, secret, scope)
		if err != nil {
			t.Fatalf("client credentials for %s: %v", client, err)
		}
		return tok.AccessToken
	}

	t.Run("client credentials", func(t *testing.T) {
		tok := service(t, "billing.example.com", "billing-secret", "")
		d := a.check(t, "/api/things", tok)
		if d.code != 0 {
			t.Fatalf("Check(billing.example.com's token) = %v, want allowed", d)
		}
		claims := payload(t, tok)
		want := map[string]string{
			"x-jwt-sub":             claims["sub"].(string),
			"x-jwt-client":          "billing.example.com",
			"x-jwt-inventory-roles": "stock-read",
			"x-jwt-billing-roles":   "invoice-write", // client roles of a client id with dots
		}
		for h, v := range want {
			if d.headers[h] != v {
				t.Errorf("header %s = %q, want %q", h, d.headers[h], v)
			}
		}
		if roles := strings.Split(d.headers["x-jwt-realm-roles"], ","); !slices.Contains(roles, "ops") {
			t.Errorf("x-jwt-realm-roles = %q, want it to list ops", d.headers["x-jwt-realm-roles"])
		}
		if d := a.check(t, "/ops/restart", tok); d.code != 0 {
			t.Errorf("Check(/ops, service account with realm role ops) = %v, want allowed", d)
		}
		if d := a.check(t, "/billing/run", tok); d.code != 0 {
			t.Errorf("Check(/billing, client role invoice-write of billing.example.com) = %v, want allowed", d)
		}
	})

	t.Run("password grant", func(t *testing.T) {
		tok, err := kc.Password("shop", "web-app", "alice", "alice-password", "openid")
		if err != nil {
			t.Fatal(err)
		}
		d := a.check(t, "/api/things", tok.AccessToken)
		if d.code != 0 {
			t.Fatalf("Check(alice's access token) = %v, want allowed", d)
		}
		if got := d.headers["x-jwt-client"]; got != "web-app" {
			t.Errorf("x-jwt-client = %q, want web-app", got)
		}
		if roles := strings.Split(d.headers["x-jwt-realm-roles"], ","); !slices.Contains(roles, "auditor") || slices.Contains(roles, "ops") {
			t.Errorf("x-jwt-realm-roles = %q, want auditor and not ops", d.headers["x-jwt-realm-roles"])
		}
		if d := a.check(t, "/ops/restart", tok.AccessToken); !d.denied(403, "claim_mismatch") {
			t.Errorf("Check(/ops, alice without realm role ops) = %v, want 403 claim_mismatch", d)
		}
		if got := d.headers["x-jwt-billing-roles"]; got != "invoice-read" {
			t.Errorf("x-jwt-billing-roles = %q, want invoice-read", got)
		}
		if d := a.check(t, "/billing/run", tok.AccessToken); !d.denied(403, "claim_mismatch") {
			t.Errorf("Check(/billing, alice with invoice-read only) = %v, want 403 claim_mismatch", d)
		}
	})

	t.Run("ID token", func(t *testing.T) {
		tok, err := kc.Password("shop", "web-app", "alice", "alice-password", "openid")
		if err != nil {
			t.Fatal(err)
		}
		// What the markers look like on Keycloak's real tokens: the ID token must carry one,
		// the access token none, or the default would refuse real access tokens.
		id, access := payload(t, tok.IDToken), payload(t, tok.AccessToken)
		t.Logf("Keycloak ID token: header typ %v, typ %v, at_hash present %t, nonce present %t; access token: header typ %v, typ %v",
			header(t, tok.IDToken)["typ"], id["typ"], id["at_hash"] != nil, id["nonce"] != nil, header(t, tok.AccessToken)["typ"], access["typ"])
		if id["typ"] != "ID" {
			t.Errorf("Keycloak ID token has typ %v, want ID", id["typ"])
		}
		for _, m := range []string{"at_hash", "c_hash", "nonce"} {
			if access[m] != nil {
				t.Errorf("Keycloak access token carries %s, an ID-token marker", m)
			}
		}
		// Its audience is the client, web-app: a provider that also lists the client as an
		// audience (as some setups do) still refuses it, by its markers.
		b := startAuthz(t, strings.Replace(keycloakConfig(kc, "shop", discoveryKeys), "audiences: [api.example.com]", "audiences: [api.example.com, web-app]", 1))
		b.waitReady(t)
		if d := b.check(t, "/api/things", tok.IDToken); !d.denied(401, "id_token") || !strings.Contains(d.challenge, `error="invalid_token"`) {
			t.Errorf("Check(Keycloak ID token) = %v, want 401 invalid_token, reason id_token", d)
		}
		if d := b.check(t, "/api/things", tok.AccessToken); d.code != 0 {
			t.Errorf("Check(the access token of the same login) = %v, want allowed", d)
		}
		// With the default turned off, the provider's required typ: Bearer still refuses it.
		c := startAuthz(t, strings.Replace(keycloakConfigWith(kc, "shop", discoveryKeys, "    reject_id_tokens: false\n"),
			"audiences: [api.example.com]", "audiences: [api.example.com, web-app]", 1))
		c.waitReady(t)
		if d := c.check(t, "/api/things", tok.IDToken); !d.denied(401, "required_claim") {
			t.Errorf("Check(Keycloak ID token, reject_id_tokens: false) = %v, want 401 required_claim", d)
		}
	})

	t.Run("authorized parties", func(t *testing.T) {
		b := startAuthz(t, keycloakConfigWith(kc, "shop", discoveryKeys, "    authorized_parties: [billing.example.com]\n"))
		b.waitReady(t)
		if d := b.check(t, "/api/things", service(t, "billing.example.com", "billing-secret", "")); d.code != 0 {
			t.Errorf("Check(azp billing.example.com) = %v, want allowed", d)
		}
		tok, err := kc.Password("shop", "web-app", "alice", "alice-password", "openid")
		if err != nil {
			t.Fatal(err)
		}
		if d := b.check(t, "/api/things", tok.AccessToken); !d.denied(401, "authorized_party_not_allowed") {
			t.Errorf("Check(azp web-app) = %v, want 401 authorized_party_not_allowed", d)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		without := service(t, "billing.example.com", "billing-secret", "")
		if d := a.check(t, "/invoices/1", without); d.http != 403 || !strings.Contains(d.challenge, `error="insufficient_scope"`) {
			t.Errorf("Check(/invoices, no invoices:read) = %v, want 403 insufficient_scope", d)
		}
		with := service(t, "billing.example.com", "billing-secret", "invoices:read")
		if scope := payload(t, with)["scope"]; !slices.Contains(strings.Fields(fmt.Sprint(scope)), "invoices:read") {
			t.Fatalf("Keycloak's token has scope %q, want it to grant invoices:read", scope)
		}
		if d := a.check(t, "/invoices/1", with); d.code != 0 {
			t.Errorf("Check(/invoices, scope invoices:read) = %v, want allowed", d)
		}
	})

	t.Run("algorithms", func(t *testing.T) {
		for _, alg := range signingAlgorithms {
			tok := service(t, "alg-"+strings.ToLower(alg.alg), "alg-secret", "")
			if got := header(t, tok)["alg"]; got != alg.alg {
				t.Fatalf("client alg-%s's token is signed with %v, want %s", strings.ToLower(alg.alg), got, alg.alg)
			}
			if d := a.check(t, "/api/things", tok); d.code != 0 {
				t.Errorf("Check(%s token) = %v, want allowed", alg.alg, d)
			}
		}
	})

	t.Run("RFC 9068 header", func(t *testing.T) {
		tok := service(t, "rfc9068", "rfc9068-secret", "")
		if got := header(t, tok)["typ"]; got != "at+jwt" {
			t.Fatalf("client rfc9068's token has typ %v, want at+jwt", got)
		}
		if d := a.check(t, "/api/things", tok); d.code != 0 {
			t.Errorf("Check(typ at+jwt) = %v, want allowed", d)
		}
	})

	t.Run("no audience", func(t *testing.T) {
		// Without an audience mapper a client-credentials token names no API
		// (aud is absent or "account"): not for this API.
		tok := service(t, "no-audience", "no-audience-secret", "")
		if d := a.check(t, "/api/things", tok); !d.denied(401, "audience_not_allowed") || !strings.Contains(d.challenge, `error="invalid_token"`) {
			t.Errorf("Check(token without aud api.example.com) = %v, want 401 invalid_token, audience_not_allowed", d)
		}
	})

	t.Run("other realm", func(t *testing.T) {
		createRealm(t, kc, "other")
		tok, err := kc.ClientCredentials("other", "billing.example.com", "billing-secret", "")
		if err != nil {
			t.Fatal(err)
		}
		if d := a.check(t, "/api/things", tok.AccessToken); !d.denied(401, "unknown_issuer") {
			t.Errorf("Check(token of realm other) = %v, want 401 unknown_issuer", d)
		}
	})
}

// header and payload decode a token's JOSE header and claims, unverified, for assertions
// about what the provider issued.
func header(t *testing.T, tok string) map[string]any  { return segment(t, tok, 0) }
func payload(t *testing.T, tok string) map[string]any { return segment(t, tok, 1) }

func segment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 && (i != 0 || len(parts) != 5) { // a JWE's header is its first of 5
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKeycloakDiscoveryAndJWKSURI configures a realm's keys twice, by discovery and by its
// jwks_uri (a natural fallback), which publish the same keys: the provider becomes ready, a
// token verifies, and a token with an unknown kid is 401, not 503. Keycloak's JWKS also
// lists an RSA-OAEP encryption key, which is skipped with a metric, never used.
func TestKeycloakDiscoveryAndJWKSURI(t *testing.T) {
	kc := startedKeycloak(t)
	createRealm(t, kc, "fallback")
	a := startAuthz(t, keycloakConfig(kc, "fallback", fmt.Sprintf(
		"      - discovery: true\n      - jwks_uri: %s/protocol/openid-connect/certs\n", kc.Issuer("fallback"))))
	a.waitReady(t)

	tok, err := kc.ClientCredentials("fallback", "billing.example.com", "billing-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if d := a.check(t, "/api/things", tok.AccessToken); d.code != 0 {
		t.Errorf("Check(token) = %v, want allowed", d)
	}
	// The same token under a kid no source publishes (the signature no longer matters: the
	// key lookup fails first).
	h := header(t, tok.AccessToken)
	h["kid"] = "no-such-kid"
	raw, _ := json.Marshal(h)
	_, rest, _ := strings.Cut(tok.AccessToken, ".")
	unknown := base64.RawURLEncoding.EncodeToString(raw) + "." + rest
	if d := a.check(t, "/api/things", unknown); !d.denied(401, "unknown_key") {
		t.Errorf("Check(unknown kid) = %v, want 401 unknown_key", d)
	}
	if n := a.metric(t, "jwt_authz_keys_skipped_total", `provider="keycloak"`); n < 1 {
		t.Errorf("jwt_authz_keys_skipped_total{provider=keycloak} = %v, want Keycloak's RSA-OAEP key skipped", n)
	}
}
