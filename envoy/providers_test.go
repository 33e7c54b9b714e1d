package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestProviderFeaturesThroughEnvoy runs issue 11's verification features behind the real
// Envoy, as three extra providers of the demo: a Cognito-shaped one (audience in client_id,
// token_use required, an alias of its issuer, two key files that agree, one of them with an
// X25519 key), an Entra-shaped multi-tenant one (an issuer template with an allowlist) and a
// SPIFFE one (JWT-SVIDs without iss, keys from a trust bundle file). Each answer is checked
// where the client meets it: status, challenge, upstream headers and Envoy's access log.
func TestProviderFeaturesThroughEnvoy(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jwk := func(use string) map[string]any {
		b, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "p1", Algorithm: "ES256"})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["use"] = use
		return m
	}
	writeJSON := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		writeFile(t, path, b)
		return path
	}
	x25519 := map[string]any{"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}
	jwksA := writeJSON("a.jwks.json", map[string]any{"keys": []any{jwk("sig")}})
	jwksB := writeJSON("b.jwks.json", map[string]any{"keys": []any{jwk("sig"), x25519}})
	bundle := writeJSON("bundle.spiffe", map[string]any{"spiffe_refresh_hint": 60, "keys": []any{jwk("jwt-svid"), jwk("x509-svid")}})

	s := startStack(t, stackOptions{editAuthz: func(t *testing.T, root map[string]any, _ ports) {
		root["providers"] = append(root["providers"].([]any),
			map[string]any{
				"name": "cognito", "issuer": "https://cognito.test/pool", "issuer_aliases": []any{"cognito.test/pool"},
				"audiences": []any{"app-client"}, "audience_claims": []any{"aud", "client_id"},
				"required_claims":   map[string]any{"token_use": "access"},
				"algorithms":        []any{"ES256"},
				"keys":              []any{map[string]any{"jwks_file": jwksA}, map[string]any{"jwks_file": jwksB}},
				"claims_to_headers": map[string]any{"/org/team.name": "x-jwt-team"},
			},
			map[string]any{
				"name": "entra", "issuer": "https://login.test/{tenantid}/v2.0", "tenants": []any{"contoso"},
				"audiences": []any{"api"}, "algorithms": []any{"ES256"},
				"keys": []any{map[string]any{"jwks_file": jwksA}},
			},
			map[string]any{
				"name": "spire", "spiffe_trust_domain": "example.org",
				"audiences": []any{"payments"}, "algorithms": []any{"ES256"},
				"keys":              []any{map[string]any{"spiffe_bundle_file": bundle}},
				"claims_to_headers": map[string]any{"sub": "x-spiffe-id"},
			})
		rules := []any{
			map[string]any{"name": "payments", "match": map[string]any{"path_prefix": "/payments"},
				"require": map[string]any{"providers": []any{"spire"}, "spiffe_ids": []any{"spiffe://example.org/ns/billing/*"}}},
			map[string]any{"name": "tenant", "match": map[string]any{"path_prefix": "/tenant"},
				"require": map[string]any{"providers": []any{"entra"}}},
			map[string]any{"name": "billing", "match": map[string]any{"path_prefix": "/billing"},
				"require": map[string]any{"providers": []any{"cognito"}, "audiences": []any{"billing-api"}}},
			map[string]any{"name": "cognito", "match": map[string]any{"path_prefix": "/cognito"},
				"require": map[string]any{"providers": []any{"cognito"}}},
		}
		root["rules"] = append(rules, root["rules"].([]any)...)
	}})

	tok := func(claims map[string]any) string {
		now := time.Now()
		c := map[string]any{"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		for k, v := range claims {
			if v != nil {
				c[k] = v
			}
		}
		return mint(t, key, "p1", c)
	}
	bearer := func(tok string, more ...string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		for i := 0; i+1 < len(more); i += 2 {
			h.Add(more[i], more[i+1])
		}
		return h
	}
	cognito := func(extra map[string]any) string {
		c := map[string]any{"iss": "https://cognito.test/pool", "sub": "u-1", "client_id": "app-client",
			"token_use": "access", "org": map[string]any{"team.name": "blue"}}
		for k, v := range extra {
			c[k] = v
		}
		return tok(c)
	}
	denied := func(t *testing.T, r reply, status int, code, reason string) {
		t.Helper()
		r.challenge(t, status, code)
		var body struct{ Reason string }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Reason != reason {
			t.Errorf("body %s, want reason %q", clip(r.body), reason)
		}
		if _, err := s.accessLog(" 401 ", "authz_reason="+reason); err != nil {
			t.Errorf("access log: %v (reason %s)", err, reason)
		}
	}

	t.Run("cognito access token: audience in client_id, claim by JSON Pointer", func(t *testing.T) {
		e := s.do(t, "GET", "/cognito/x", bearer(cognito(nil), "X-Jwt-Team", "red"), "").upstream(t, 200)
		if got := e.values("x-jwt-team"); !slices.Equal(got, []string{"blue"}) {
			t.Errorf("upstream saw x-jwt-team %q, want [blue] (and never the client's red)", got)
		}
	})
	t.Run("issuer alias", func(t *testing.T) {
		s.do(t, "GET", "/cognito/x", bearer(cognito(map[string]any{"iss": "cognito.test/pool"})), "").upstream(t, 200)
	})
	t.Run("cognito ID token", func(t *testing.T) {
		r := s.do(t, "GET", "/cognito/x", bearer(cognito(map[string]any{"token_use": "id", "aud": "app-client"})), "")
		denied(t, r, 401, "invalid_token", "id_token")
	})
	t.Run("nonce marks an ID token", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/cognito/x", bearer(cognito(map[string]any{"nonce": "n-1"})), ""), 401, "invalid_token", "id_token")
	})
	t.Run("required claim", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/cognito/x", bearer(cognito(map[string]any{"token_use": "refresh"})), ""), 401, "invalid_token", "required_claim")
	})
	t.Run("aud array with a number", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/cognito/x", bearer(cognito(map[string]any{"aud": []any{"app-client", 1}})), ""), 401, "invalid_token", "malformed_claims")
	})
	t.Run("rule audience", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/billing/x", bearer(cognito(nil)), ""), 401, "invalid_token", "audience_not_allowed")
		s.do(t, "GET", "/billing/x", bearer(cognito(map[string]any{"aud": "billing-api"})), "").upstream(t, 200)
	})

	entra := func(tenant, tid string) string {
		return tok(map[string]any{"iss": "https://login.test/" + tenant + "/v2.0", "tid": tid, "aud": "api", "sub": "u"})
	}
	t.Run("tenant allowed", func(t *testing.T) {
		s.do(t, "GET", "/tenant/x", bearer(entra("contoso", "contoso")), "").upstream(t, 200)
	})
	t.Run("tenant mismatch", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/tenant/x", bearer(entra("contoso", "fabrikam")), ""), 401, "invalid_token", "tenant_mismatch")
	})
	t.Run("tenant not allowed", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/tenant/x", bearer(entra("fabrikam", "fabrikam")), ""), 401, "invalid_token", "tenant_not_allowed")
	})

	svid := func(sub string) string { return tok(map[string]any{"sub": sub, "aud": []any{"payments"}}) }
	t.Run("JWT-SVID without iss", func(t *testing.T) {
		e := s.do(t, "GET", "/payments/x", bearer(svid("spiffe://example.org/ns/billing/sa/worker")), "").upstream(t, 200)
		if got := e.values("x-spiffe-id"); !slices.Equal(got, []string{"spiffe://example.org/ns/billing/sa/worker"}) {
			t.Errorf("upstream saw x-spiffe-id %q", got)
		}
	})
	t.Run("SPIFFE ID not allowed", func(t *testing.T) {
		r := s.do(t, "GET", "/payments/x", bearer(svid("spiffe://example.org/ns/web/sa/frontend")), "")
		if r.status != 403 || r.isEcho() {
			t.Fatalf("status %d (%s), want 403 from jwt-authz", r.status, clip(r.body))
		}
		if _, err := s.accessLog("authz_reason=spiffe_id_not_allowed"); err != nil {
			t.Errorf("access log: %v", err)
		}
	})
	t.Run("SVID of another trust domain", func(t *testing.T) {
		denied(t, s.do(t, "GET", "/payments/x", bearer(svid("spiffe://evil.example/ns/billing/sa/worker")), ""), 401, "invalid_token", "unknown_issuer")
	})

	t.Run("the X25519 key was skipped and counted", func(t *testing.T) {
		page := "http://" + local(s.AuthzHTTP) + "/metrics"
		if n := metric(t, page, "jwt_authz_keys_skipped_total", `provider="cognito"`, `reason="unsupported"`); n < 1 {
			t.Errorf("jwt_authz_keys_skipped_total{provider=cognito,reason=unsupported} = %v, want at least 1", n)
		}
		if n := metric(t, page, "jwt_authz_keys_ready", `provider="cognito"`); n != 1 {
			t.Errorf("jwt_authz_keys_ready{provider=cognito} = %v, want 1: the two files agree", n)
		}
	})
}
