package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestKeySourcesAgreeAndSkip: a jwks_file that repeats the IdP's key next to an X25519 key,
// beside the IdP's jwks_uri. The X25519 key is skipped (logged and counted), the repeated
// key is one key, the provider is ready, and an unknown kid is a 401, not a 503.
func TestKeySourcesAgreeAndSkip(t *testing.T) {
	idp := newIdP(t)
	dir := t.TempDir()
	pub := jose.JSONWebKey{Key: &idp.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "jwks.json"), `{"keys":[`+string(pubJSON)+
		`,{"kty":"OKP","crv":"X25519","kid":"x-1","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}]}`)
	cfg := strings.Replace(validConfig(idp.srv.URL, "/api"), "    keys:\n", "    keys:\n      - jwks_file: jwks.json\n", 1)
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, cfg)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)
	srv.waitLog(t, "key skipped")

	authz := checkClient(t, srv.grpcAddr)
	if code := checkCode(t, authz, "/api/x", idp.sign(t, map[string]any{"sub": "a"})); code != 0 {
		t.Errorf("Check(token of the key both sources publish) status = %d, want 0", code)
	}
	if got := httpStatus(srv.httpURL + "/readyz"); got != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", got)
	}
	metrics := get(t, srv.httpURL+"/metrics")
	for _, want := range []string{
		`jwt_authz_keys_skipped_total{provider="demo",reason="unsupported"} 1`,
		`jwt_authz_keys{provider="demo"} 2`, // one per source: the file's copy and the URL's
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	srv.cancel()
	if err := srv.wait(); err != nil {
		t.Fatal(err)
	}
}
