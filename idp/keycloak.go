package idp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// Keycloak is a Keycloak server started by StartKeycloak, in production mode (kc.sh start)
// over plain HTTP on 127.0.0.1 with an in-memory database. Its hostname is fixed to URL
// (KC_HOSTNAME), so every token's iss is URL/realms/<realm> whoever asks.
type Keycloak struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// Version is what the installed distribution says of itself ("26.5.6").
	Version string

	proc          *testproc.Process
	adminPassword string
	client        *http.Client
}

// StartKeycloak installs Keycloak if needed (install-keycloak.sh), starts it and waits until
// it serves its master realm: 20-90s on a busy 2-core machine, more when two start at once.
func StartKeycloak() (*Keycloak, error) {
	home, err := install("install-keycloak.sh")
	if err != nil {
		return nil, err
	}
	java, err := install("find-java.sh")
	if err != nil {
		return nil, err
	}
	version, _ := os.ReadFile(filepath.Join(home, "version.txt"))
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	mgmt, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	k := &Keycloak{
		URL:           local(port),
		Version:       strings.TrimPrefix(strings.TrimSpace(string(version)), "Keycloak - Version "),
		adminPassword: hex.EncodeToString(secret),
		client:        &http.Client{Timeout: 30 * time.Second},
	}
	env := []string{
		"JAVA_HOME=" + filepath.Dir(filepath.Dir(java)),
		"JAVA_OPTS_KC_HEAP=-Xms64m -Xmx768m", // not 70% of the machine's memory
		"KC_BOOTSTRAP_ADMIN_USERNAME=admin",
		"KC_BOOTSTRAP_ADMIN_PASSWORD=" + k.adminPassword,
	}
	k.proc, err = startProcess("keycloak", env, filepath.Join(home, "bin", "kc.sh"), "start", "--optimized",
		"--http-enabled=true", "--http-host=127.0.0.1", fmt.Sprintf("--http-port=%d", port),
		fmt.Sprintf("--http-management-port=%d", mgmt), "--hostname="+k.URL,
		"--log-level=warn")
	if err != nil {
		return nil, err
	}
	if err := waitReady(k.proc, k.URL+"/realms/master/.well-known/openid-configuration", 5*time.Minute); err != nil {
		k.Stop()
		return nil, err
	}
	return k, nil
}

// Stop ends the server.
func (k *Keycloak) Stop() { stopProcess(k.proc) }

// Log is the end of the server's output, for a failing test's log.
func (k *Keycloak) Log() string { return logTail(k.proc) }

// Issuer is the iss of realm's tokens, also its OIDC discovery base.
func (k *Keycloak) Issuer(realm string) string { return k.URL + "/realms/" + realm }

// LoadRealm reads a realm representation (a realm export, JSON) from file and names it
// name, as realm and as id, for CreateRealm after any changes a test makes.
func LoadRealm(file, name string) (map[string]any, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var realm map[string]any
	if err := json.Unmarshal(raw, &realm); err != nil {
		return nil, fmt.Errorf("idp: %s: %w", file, err)
	}
	realm["realm"], realm["id"] = name, name
	return realm, nil
}

// CreateRealm imports a realm representation (the JSON of Keycloak's admin API and its
// realm export: clients, roles, users, service-account users).
func (k *Keycloak) CreateRealm(realm any) error {
	return k.Admin("POST", "", realm, nil)
}

// Admin calls the admin REST API at /admin/realms+path with a JSON body (nil for none) and
// decodes a JSON answer into out (nil to discard it). It logs in afresh each time: master
// realm admin tokens live 60s, and a call costs far less than a test.
func (k *Keycloak) Admin(method, path string, body, out any) error {
	var tok Tokens
	err := postForm(k.client, k.Issuer("master")+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"admin-cli"},
		"username": {"admin"}, "password": {k.adminPassword},
	}, &tok)
	if err != nil {
		return fmt.Errorf("idp: keycloak admin login: %w", err)
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.URL+"/admin/realms"+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	return doJSON(k.client, req, out)
}

