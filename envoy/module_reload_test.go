package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestModuleBadReload: a listener update (LDS from a file) that brings a module filter whose
// config does not load is refused by Envoy, which keeps serving with the module it has.
func TestModuleBadReload(t *testing.T) {
	envoyBinary(t)
	t.Setenv("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", moduleLibrary(t))
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub.pem")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, []byte("grpc_address: 127.0.0.1:1\nproviders:\n- name: p\n  issuer: https://issuer.test\n  audiences: [api]\n"+
		"  algorithms: [ES256]\n  keys: [{pem_file: pub.pem}]\nrules:\n- name: all\n  match: {path_prefix: /}\n  require: {providers: [p]}\ndefault_action: deny\n"))
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, []byte("grpc_address: 127.0.0.1:1\nproviders: []\nrule: []\n"))

	port := freePorts(t).Listener
	lds := filepath.Join(dir, "lds.yaml")
	writeLDS := func(version, config string) {
		t.Helper()
		listener := minimalListener(moduleFilter(t, config))
		listener["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
		listener["address"] = map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
		out := edited(t, []byte("{}"), ports{}, func(_ *testing.T, r map[string]any, _ ports) {
			r["version_info"] = version
			r["resources"] = []any{listener}
		})
		tmp := lds + ".tmp"
		writeFile(t, tmp, out)
		if err := os.Rename(tmp, lds); err != nil { // Envoy watches for the file being moved into place
			t.Fatal(err)
		}
	}
	writeLDS("1", good)
	admin := freePorts(t).Admin
	boot := filepath.Join(dir, "envoy.yaml")
	writeFile(t, boot, []byte(fmt.Sprintf(`node: {id: module-test, cluster: module-test}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
dynamic_resources:
  lds_config:
    path_config_source: {path: %s}
    resource_api_version: V3
`, admin, lds)))
	t.Setenv("GOMAXPROCS", "") // unset: the module chooses
	p := start(t, "envoy", envoyBinary(t), "-c", boot, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warning")
	base := fmt.Sprintf("http://127.0.0.1:%d/x", port)
	p.WaitFor(t, "the module's listener", httpStatus(base, 401))
	// The module asks Envoy for its worker count (get_concurrency) and keeps a Go P more
	// than that, so that a worker never waits for one (envoy/module/procs.go). Its log
	// lines reach Envoy's output within 100 ms (linewriter).
	p.WaitFor(t, "the module's loaded line", func() error {
		const want = `"envoy_workers":1,"gomaxprocs":`
		out := p.Out.String()
		i := strings.Index(out, want)
		if i < 0 {
			return fmt.Errorf("no %s in Envoy's output yet", want)
		}
		digits := out[i+len(want):]
		if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
			digits = digits[:j]
		}
		if n, err := strconv.Atoi(digits); err != nil || n < 2 {
			return fmt.Errorf("gomaxprocs %q with one Envoy worker, want at least 2", digits)
		}
		return nil
	})

	writeLDS("2", bad)
	stats := fmt.Sprintf("http://127.0.0.1:%d/stats?filter=listener_manager.lds.update_rejected", admin)
	p.WaitFor(t, "the bad update refused", httpOK(stats, "update_rejected: 1"))
	for range 3 {
		if err := httpStatus(base, 401)(); err != nil {
			t.Errorf("after the refused update: %v", err)
		}
	}
	if !strings.Contains(p.Out.String(), `jwt-authz module: filter "jwt_authz": config: `+bad) {
		t.Errorf("Envoy's output lacks the module's error for %s:\n%s", bad, p.Out.String())
	}
}

// httpStatus checks that GET url answers status.
func httpStatus(url string, status int) func() error {
	return func() error {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != status {
			return fmt.Errorf("GET %s = %d, want %d", url, resp.StatusCode, status)
		}
		return nil
	}
}
