package envoy

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/idp"
)

// TestKeycloakThroughEnvoy puts a real Keycloak realm (idp/testdata/keycloak-realm.json, the
// one idp's tests use) behind the demo's Envoy as a second provider: its access tokens reach
// the upstream with their roles as headers (client roles of a dotted client id, by JSON
// Pointer), a client's copy of those headers never does, and its ID tokens and missing
// scopes get jwt-authz's challenges through Envoy.
func TestKeycloakThroughEnvoy(t *testing.T) {
	envoyBinary(t) // skip before starting Keycloak when there is no Envoy
	kc, err := idp.StartKeycloak()
	idp.Need(t, err)
	defer kc.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("--- keycloak (last output) ---\n%s", kc.Log())
		}
	}()
	realm, err := idp.LoadRealm("../idp/testdata/keycloak-realm.json", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.CreateRealm(realm); err != nil {
		t.Fatal(err)
	}
	issuer := kc.Issuer("shop")

	s := startStack(t, stackOptions{editAuthz: func(t *testing.T, root map[string]any, _ ports) {
		root["providers"] = append(root["providers"].([]any), map[string]any{
			"name":            "keycloak",
			"issuer":          issuer,
			"audiences":       []any{"api.example.com"},
			"algorithms":      []any{"RS256"},
			"required_claims": map[string]any{"typ": "Bearer"},
			"keys":            []any{map[string]any{"discovery": true}},
			"claims_to_headers": map[string]any{
				"sub":                "x-jwt-sub",
				"realm_access.roles": "x-jwt-roles",
				"/resource_access/billing.example.com/roles": "x-jwt-billing-roles",
			},
			"forward_token": false,
		})
		for _, r := range root["rules"].([]any) {
			if r := r.(map[string]any); r["name"] == "api" {
				r["require"] = map[string]any{"providers": []any{"demo", "keycloak"}}
			}
		}
	}})

	bearer := func(tok string, more ...string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		for i := 0; i+1 < len(more); i += 2 {
			h.Add(more[i], more[i+1])
		}
		return h
	}
	service, err := kc.ClientCredentials("shop", "billing.example.com", "billing-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := kc.Password("shop", "web-app", "alice", "alice-password", "openid")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("service account", func(t *testing.T) {
		e := s.do(t, "GET", "/api/invoices", bearer(service.AccessToken), "").upstream(t, 200)
		if got := e.values("x-jwt-billing-roles"); !slices.Equal(got, []string{"invoice-write"}) {
			t.Errorf("upstream saw x-jwt-billing-roles %q, want [invoice-write]", got)
		}
		if got := strings.Join(e.values("x-jwt-roles"), ","); !slices.Contains(strings.Split(got, ","), "ops") {
			t.Errorf("upstream saw x-jwt-roles %q, want it to list ops", got)
		}
		if got := e.values("authorization"); len(got) != 0 {
			t.Errorf("upstream saw an authorization header, want none (forward_token: false)")
		}
	})

	t.Run("a client's copy of an injected header is dropped", func(t *testing.T) {
		h := bearer(alice.AccessToken, "X-Jwt-Billing-Roles", "invoice-write", "X-Jwt-Roles", "ops")
		e := s.do(t, "GET", "/api/invoices", h, "").upstream(t, 200)
		if got := e.values("x-jwt-billing-roles"); !slices.Equal(got, []string{"invoice-read"}) {
			t.Errorf("upstream saw x-jwt-billing-roles %q, want only alice's [invoice-read]", got)
		}
		if got := strings.Join(e.values("x-jwt-roles"), ","); slices.Contains(strings.Split(got, ","), "ops") {
			t.Errorf("upstream saw x-jwt-roles %q: the client's ops came through", got)
		}
	})

	t.Run("ID token", func(t *testing.T) {
		s.do(t, "GET", "/api/invoices", bearer(alice.IDToken), "").challenge(t, 401, "invalid_token")
	})

	t.Run("missing scope", func(t *testing.T) {
		s.do(t, "GET", "/admin/users", bearer(alice.AccessToken), "").challenge(t, 403, "insufficient_scope")
	})
}