// Tokens is a token endpoint's answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
}

// Token asks realm's token endpoint for tokens with form (grant_type, client_id, ...).
func (k *Keycloak) Token(realm string, form url.Values) (Tokens, error) {
	var tok Tokens
	err := postForm(k.client, k.Issuer(realm)+"/protocol/openid-connect/token", form, &tok)
	return tok, err
}

// ClientCredentials is Token with the client-credentials grant.
func (k *Keycloak) ClientCredentials(realm, clientID, secret, scope string) (Tokens, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return k.Token(realm, form)
}

// Revoke revokes token at realm's revocation endpoint (RFC 7009) as the client it was
// issued to.
func (k *Keycloak) Revoke(realm, clientID, secret, token string) error {
	return postForm(k.client, k.Issuer(realm)+"/protocol/openid-connect/revoke", url.Values{
		"token": {token}, "token_type_hint": {"access_token"}, "client_id": {clientID}, "client_secret": {secret},
	}, nil)
}

// Password is Token with the resource-owner password grant (a public client).
func (k *Keycloak) Password(realm, clientID, user, password, scope string) (Tokens, error) {
	return k.Token(realm, url.Values{
		"grant_type": {"password"}, "client_id": {clientID},
		"username": {user}, "password": {password}, "scope": {scope},
	})
}

// RealmKey is one entry of a realm's key list (GET /admin/realms/<realm>/keys).
type RealmKey struct {
	KID          string `json:"kid"`
	Algorithm    string `json:"algorithm"`
	Type         string `json:"type"`
	Use          string `json:"use"`
	Status       string `json:"status"` // ACTIVE, PASSIVE or DISABLED
	ProviderID   string `json:"providerId"`
	ProviderPrio int    `json:"providerPriority"`
}

// Keys lists realm's keys.
func (k *Keycloak) Keys(realm string) ([]RealmKey, error) {
	var out struct {
		Keys []RealmKey `json:"keys"`
	}
	err := k.Admin("GET", "/"+realm+"/keys", nil, &out)
	return out.Keys, err
}

// AddKeyProvider adds a generated-key provider to realm (providerID such as rsa-generated,
// ecdsa-generated, eddsa-generated) with config (priority, algorithm, ...), and returns the
// component's id. The realm's id must be its name (CreateRealm with "id": name).
func (k *Keycloak) AddKeyProvider(realm, name, providerID string, config map[string]string) (string, error) {
	cfg := map[string][]string{}
	for key, v := range config {
		cfg[key] = []string{v}
	}
	err := k.Admin("POST", "/"+realm+"/components", map[string]any{
		"name": name, "providerId": providerID, "providerType": "org.keycloak.keys.KeyProvider",
		"parentId": realm, "config": cfg,
	}, nil)
	if err != nil {
		return "", err
	}
	var comps []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := k.Admin("GET", "/"+realm+"/components?type=org.keycloak.keys.KeyProvider&name="+url.QueryEscape(name), nil, &comps); err != nil {
		return "", err
	}
	if len(comps) != 1 {
		return "", fmt.Errorf("idp: keycloak realm %s: %d key providers named %q after creating one", realm, len(comps), name)
	}
	return comps[0].ID, nil
}

// SetKeyProvider changes config entries of a key provider component (for example
// enabled=false to withdraw its key, active=false to stop signing with it).
func (k *Keycloak) SetKeyProvider(realm, id string, config map[string]string) error {
	var comp map[string]any
	if err := k.Admin("GET", "/"+realm+"/components/"+id, nil, &comp); err != nil {
		return err
	}
	cfg, _ := comp["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	for key, v := range config {
		cfg[key] = []string{v}
	}
	comp["config"] = cfg
	return k.Admin("PUT", "/"+realm+"/components/"+id, comp, nil)
}
