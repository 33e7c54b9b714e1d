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

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// TestModuleBadReload: a listener update (LDS from a file) that brings a module filter whose
// config does not load is refused by Envoy, which keeps serving with the module it has.
func TestModuleBadReload(t *testing.T) {
	e := startLDSModule(t)
	base := e.url("/x")
	// The module asks Envoy for its worker count (get_concurrency) and keeps a Go P more
	// than that, so that a worker never waits for one (envoy/module/procs.go). Its log
	// lines reach Envoy's output within 100 ms (linewriter).
	p := e.proc
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

	bad := filepath.Join(e.dir, "bad.yaml")
	writeFile(t, bad, []byte("grpc_address: 127.0.0.1:1\nproviders: []\nrule: []\n"))
	e.update("2", bad)
	p.WaitFor(t, "the bad update refused", httpOK(e.admin+"/stats?filter=listener_manager.lds.update_rejected", "update_rejected: 1"))
	for range 3 {
		if err := httpStatus(base, 401)(); err != nil {
			t.Errorf("after the refused update: %v", err)
		}
	}
	if !strings.Contains(p.Out.String(), `jwt-authz module: filter "jwt_authz": config: `+bad) {
		t.Errorf("Envoy's output lacks the module's error for %s:\n%s", bad, p.Out.String())
	}
}

// TestModuleCountsAcrossReload: the module counts decisions in Go and hands them to Envoy's
// counter every half second and when its filter config goes (envoy/module/counts.go). Across a
// listener update that replaces the filter config, every decision is counted exactly once,
// and Envoy keeps serving once the old config has drained and been torn down.
func TestModuleCountsAcrossReload(t *testing.T) {
	e := startLDSModule(t, "--drain-time-s", "1")
	const counter = "dynamicmodulescustom.decisions.decision.deny.reason.missing_token"
	once := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(n int) {
		t.Helper()
		for range n {
			resp, err := once.Get(e.url("/x"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET /x without a token = %d, want 401", resp.StatusCode)
			}
		}
	}
	// The startup probe's 401s are counted too: wait for them, then count from there.
	counted := func() int {
		t.Helper()
		resp, err := http.Get(e.admin + "/stats?filter=" + counter + "$")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(b)), counter+": "))
		return n
	}
	e.proc.WaitFor(t, "the probe's decision counted", func() error {
		if counted() == 0 {
			return fmt.Errorf("%s not counted yet", counter)
		}
		return nil
	})
	time.Sleep(2 * flushEvery)
	base := counted()
	get(7)
	// The same policy from another file: a new filter config, the old one drained and
	// destroyed (its last counts handed over then, if the half-second flush has not).
	other := filepath.Join(e.dir, "other.yaml")
	writeFile(t, other, e.goodConfig)
	e.update("2", other)
	e.proc.WaitFor(t, "the update applied", httpOK(e.admin+"/stats?filter=listener_manager.lds.update_success", "update_success: 2"))
	get(5)
	e.proc.WaitFor(t, "the old filter chain drained", httpOK(e.admin+"/stats?filter=listener_manager.total_filter_chains_draining", "draining: 0"))
	e.proc.WaitFor(t, "12 more decisions counted", func() error {
		if n := counted(); n < base+12 {
			return fmt.Errorf("%s = %d, want %d", counter, n, base+12)
		}
		return nil
	})
	time.Sleep(2 * flushEvery) // nothing counted twice
	if n := counted(); n != base+12 {
		t.Errorf("%s = %d after 12 decisions from %d, want %d", counter, n, base, base+12)
	}
	get(1)
}

// flushEvery is the module's flush interval (envoy/module/counts.go).
const flushEvery = 500 * time.Millisecond

// ldsModule is an Envoy whose one listener (the module on a jwt-authz config, then what the
// test writes) comes from an LDS file.
type ldsModule struct {
	t          *testing.T
	dir, lds   string
	port       int
	admin      string // http://127.0.0.1:PORT
	proc       *testproc.Process
	goodConfig []byte
}

// startLDSModule starts Envoy with the module on a config that loads (an ES256 key of the
// test's, every path required to carry a token), at LDS version 1.
func startLDSModule(t *testing.T, envoyArgs ...string) *ldsModule {
	t.Helper()
	envoyBinary(t)
	t.Setenv("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", moduleLibrary(t))
	e := &ldsModule{t: t, dir: t.TempDir(), port: freePorts(t).Listener}
	e.lds = filepath.Join(e.dir, "lds.yaml")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.dir, "pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	e.goodConfig = []byte("grpc_address: 127.0.0.1:1\nproviders:\n- name: p\n  issuer: https://issuer.test\n  audiences: [api]\n" +
		"  algorithms: [ES256]\n  keys: [{pem_file: pub.pem}]\nrules:\n- name: all\n  match: {path_prefix: /}\n  require: {providers: [p]}\ndefault_action: deny\n")
	good := filepath.Join(e.dir, "good.yaml")
	writeFile(t, good, e.goodConfig)
	e.update("1", good)
	admin := freePorts(t).Admin
	e.admin = fmt.Sprintf("http://127.0.0.1:%d", admin)
	boot := filepath.Join(e.dir, "envoy.yaml")
	writeFile(t, boot, []byte(fmt.Sprintf(`node: {id: module-test, cluster: module-test}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
dynamic_resources:
  lds_config:
    path_config_source: {path: %s}
    resource_api_version: V3
`, admin, e.lds)))
	t.Setenv("GOMAXPROCS", "") // unset: the module chooses
	args := append([]string{"-c", boot, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warning"}, envoyArgs...)
	e.proc = start(t, "envoy", envoyBinary(t), args...)
	e.proc.WaitFor(t, "the module's listener", httpStatus(e.url("/x"), 401))
	return e
}

// update writes LDS version version: the listener with the module on config.
func (e *ldsModule) update(version, config string) {
	t := e.t
	t.Helper()
	listener := minimalListener(moduleFilter(t, config))
	listener["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
	listener["address"] = map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": e.port}}
	out := edited(t, []byte("{}"), ports{}, func(_ *testing.T, r map[string]any, _ ports) {
		r["version_info"] = version
		r["resources"] = []any{listener}
	})
	tmp := e.lds + ".tmp"
	writeFile(t, tmp, out)
	if err := os.Rename(tmp, e.lds); err != nil { // Envoy watches for the file being moved into place
		t.Fatal(err)
	}
}

// url is the listener's URL for path.
func (e *ldsModule) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path)
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
