package idp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// Hydra is an Ory Hydra server started by StartHydra: `hydra serve all --dev` with an
// in-memory database and JWT access tokens (strategies.access_token=jwt), its public API at
// URL (also the issuer) and its admin API at AdminURL.
type Hydra struct {
	URL, AdminURL string
	// Version is the Hydra release built (install-hydra.sh's HYDRA_VERSION).
	Version string

	proc   *testproc.Process
	client *http.Client
}

// StartHydra builds Hydra if needed (install-hydra.sh), starts it and waits until it serves
// its discovery document.
func StartHydra() (*Hydra, error) {
	bin, err := install("install-hydra.sh")
	if err != nil {
		return nil, err
	}
	public, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	admin, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	h := &Hydra{
		URL: local(public), AdminURL: local(admin),
		Version: strings.TrimPrefix(filepath.Base(filepath.Dir(bin)), "hydra-"),
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	env := []string{
		"DSN=memory", "SECRETS_SYSTEM=" + randomString(), "URLS_SELF_ISSUER=" + h.URL,
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT=" + strconv.Itoa(public),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT=" + strconv.Itoa(admin),
		"LOG_LEVEL=warn", "SQA_OPT_OUT=true", // no usage statistics sent anywhere
	}
	// --dev: plain HTTP on 127.0.0.1.
	h.proc, err = startProcess("hydra", env, bin, "serve", "all", "--dev")
	if err != nil {
		return nil, err
	}
	if err := waitReady(h.proc, h.URL+"/.well-known/openid-configuration", time.Minute); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// Stop ends the server.
func (h *Hydra) Stop() { stopProcess(h.proc) }

// Log is the end of the server's output.
func (h *Hydra) Log() string { return logTail(h.proc) }

// CreateClient registers an OAuth 2.0 client (POST /admin/clients).
func (h *Hydra) CreateClient(client map[string]any) error {
	return h.admin("POST", "/admin/clients", client, nil)
}

// AddSigningKey generates a new RS256 key in the access-token key set, which Hydra signs
// with from then on, and returns its kid.
func (h *Hydra) AddSigningKey(kid string) error {
	return h.admin("POST", "/admin/keys/hydra.jwt.access-token", map[string]string{"alg": "RS256", "use": "sig", "kid": kid}, nil)
}

// ClientCredentials asks for an access token for audience with the client-credentials grant.
func (h *Hydra) ClientCredentials(clientID, secret, scope, audience string) (Tokens, error) {
	var tok Tokens
	err := postForm(h.client, h.URL+"/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {scope}, "audience": {audience},
	}, &tok)
	return tok, err
}

func (h *Hydra) admin(method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, h.AdminURL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := doJSON(h.client, req, out); err != nil {
		return fmt.Errorf("idp: hydra admin: %w", err)
	}
	return nil
}
