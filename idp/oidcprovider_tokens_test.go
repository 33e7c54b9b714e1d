package idp_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

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
		if read != "" && strings.Contains(a.proc.Out.String(), read) || strings.Contains(a.proc.Out.String(), rsSecret) {
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

// boundConfig is the jwt-authz config for oidc-provider's JWT access tokens to audiences,
// with extra (indented provider members) added to the provider.
func boundConfig(op *idp.OIDCProvider, audiences, extra string) string {
	return fmt.Sprintf(`
providers:
  - name: oidc-provider
    issuer: %s
    audiences: [%s]
    algorithms: [RS256]
    keys: [{discovery: true}]
    claims_to_headers: {sub: x-jwt-sub, client_id: x-jwt-client}
%s
rules:
  - name: api
    match: {path_prefix: /}
    require: {providers: [oidc-provider]}
`, op.URL, audiences, extra)
}

// TestOIDCProviderDPoP: oidc-provider binds svc-dpop's access tokens to the key of the DPoP
// proof of the token request (cnf.jkt), and jwt-authz wants that key's proof on every
// request.
func TestOIDCProviderDPoP(t *testing.T) {
	op := startedOIDCProvider(t)
	a := startAuthz(t, boundConfig(op, idp.Resource, "    dpop: {required: true, algorithms: [ES256]}"))
	a.waitReady(t)

	key, other := newECKey(t), newECKey(t)
	tok, err := op.ClientCredentialsFor(idp.Resource, "svc-dpop", "svc-dpop-secret", "read",
		http.Header{"Dpop": {dpopProof(t, key, "POST", op.TokenEndpoint(), "")}})
	if err != nil {
		t.Fatal(err)
	}
	h, cnf := header(t, tok.AccessToken), payload(t, tok.AccessToken)["cnf"]
	t.Logf("oidc-provider DPoP-bound access token: token_type %s, header alg %v typ %v, cnf %v", tok.TokenType, h["alg"], h["typ"], cnf)
	if jkt := thumbprint(t, key); tok.TokenType != "DPoP" || fmt.Sprint(cnf) != fmt.Sprintf("map[jkt:%s]", jkt) {
		t.Fatalf("token_type %s, cnf %v, want DPoP and cnf.jkt %s", tok.TokenType, cnf, jkt)
	}
	if _, err := op.ClientCredentialsFor(idp.Resource, "svc-dpop", "svc-dpop-secret", "read", nil); err == nil {
		t.Errorf("oidc-provider issued svc-dpop a token without a DPoP proof")
	}

	const htu = "https://api.example.com/api/things" // Envoy's :authority and path, https assumed
	dpop := func(proof string) request {
		r := request{path: "/api/things", headers: map[string]string{"authorization": "DPoP " + tok.AccessToken}}
		if proof != "" {
			r.headers["dpop"] = proof
		}
		return r
	}
	good := dpopProof(t, key, "GET", htu, tok.AccessToken)
	d := a.ask(t, dpop(good))
	t.Logf("jwt-authz, DPoP scheme and a fresh proof: %v", d)
	if d.code != 0 || d.headers["x-jwt-client"] != "svc-dpop" {
		t.Fatalf("Check(DPoP token with its proof) = %v, headers %v, want allowed for svc-dpop", d, d.headers)
	}
	for _, c := range []struct {
		name   string
		r      request
		status int
		reason string
	}{
		{"as a bearer token", request{path: "/api/things", headers: map[string]string{"authorization": "Bearer " + tok.AccessToken}}, 401, "dpop_bound_as_bearer"},
		{"no proof", dpop(""), 401, "dpop_proof_missing"},
		{"a proof from another key", dpop(dpopProof(t, other, "GET", htu, tok.AccessToken)), 401, "dpop_key_mismatch"},
		{"the proof replayed", dpop(good), 401, "dpop_replay"},
		{"a proof for another URL", dpop(dpopProof(t, key, "GET", "https://api.example.com/other", tok.AccessToken)), 401, "dpop_proof_mismatch"},
		{"a proof like the token request's (POST, its URL, no ath)", dpop(dpopProof(t, key, "POST", op.TokenEndpoint(), "")), 401, "dpop_proof_invalid"},
		{"a proof for the token request's method and URL", dpop(dpopProof(t, key, "POST", op.TokenEndpoint(), tok.AccessToken)), 401, "dpop_proof_mismatch"},
	} {
		d := a.ask(t, c.r)
		t.Logf("jwt-authz, %s: %v", c.name, d)
		if !d.denied(c.status, c.reason) {
			t.Errorf("Check(%s) = %v, want %d %s", c.name, d, c.status, c.reason)
		}
	}
}

// TestOIDCProviderCertificateBound: oidc-provider binds svc-mtls's access tokens to the
// client certificate of the token request (cnf.x5t#S256; provider.mjs reads it from the
// x-client-cert header a TLS-terminating proxy would set), and jwt-authz wants the same
// certificate as the peer certificate of the CheckRequest.
func TestOIDCProviderCertificateBound(t *testing.T) {
	op := startedOIDCProvider(t)
	a := startAuthz(t, boundConfig(op, idp.Resource, ""))
	a.waitReady(t)

	cert, other := newCertificate(t, "svc-mtls"), newCertificate(t, "someone else")
	tok, err := op.ClientCredentialsFor(idp.Resource, "svc-mtls", "svc-mtls-secret", "read",
		http.Header{"X-Client-Cert": {cert.escaped}})
	if err != nil {
		t.Fatal(err)
	}
	h, cnf := header(t, tok.AccessToken), payload(t, tok.AccessToken)["cnf"]
	t.Logf("oidc-provider certificate-bound access token: token_type %s, header alg %v typ %v, cnf %v", tok.TokenType, h["alg"], h["typ"], cnf)
	if fmt.Sprint(cnf) != fmt.Sprintf("map[x5t#S256:%s]", cert.x5t) {
		t.Fatalf("cnf %v, want x5t#S256 %s", cnf, cert.x5t)
	}
	bearer := map[string]string{"authorization": "Bearer " + tok.AccessToken}
	for _, c := range []struct {
		name, cert string
		reason     string
	}{
		{"its certificate", cert.escaped, ""},
		{"another certificate", other.escaped, "certificate_mismatch"},
		{"no certificate", "", "certificate_missing"},
	} {
		d := a.ask(t, request{path: "/api/things", headers: bearer, peerCert: c.cert})
		t.Logf("jwt-authz, %s: %v", c.name, d)
		if c.reason == "" && (d.code != 0 || d.headers["x-jwt-client"] != "svc-mtls") {
			t.Errorf("Check(%s) = %v, want allowed for svc-mtls", c.name, d)
		}
		if c.reason != "" && !d.denied(401, c.reason) {
			t.Errorf("Check(%s) = %v, want 401 %s", c.name, d, c.reason)
		}
	}
}

// TestOIDCProviderEncrypted: oidc-provider encrypts the access tokens of two resource
// servers to their public keys (nested JWTs: RSA-OAEP-256 with A256GCM, ECDH-ES with
// A128CBC-HS256), and jwt-authz holding the private key decrypts and verifies them.
func TestOIDCProviderEncrypted(t *testing.T) {
	op := startedOIDCProvider(t)
	keyFile := func(t *testing.T, key any) string {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, "enc.key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	}
	encryption := func(key string) string {
		return fmt.Sprintf(`    encryption:
      required: true
      key_algorithms: [RSA-OAEP-256, ECDH-ES]
      content_encryptions: [A256GCM, A128CBC-HS256]
      keys: [{pem_file: %s}]`, key)
	}
	audiences := strings.Join([]string{idp.Resource, idp.EncryptedRSAResource, idp.EncryptedECResource}, ", ")
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		resource   string
		key, other any // the resource server's private key, and another of its type
	}{
		{idp.EncryptedRSAResource, op.EncryptionRSA, otherRSA},
		{idp.EncryptedECResource, op.EncryptionEC, newECKey(t)},
	} {
		t.Run(c.resource, func(t *testing.T) {
			tok, err := op.ClientCredentialsFor(c.resource, "svc.example.com", "svc.example.com-secret", "read", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(tok.AccessToken, "."); n != 4 {
				t.Fatalf("oidc-provider's token for %s has %d dots, want a compact JWE", c.resource, n)
			}
			jwe, err := jose.ParseEncryptedCompact(tok.AccessToken, []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES},
				[]jose.ContentEncryption{jose.A256GCM, jose.A128CBC_HS256})
			if err != nil {
				t.Fatal(err)
			}
			inner, err := jwe.Decrypt(c.key)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("oidc-provider encrypted access token: JWE header %v; inner JWS header %v, aud %v",
				header(t, tok.AccessToken), header(t, string(inner)), payload(t, string(inner))["aud"])
			a := startAuthz(t, boundConfig(op, audiences, encryption(keyFile(t, c.key))))
			a.waitReady(t)
			d := a.check(t, "/api/things", tok.AccessToken)
			t.Logf("jwt-authz with the resource server's key: %v", d)
			if d.code != 0 || d.headers["x-jwt-client"] != "svc.example.com" {
				t.Errorf("Check(nested token) = %v, headers %v, want allowed for svc.example.com", d, d.headers)
			}
			plain, err := op.ClientCredentials("svc.example.com", "svc.example.com-secret", "read")
			if err != nil {
				t.Fatal(err)
			}
			if d := a.check(t, "/api/things", plain.AccessToken); !d.denied(401, "encryption_required") {
				t.Errorf("Check(a plain JWS of the same provider, encryption required) = %v, want 401 encryption_required", d)
			}
			b := startAuthz(t, boundConfig(op, audiences, encryption(keyFile(t, c.other))))
			d = b.check(t, "/api/things", tok.AccessToken)
			t.Logf("jwt-authz with another key of the type: %v", d)
			if !d.denied(401, "decryption_failed") {
				t.Errorf("Check(nested token, jwt-authz holding another key) = %v, want 401 decryption_failed", d)
			}
		})
	}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func thumbprint(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// dpopProof is an RFC 9449 proof by key for htm and htu, with ath when token is not empty.
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, htm, htu, token string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": htm, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	body, _ := json.Marshal(claims)
	obj, err := signer.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

// certificate is a throwaway self-signed client certificate: its URL-encoded PEM, as Envoy
// sends the peer certificate and as x-client-cert carries it, and its RFC 8705 thumbprint.
type certificate struct{ escaped, x5t string }

func newCertificate(t *testing.T, cn string) certificate {
	t.Helper()
	k := newECKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	// Envoy percent-encodes the PEM (spaces, newlines, '+', '/', '=').
	escaped := url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	escaped = strings.NewReplacer("+", "%2B", "=", "%3D").Replace(escaped)
	return certificate{escaped: escaped, x5t: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// TestOIDCProviderPrivateKeyJWT: jwt-authz authenticates to oidc-provider's introspection
// endpoint as rs-jwt.example.com, a client registered with token_endpoint_auth_method
// private_key_jwt (which oidc-provider also applies to introspection): a client assertion
// signed with the client's key, from a JWK file (aud the issuer) or a PEM file (aud the
// endpoint). Another key is refused by oidc-provider, and jwt-authz fails closed.
func TestOIDCProviderPrivateKeyJWT(t *testing.T) {
	op := startedOIDCProvider(t)
	jwk, err := json.Marshal(jose.JSONWebKey{Key: op.IntrospectionKey, KeyID: "rs-jwt-1", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(op.IntrospectionKey)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, err := x509.MarshalPKCS8PrivateKey(newECKey(t))
	if err != nil {
		t.Fatal(err)
	}
	pemFile := func(der []byte) string {
		return writeFile(t, "rs.key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	}
	tok, err := op.ClientCredentialsFor(idp.OpaqueResource, "svc.example.com", "svc.example.com-secret", "read", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, auth string
		allowed    bool
	}{
		{"JWK file, aud the issuer", "private_key_file: " + writeFile(t, "rs.jwk", string(jwk)), true},
		{"PEM file, aud the endpoint", fmt.Sprintf("private_key_file: %s, assertion_audience: %q", pemFile(der), op.URL+"/token/introspection"), true},
		{"another key", "private_key_file: " + pemFile(otherDER), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := startAuthz(t, opaqueConfig(op, "client_id: rs-jwt.example.com, client_auth: private_key_jwt, signing_algorithm: ES256, "+c.auth))
			d := a.check(t, "/api/things", tok.AccessToken)
			t.Logf("jwt-authz: %v", d)
			if c.allowed && (d.code != 0 || d.headers["x-jwt-client"] != "svc.example.com") {
				t.Errorf("Check(opaque token, introspection by private_key_jwt) = %v, want allowed for svc.example.com", d)
			}
			if !c.allowed && !d.denied(503, "introspection_unavailable") {
				t.Errorf("Check(opaque token, assertion signed by another key) = %v, want 503 introspection_unavailable", d)
			}
		})
	}
}
