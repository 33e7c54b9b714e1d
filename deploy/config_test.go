package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The server binary, built once from the parent module for the tests that need it.
var server struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// jwtAuthz returns the path of a jwt-authz binary built from ../cmd/jwt-authz.
func jwtAuthz(t *testing.T) string {
	t.Helper()
	server.once.Do(func() {
		server.dir, server.err = os.MkdirTemp("", "jwt-authz-deploy-")
		if server.err != nil {
			return
		}
		server.path = filepath.Join(server.dir, "jwt-authz")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", server.path, "./cmd/jwt-authz")
		cmd.Dir = ".." // the server's own module, with its own go.mod
		server.out, server.err = cmd.CombinedOutput()
	})
	if server.err != nil {
		t.Fatalf("go build ./cmd/jwt-authz: %v\n%s", server.err, server.out)
	}
	return server.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.dir != "" {
		os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

// check runs "jwt-authz -config FILE -check" on a config file's content. The key sources
// are jwks_uri only: -check validates them and fetches nothing, so no network is needed.
func check(t *testing.T, config string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "jwt-authz.yaml")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := jwtAuthz(t) // may build it first: not under the timeout of one check
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-config", f, "-check")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func runCheck(t *testing.T, config string) {
	t.Helper()
	if out, err := check(t, config); err != nil || !strings.Contains(out, ": ok (") {
		t.Errorf("jwt-authz -check: %v\n%s\nconfig:\n%s", err, out, config)
	}
}

// TestConfigCheck: the config in the kustomize ConfigMap and the one the chart renders from
// its default values both pass the server's own validation.
func TestConfigCheck(t *testing.T) {
	t.Run("kustomize", func(t *testing.T) { runCheck(t, configFile(t, loadKustomize(t))) })
	t.Run("helm", func(t *testing.T) { runCheck(t, configFile(t, mustRender(t, "jwt-authz", "jwt-authz", nil))) })
}

// TestConfigCheckRefuses keeps the check above honest: -check does reject a bad file.
func TestConfigCheckRefuses(t *testing.T) {
	bad := strings.Replace(configFile(t, loadKustomize(t)), "non_http_action:", "non_http_actoin:", 1)
	if out, err := check(t, bad); err == nil {
		t.Errorf("jwt-authz -check accepted an unknown key:\n%s", out)
	}
}
