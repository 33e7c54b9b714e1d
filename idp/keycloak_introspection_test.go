package idp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/introspect"
)

// TestKeycloakIntrospection: jwt-authz's introspection client (package introspect) against
// Keycloak's real RFC 7662 endpoint, found by discovery, as the confidential client
// inventory (client_secret_basic). Keycloak's access tokens are JWTs, which jwt-authz
// verifies itself and never introspects, so this checks the client's interplay with
// Keycloak's endpoint, not a path a Check takes: an active token's answer, the same token
// after revocation, and a token Keycloak never issued.
func TestKeycloakIntrospection(t *testing.T) {
	kc := startedKeycloak(t)
	createRealm(t, kc, "introspection")
	client := func(t *testing.T) *introspect.Client {
		t.Helper()
		c, err := introspect.New(config.Introspection{ClientID: "inventory", ClientSecretFile: writeFile(t, "secret", "inventory-secret")},
			kc.Issuer("introspection"), func(p string) string { return p })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tok, err := kc.ClientCredentials("introspection", "billing.example.com", "billing-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	active, answer, err := client(t).Introspect(ctx, tok.AccessToken)
	if err != nil || !active {
		t.Fatalf("Introspect(a fresh Keycloak access token) = %t, %v; want active", active, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(answer, &claims); err != nil {
		t.Fatal(err)
	}
	t.Logf("Keycloak's answer: iss %v, aud %v, azp %v, client_id %v, typ %v, token_type %v, scope %v",
		claims["iss"], claims["aud"], claims["azp"], claims["client_id"], claims["typ"], claims["token_type"], claims["scope"])
	if claims["iss"] != kc.Issuer("introspection") || claims["azp"] != "billing.example.com" {
		t.Errorf("answer iss %v, azp %v; want %s, billing.example.com", claims["iss"], claims["azp"], kc.Issuer("introspection"))
	}

	if err := kc.Revoke("introspection", "billing.example.com", "billing-secret", tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	// jwt-authz verifies the JWT itself and never asks the endpoint: the revoked token is
	// still allowed until its exp.
	a := startAuthz(t, keycloakConfig(kc, "introspection", discoveryKeys))
	a.waitReady(t)
	if d := a.check(t, "/api/things", tok.AccessToken); d.code != 0 {
		t.Errorf("Check(a revoked Keycloak JWT) = %v, want allowed: JWTs are not introspected", d)
	}
	// A new client: the first one cached the active answer.
	if active, _, err := client(t).Introspect(ctx, tok.AccessToken); err != nil || active {
		t.Errorf("Introspect(the revoked token) = %t, %v; want inactive", active, err)
	}
	if active, _, err := client(t).Introspect(ctx, "2YotnFZFEjr1zCsicMWpAA"); err != nil || active {
		t.Errorf("Introspect(a token Keycloak never issued) = %t, %v; want inactive", active, err)
	}
	bad, err := introspect.New(config.Introspection{ClientID: "inventory", ClientSecretFile: writeFile(t, "secret", "wrong")},
		kc.Issuer("introspection"), func(p string) string { return p })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bad.Introspect(ctx, tok.AccessToken); err == nil {
		t.Errorf("Introspect with a wrong client secret: no error, want introspect.ErrUnavailable")
	} else {
		t.Logf("wrong client secret: %v", err)
	}

	t.Run("private_key_jwt", func(t *testing.T) {
		// inventory-jwt: a confidential client that authenticates with a signed JWT
		// (Keycloak's client-jwt authenticator) by a key from its registered JWKS.
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "inv-1", Algorithm: "ES256", Use: "sig"}}})
		if err != nil {
			t.Fatal(err)
		}
		err = kc.Admin("POST", "/introspection/clients", map[string]any{
			"clientId": "inventory-jwt", "publicClient": false, "clientAuthenticatorType": "client-jwt",
			"standardFlowEnabled": false,
			"attributes": map[string]string{"use.jwks.string": "true", "jwks.string": string(jwks),
				"token.endpoint.auth.signing.alg": "ES256"},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jwk, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "inv-1"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := introspect.New(config.Introspection{ClientID: "inventory-jwt", ClientAuth: config.PrivateKeyJWT,
			PrivateKeyFile: writeFile(t, "key.jwk", string(jwk)), SigningAlgorithm: "ES256"},
			kc.Issuer("introspection"), func(p string) string { return p })
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := kc.ClientCredentials("introspection", "billing.example.com", "billing-secret", "")
		if err != nil {
			t.Fatal(err)
		}
		if active, _, err := c.Introspect(ctx, fresh.AccessToken); err != nil || !active {
			t.Errorf("Introspect(fresh token) as a private_key_jwt client, aud the issuer = %t, %v; want active", active, err)
		}
	})
}
