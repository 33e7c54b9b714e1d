package extauthz

import (
	"os"
	"regexp"
	"testing"

	"github.com/jwt-authz/jwt-authz/config"
)

// recipeToken is a fixture token shaped as an IdP's documentation shows it.
type recipeToken struct {
	name    string
	path    string
	header  map[string]any // merged over {alg, kid, typ: JWT}; nil values remove
	claims  map[string]any // the whole payload; exp and iat are added
	want    Reason
	headers map[string]string // upstream headers an allow must set
}

// recipeTokens are the fixtures of each recipe in docs/identity-providers.md: the access
// token it is written for is allowed, and ID tokens and foreign tokens are refused.
var recipeTokens = map[string][]recipeToken{
	"keycloak": {
		{name: "access token", path: "/billing/admin", claims: map[string]any{
			"iss": "https://keycloak.example.com/realms/demo", "sub": "f1c7", "typ": "Bearer", "azp": "web",
			"aud": []any{"billing-api", "account"}, "scope": "openid profile email", "preferred_username": "alice",
			"realm_access":    map[string]any{"roles": []any{"offline_access", "ops"}},
			"resource_access": map[string]any{"billing.example.com": map[string]any{"roles": []any{"admin"}}},
		}, want: ReasonAllowed, headers: map[string]string{"x-user": "alice", "x-realm-roles": "offline_access,ops", "x-billing-roles": "admin"}},
		{name: "client role missing", path: "/billing/admin", claims: map[string]any{
			"iss": "https://keycloak.example.com/realms/demo", "sub": "f1c7", "typ": "Bearer", "aud": "billing-api", "scope": "profile",
		}, want: ReasonClaimMismatch},
		{name: "ID token", claims: map[string]any{
			"iss": "https://keycloak.example.com/realms/demo", "sub": "f1c7", "typ": "ID", "aud": "billing-api", "azp": "billing-api",
			"at_hash": "mU2a4Wf0cBvsyD4NqUSZdQ", "auth_time": 1700000000, "scope": "profile",
		}, want: ReasonIDToken},
		{name: "no audience mapper", claims: map[string]any{
			"iss": "https://keycloak.example.com/realms/demo", "sub": "f1c7", "typ": "Bearer", "aud": "account", "scope": "profile",
		}, want: ReasonAudience},
		{name: "another realm", claims: map[string]any{
			"iss": "https://keycloak.example.com/realms/other", "sub": "f1c7", "typ": "Bearer", "aud": "billing-api", "scope": "profile",
		}, want: ReasonUnknownIssuer},
	},
	"auth0": {
		{name: "access token", claims: map[string]any{
			"iss": "https://example.us.auth0.com/", "sub": "auth0|64f1", "azp": "Kq3client",
			"aud":   []any{"https://api.example.com", "https://example.us.auth0.com/userinfo"},
			"scope": "openid profile read:things", "permissions": []any{"read:things"},
			"https://example.com/roles": []any{"reader"},
		}, want: ReasonAllowed, headers: map[string]string{"x-user-id": "auth0|64f1", "x-roles": "reader"}},
		{name: "RFC 9068 profile", header: map[string]any{"typ": "at+jwt"}, claims: map[string]any{
			"iss": "https://example.us.auth0.com/", "sub": "auth0|64f1", "client_id": "Kq3client",
			"aud": "https://api.example.com", "scope": "read:things",
		}, want: ReasonAllowed},
		{name: "ID token", claims: map[string]any{
			"iss": "https://example.us.auth0.com/", "sub": "auth0|64f1", "aud": "Kq3client", "nonce": "n-0S6", "sid": "x",
		}, want: ReasonIDToken},
		{name: "no trailing slash", claims: map[string]any{
			"iss": "https://example.us.auth0.com", "sub": "auth0|64f1", "aud": "https://api.example.com", "scope": "read:things",
		}, want: ReasonUnknownIssuer},
	},
	"okta": {
		{name: "access token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"ver": 1, "jti": "AT.x", "iss": "https://example.okta.com/oauth2/default", "aud": "api://default",
			"cid": "0oa1client", "uid": "00u1", "scp": []any{"openid", "things.read"}, "sub": "alice@example.com",
		}, want: ReasonAllowed, headers: map[string]string{"x-user": "alice@example.com", "x-client-id": "0oa1client"}},
		{name: "ID token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"ver": 1, "iss": "https://example.okta.com/oauth2/default", "aud": "0oa1client", "sub": "00u1",
			"nonce": "n", "at_hash": "x", "amr": []any{"pwd"}, "idp": "00o1",
		}, want: ReasonIDToken},
		{name: "org authorization server", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://example.okta.com", "aud": "https://example.okta.com", "sub": "00u1", "scp": []any{"things.read"},
		}, want: ReasonUnknownIssuer},
	},
	"entra": {
		{name: "v2 access token", path: "/admin/x", claims: map[string]any{
			"iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", "ver": "2.0",
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "azp": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
			"tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
			"scp": "Things.Read", "roles": []any{"Things.Admin"}, "sub": "AAAAAAAA",
		}, want: ReasonAllowed, headers: map[string]string{"x-tenant": "9188040d-6c67-4c5b-b112-36a304b66dad"}},
		{name: "v1 token", claims: map[string]any{
			"iss": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/", "ver": "1.0",
			"aud": "api://things", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "scp": "Things.Read",
		}, want: ReasonUnknownIssuer},
		{name: "ID token", claims: map[string]any{
			"iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", "ver": "2.0",
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "nonce": "n",
		}, want: ReasonIDToken},
	},
	"entra-multi": {
		{name: "customer tenant", claims: map[string]any{
			"iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", "ver": "2.0",
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "scp": "Things.Read",
		}, want: ReasonAllowed},
		{name: "tid of another tenant", claims: map[string]any{
			"iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
		}, want: ReasonTenantMismatch},
		{name: "tenant not served", claims: map[string]any{
			"iss": "https://login.microsoftonline.com/0ad0cbd0-7b7e-4f0b-9a71-5f2a9a2b1f1e/v2.0",
			"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "tid": "0ad0cbd0-7b7e-4f0b-9a71-5f2a9a2b1f1e",
		}, want: ReasonTenantNotHere},
	},
	"cognito": {
		{name: "access token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example", "sub": "aaaaaaaa-bbbb",
			"client_id": "7d8kq2example3client4id5", "token_use": "access", "scope": "things/read", "auth_time": 1700000000,
			"jti": "x", "username": "alice", "origin_jti": "y", "event_id": "z",
		}, want: ReasonAllowed, headers: map[string]string{"x-user": "alice"}},
		{name: "ID token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example", "sub": "aaaaaaaa-bbbb",
			"aud": "7d8kq2example3client4id5", "token_use": "id", "cognito:username": "alice", "email_verified": true,
		}, want: ReasonIDToken},
		{name: "another app client", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example", "sub": "aaaaaaaa-bbbb",
			"client_id": "other", "token_use": "access", "scope": "things/read",
		}, want: ReasonAudience},
	},
	"google": {
		{name: "service account ID token", claims: map[string]any{
			"iss": "https://accounts.google.com", "aud": "https://api.example.com", "azp": "1047",
			"sub": "1047", "email": "ci@example-project.iam.gserviceaccount.com", "email_verified": true,
		}, want: ReasonAllowed, headers: map[string]string{"x-caller": "ci@example-project.iam.gserviceaccount.com"}},
		{name: "other spelling of the issuer", claims: map[string]any{
			"iss": "accounts.google.com", "aud": "https://api.example.com",
			"sub": "1047", "email": "ci@example-project.iam.gserviceaccount.com", "email_verified": true,
		}, want: ReasonAllowed},
		{name: "another caller", claims: map[string]any{
			"iss": "https://accounts.google.com", "aud": "https://api.example.com",
			"sub": "2", "email": "mallory@example.com", "email_verified": true,
		}, want: ReasonClaimMismatch},
		{name: "token for another audience", claims: map[string]any{
			"iss": "https://accounts.google.com", "aud": "https://other.example.com",
			"sub": "1047", "email": "ci@example-project.iam.gserviceaccount.com", "email_verified": true,
		}, want: ReasonAudience},
	},
	"kubernetes": {
		{name: "projected service-account token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://kubernetes.default.svc.cluster.local", "aud": []any{"jwt-authz"}, "nbf": testNow.Unix() - 10,
			"sub": "system:serviceaccount:payments:api",
			"kubernetes.io": map[string]any{"namespace": "payments",
				"pod":            map[string]any{"name": "api-7d9", "uid": "5f1"},
				"serviceaccount": map[string]any{"name": "api", "uid": "a01"}},
		}, want: ReasonAllowed, headers: map[string]string{"x-workload": "system:serviceaccount:payments:api", "x-namespace": "payments", "x-service-account": "api"}},
		{name: "another namespace", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://kubernetes.default.svc.cluster.local", "aud": []any{"jwt-authz"},
			"sub": "system:serviceaccount:web:frontend", "kubernetes.io": map[string]any{"namespace": "web"},
		}, want: ReasonClaimMismatch},
		{name: "token for the API server", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://kubernetes.default.svc.cluster.local", "aud": []any{"https://kubernetes.default.svc.cluster.local"},
			"sub": "system:serviceaccount:payments:api", "kubernetes.io": map[string]any{"namespace": "payments"},
		}, want: ReasonAudience},
		{name: "legacy secret token", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:payments:api",
			"kubernetes.io/serviceaccount/namespace": "payments",
		}, want: ReasonUnknownIssuer},
	},
	"spire": {
		{name: "JWT-SVID", header: map[string]any{"alg": "ES256", "kid": "ec256"}, claims: map[string]any{
			"sub": "spiffe://example.org/ns/billing/sa/worker", "aud": []any{"payments"},
		}, want: ReasonAllowed, headers: map[string]string{"x-spiffe-id": "spiffe://example.org/ns/billing/sa/worker"}},
		{name: "SVID of another workload", header: map[string]any{"alg": "ES256", "kid": "ec256"}, claims: map[string]any{
			"sub": "spiffe://example.org/ns/web/sa/frontend", "aud": []any{"payments"},
		}, want: ReasonSPIFFEID},
		{name: "SVID of another trust domain", header: map[string]any{"alg": "ES256", "kid": "ec256"}, claims: map[string]any{
			"sub": "spiffe://partner.example/ns/billing/sa/worker", "aud": []any{"payments"},
		}, want: ReasonUnknownIssuer},
	},
	"oidc-provider": {
		{name: "access token", header: map[string]any{"typ": "at+jwt"}, claims: map[string]any{
			"iss": "https://op.example.com", "sub": "alice", "aud": "https://api.example.com",
			"client_id": "app", "scope": "api:read", "jti": "x",
		}, want: ReasonAllowed},
		{name: "ID token without typ, at_hash or nonce", header: map[string]any{"typ": nil}, claims: map[string]any{
			"iss": "https://op.example.com", "sub": "alice", "aud": "https://api.example.com", "auth_time": 1700000000,
		}, want: ReasonType},
	},
}

