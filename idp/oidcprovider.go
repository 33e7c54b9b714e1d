package idp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// OIDCProvider is a node oidc-provider server started by StartOIDCProvider
// (oidc-provider/provider.mjs): issuer URL, JWT access tokens for the resource Resource.
type OIDCProvider struct {
	// URL is the issuer and base URL, http://127.0.0.1:PORT.
	URL string
	// Version is the oidc-provider package's version ("9.13.3").
	Version string
	// EncryptionRSA and EncryptionEC are the private keys of the resource servers
	// EncryptedRSAResource and EncryptedECResource, whose access tokens oidc-provider
	// encrypts to their public halves.
	EncryptionRSA *rsa.PrivateKey
	EncryptionEC  *ecdsa.PrivateKey
	// IntrospectionKey is the private key of the client rs-jwt.example.com, which
	// authenticates with private_key_jwt (ES256, kid "rs-jwt-1").
	IntrospectionKey *ecdsa.PrivateKey

	proc   *testproc.Process
	client *http.Client
}

// Resource is the resource indicator (and so the aud) of the access tokens provider.mjs
// issues.
const Resource = "https://api.example.com"

// The further resources of provider.mjs: opaque access tokens, and nested JWTs encrypted
// with RSA-OAEP-256 and A256GCM, or ECDH-ES and A128CBC-HS256.
const (
	OpaqueResource       = "https://opaque.example.com"
	EncryptedRSAResource = "https://enc-rsa.example.com"
	EncryptedECResource  = "https://enc-ec.example.com"
)

// redirectURI is web-app's registered redirect URI; nothing listens there: Login stops at
// the redirect and reads the code from it.
const redirectURI = "http://127.0.0.1/callback"

// StartOIDCProvider installs oidc-provider if needed (install-oidc-provider.sh), starts
// provider.mjs under node and waits until it serves its discovery document.
func StartOIDCProvider() (*OIDCProvider, error) {
	modules, err := install("install-oidc-provider.sh")
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node: %v", ErrNotInstalled, err)
	}
	var pkg struct{ Version string }
	raw, err := os.ReadFile(filepath.Join(modules, "node_modules", "oidc-provider", "package.json"))
	if err == nil {
		err = json.Unmarshal(raw, &pkg)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: oidc-provider's package.json: %v", ErrNotInstalled, err)
	}
	// provider.mjs runs from a directory of its own whose node_modules is the installed one:
	// node resolves imports from the script's directory, not the working directory.
	run, err := os.MkdirTemp("", "jwt-authz-oidc-provider-")
	if err != nil {
		return nil, err
	}
	script, err := os.ReadFile(filepath.Join(dir(), "oidc-provider", "provider.mjs"))
	if err == nil {
		err = os.WriteFile(filepath.Join(run, "provider.mjs"), script, 0o600)
	}
	if err == nil {
		err = os.Symlink(filepath.Join(modules, "node_modules"), filepath.Join(run, "node_modules"))
	}
	if err != nil {
		os.RemoveAll(run)
		return nil, err
	}
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	o := &OIDCProvider{
		URL:     local(port),
		Version: pkg.Version,
		client: &http.Client{Timeout: 30 * time.Second, Jar: jar,
			CheckRedirect: func(req *http.Request, _ []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), redirectURI) {
					return http.ErrUseLastResponse
				}
				return nil
			}},
	}
	env, err := o.generateKeys()
	if err != nil {
		os.RemoveAll(run)
		return nil, err
	}
	o.proc, err = startProcess("oidc-provider", append(env, "PORT="+strconv.Itoa(port), "NODE_ENV=production"),
		node, filepath.Join(run, "provider.mjs"))
	if err != nil {
		os.RemoveAll(run)
		return nil, err
	}
	go func() { <-o.proc.Done(); os.RemoveAll(run) }()
	if err := waitReady(o.proc, o.URL+"/.well-known/openid-configuration", time.Minute); err != nil {
		o.Stop()
		return nil, err
	}
	return o, nil
}

