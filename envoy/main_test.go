package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// envoyVersion is the Envoy the tests run and the compose file ships; compose_test.go checks
// that docker-compose.yaml, install-envoy.sh and the binary agree on it.
const envoyVersion = "1.40.0"

// commands are the binaries of this module that the end-to-end tests run.
var commands = []string{"jwt-authz", "demo-issuer", "demo-upstream"}

var (
	repoRoot string // the module root, where docker-compose.yaml lives
	binDir   string // where the commands are built, once per test binary

	buildOnce sync.Once
	buildErrs map[string]error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "jwt-authz-envoy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// binary returns the path of ./cmd/name built for this test run. All commands are built by
// the first call, in one "go build" (shared compilation), so tests that need none of them
// (the config checks) stay fast. A command whose package is not in the tree yet skips the
// test; one that does not build fails it.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(buildAll)
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", name)); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("cmd/%s is not in the tree yet", name)
	}
	if err := buildErrs[name]; err != nil {
		t.Fatalf("go build ./cmd/%s: %v", name, err)
	}
	return filepath.Join(binDir, name)
}

// raceBuilt are the commands built with the race detector when the tests have it: the
// product, whose concurrency the end-to-end traffic exercises. The demo binaries are not:
// bcrypt under the race detector takes seconds per login on a busy 2-core machine, longer
// than Envoy's 5s route timeout for /login.
var raceBuilt = map[string]bool{"jwt-authz": true}

func buildAll() {
	buildErrs = map[string]error{}
	groups := map[bool][]string{} // race -> packages
	for _, c := range commands {
		if _, err := os.Stat(filepath.Join(repoRoot, "cmd", c)); err == nil {
			race := raceEnabled && raceBuilt[c]
			groups[race] = append(groups[race], "./cmd/"+c)
		}
	}
	for race, pkgs := range groups {
		if goBuild(race, pkgs...) == nil {
			continue
		}
		// Build them one by one so each failure is charged to its own command.
		for _, p := range pkgs {
			buildErrs[filepath.Base(p)] = goBuild(race, p)
		}
	}
}

func goBuild(race bool, pkgs ...string) error {
	args := []string{"build", "-buildvcs=false"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-o", binDir+string(filepath.Separator))
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, out.Bytes())
	}
	return nil
}

// envoyBinary returns the Envoy to run: $ENVOY_BIN, else "envoy" on PATH. Without one the
// test is skipped, except under CI (CI set), where a missing Envoy is a failure: a CI that
// silently skips the end-to-end tests proves nothing.
func envoyBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ENVOY_BIN=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p
	}
	const msg = "no Envoy binary: set ENVOY_BIN or put envoy on PATH (make test installs Envoy " + envoyVersion + " with envoy/install-envoy.sh)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runEnvoy runs Envoy with args and returns its combined output.
func runEnvoy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(envoyBinary(t), args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