// TestIdentityProviderRecipes loads every config block of docs/identity-providers.md and
// checks it against its IdP's token shapes, so the recipes cannot rot.
func TestIdentityProviderRecipes(t *testing.T) {
	doc, err := os.ReadFile("../docs/identity-providers.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(# jwt-authz config \\(recipe: ([a-z0-9-]+)\\)\n.*?)```").FindAllStringSubmatch(string(doc), -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		name, text := b[2], b[1]
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(text), t.TempDir())
			if err != nil {
				t.Fatalf("recipe %s does not load: %v", name, err)
			}
			// The recipes' key sources point at real IdPs; the fixtures are signed by test
			// keys, which stand in for them.
			keys := map[string]KeySource{}
			for _, pc := range cfg.Providers {
				keys[pc.Name] = newFakeKeys("rsa", "ec256")
			}
			p, err := NewPolicy(cfg, keys)
			if err != nil {
				t.Fatalf("NewPolicy(recipe %s) = %v", name, err)
			}
			fixtures := recipeTokens[name]
			if len(fixtures) == 0 {
				t.Fatalf("recipe %s has no fixture tokens", name)
			}
			for _, rt := range fixtures {
				tok := recipeMint(t, rt)
				path := rt.path
				if path == "" {
					path = "/things"
				}
				resp, d := check(t, p, envoyRequest{path: path, headers: bearer(tok)}.proto())
				if d.Reason != rt.want {
					t.Errorf("recipe %s: Check(%s) = %s, want %s", name, rt.name, d.Reason, rt.want)
					continue
				}
				got := map[string]string{}
				for _, h := range resp.GetOkResponse().GetHeaders() {
					got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				for k, v := range rt.headers {
					if got[k] != v {
						t.Errorf("recipe %s: Check(%s) header %s = %q, want %q", name, rt.name, k, got[k], v)
					}
				}
			}
		})
	}
	for name := range recipeTokens {
		if !seen[name] {
			t.Errorf("docs/identity-providers.md has no recipe %q", name)
		}
	}
}

func recipeMint(t *testing.T, rt recipeToken) string {
	t.Helper()
	header := map[string]any{"alg": "RS256", "kid": "rsa", "typ": "JWT"}
	for k, v := range rt.header {
		header[k] = v
	}
	claims := map[string]any{"iat": testNow.Unix() - 60, "exp": testNow.Unix() + 3600}
	for k, v := range rt.claims {
		claims[k] = v
	}
	kid, _ := header["kid"].(string)
	return signJSON(t, header["alg"].(string), privateKey(kid), dropNils(header), claims)
}