// generateKeys makes the resource servers' and rs-jwt's keys and returns the environment
// that hands their public halves to provider.mjs.
func (o *OIDCProvider) generateKeys() ([]string, error) {
	var err error
	if o.EncryptionRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if o.EncryptionEC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if o.IntrospectionKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	publicPEM := func(pub any) (string, error) {
		der, err := x509.MarshalPKIXPublicKey(pub)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), err
	}
	rsaPEM, err := publicPEM(&o.EncryptionRSA.PublicKey)
	if err != nil {
		return nil, err
	}
	ecPEM, err := publicPEM(&o.EncryptionEC.PublicKey)
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &o.IntrospectionKey.PublicKey, KeyID: "rs-jwt-1", Algorithm: "ES256", Use: "sig"},
	}})
	if err != nil {
		return nil, err
	}
	return []string{"ENC_RSA_PUBLIC=" + rsaPEM, "ENC_EC_PUBLIC=" + ecPEM, "RS_JWT_JWKS=" + string(jwks)}, nil
}

// Stop ends the server.
func (o *OIDCProvider) Stop() { stopProcess(o.proc) }

// Log is the end of the server's output.
func (o *OIDCProvider) Log() string { return logTail(o.proc) }

// ClientCredentials asks for an access token for Resource with the client-credentials grant.
func (o *OIDCProvider) ClientCredentials(clientID, secret, scope string) (Tokens, error) {
	return o.ClientCredentialsFor(Resource, clientID, secret, scope, nil)
}

// ClientCredentialsFor asks for an access token for resource with the client-credentials
// grant, sending header too (a DPoP proof, a client certificate in x-client-cert).
func (o *OIDCProvider) ClientCredentialsFor(resource, clientID, secret, scope string, header http.Header) (Tokens, error) {
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {scope}, "resource": {resource},
	}
	req, err := http.NewRequest("POST", o.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok Tokens
	err = doJSON(o.client, req, &tok)
	return tok, err
}

// Revoke revokes token at the revocation endpoint (RFC 7009) as the client it was issued to.
func (o *OIDCProvider) Revoke(clientID, secret, token string) error {
	return postForm(o.client, o.URL+"/token/revocation", url.Values{
		"token": {token}, "client_id": {clientID}, "client_secret": {secret},
	}, nil)
}

// TokenEndpoint is the URL of the token endpoint, the htu of a DPoP proof for it.
func (o *OIDCProvider) TokenEndpoint() string { return o.URL + "/token" }

// Login signs account in through the authorization-code flow of the confidential client
// web-app (PKCE S256; nonce when not empty), as a browser would through oidc-provider's development
// login and consent pages, and exchanges the code for an access token for Resource and an
// ID token.
func (o *OIDCProvider) Login(account, scope, nonce string) (Tokens, error) {
	verifier := randomString()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id": {"web-app"}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"scope": {scope}, "resource": {Resource}, "state": {randomString()},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if nonce != "" {
		q.Set("nonce", nonce)
	}
	resp, err := o.client.Get(o.URL + "/auth?" + q.Encode())
	// Each page is a login or consent form; submitting it leads to the next, and the last
	// redirects to web-app with the code.
	for step := 0; ; step++ {
		if err != nil {
			return Tokens{}, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, redirectURI) {
			u, err := url.Parse(loc)
			if err != nil {
				return Tokens{}, err
			}
			code := u.Query().Get("code")
			if code == "" {
				return Tokens{}, fmt.Errorf("idp: oidc-provider login: redirected without a code: %s", u.Query().Get("error_description"))
			}
			var tok Tokens
			err = postForm(o.client, o.URL+"/token", url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
				"code_verifier": {verifier}, "client_id": {"web-app"}, "client_secret": {"web-app-secret"},
				"resource": {Resource},
			}, &tok)
			return tok, err
		}
		if resp.StatusCode != http.StatusOK || step == 4 {
			return Tokens{}, fmt.Errorf("idp: oidc-provider login: %s at %s: %.300s", resp.Status, resp.Request.URL, body)
		}
		form := url.Values{"prompt": {"consent"}}
		if strings.Contains(string(body), `name="prompt" value="login"`) {
			form = url.Values{"prompt": {"login"}, "login": {account}, "password": {"any"}}
		}
		resp, err = o.client.PostForm(resp.Request.URL.String(), form)
	}
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
