package envoy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// inNamespace marks the re-executed test binary that runs inside the namespaces.
const inNamespace = "JWT_AUTHZ_TEST_IN_NETNS"

// TestComposeServices runs docker-compose.yaml's services without Docker, as close to
// compose as one machine allows: each service's own command, with container paths mapped
// back to the files compose mounts and /usr/local/bin/* to the binaries built here, in a
// private network and mount namespace where the service names and aliases resolve to
// 127.0.0.1 (a private /etc/hosts) and the compose ports are free. Envoy gets envoy.yaml
// untouched: STRICT_DNS clusters, 0.0.0.0 listeners, the compose ports. Services start in
// depends_on order, each waited on with its own compose health check command; then a client
// logs in and calls the API through Envoy on :8000. The image itself is not built.
//
// It needs root and unshare(1); without them it is skipped, even under CI: the e2e tests
// cover the behaviour, this covers the compose wiring.
func TestComposeServices(t *testing.T) {
	if os.Getenv(inNamespace) != "" {
		composeServices(t)
		return
	}
	requireNamespaces(t)
	envoyBin := envoyBinary(t)
	for _, c := range commands {
		binary(t, c)
	}

	p := loadCompose(t)
	names := []string{"localhost"}
	for _, name := range p.ServiceNames() {
		names = append(names, name)
		for _, n := range p.Services[name].Networks {
			if n != nil {
				names = append(names, n.Aliases...)
			}
		}
	}
	runInNamespaces(t, "^TestComposeServices$", names, envoyBin)
}

// requireNamespaces skips the test unless it can run in a private network and mount
// namespace: root on Linux, with unshare, mount, ip and bash.
func requireNamespaces(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux for a private network and mount namespace")
	}
	for _, tool := range []string{"unshare", "mount", "ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create namespaces here: %v %s", err, out)
	}
}

// runInNamespaces re-runs the test binary's test run (a -test.run pattern) in a private
// network and mount namespace where names resolve to 127.0.0.1, with inNamespace set.
func runInNamespaces(t *testing.T, run string, names []string, envoyBin string) {
	t.Helper()
	hosts := filepath.Join(t.TempDir(), "hosts")
	writeFile(t, hosts, []byte("127.0.0.1 "+strings.Join(names, " ")+"\n"))

	const script = `ip link set lo up && mount --bind "$0" /etc/hosts && exec "$@"`
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, hosts, os.Args[0], "-test.run", run, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNamespace+"=1", "ENVOY_BIN="+envoyBin, "JWT_AUTHZ_TEST_BIN_DIR="+binDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s in a namespace: %v\n%s", run, err, redact(string(out)))
		return
	}
	t.Logf("in the namespace:\n%s", redact(string(out)))
}

// composeServices is TestComposeServices inside the namespaces.
func composeServices(t *testing.T) {
	p := loadCompose(t)
	bins := os.Getenv("JWT_AUTHZ_TEST_BIN_DIR")
	mounts := map[string]string{} // container path -> host file
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				mounts[v.Target] = v.Source
			}
		}
	}
	// local maps a container argv to this machine's.
	local := func(argv []string) []string {
		out := make([]string, len(argv))
		for i, a := range argv {
			key, val, isFlag := strings.Cut(a, "=")
			switch {
			case i == 0 && strings.HasPrefix(a, "/usr/local/bin/"):
				a = filepath.Join(bins, path.Base(a))
			case i == 0 && a == "envoy":
				a = os.Getenv("ENVOY_BIN")
			case mounts[a] != "":
				a = mounts[a]
			case isFlag && mounts[val] != "":
				a = key + "=" + mounts[val]
			}
			out[i] = a
		}
		return out
	}

	healthy := map[string]bool{}
	procs := map[string]*testproc.Process{}
	for len(healthy) < len(p.Services) {
		progress := false
		for _, name := range p.ServiceNames() {
			s := p.Services[name]
			if healthy[name] || slices.ContainsFunc(keys(s.DependsOn), func(d string) bool { return !healthy[d] }) {
				continue
			}
			argv := local(s.Command)
			if name == "envoy" {
				// Compose gives each Envoy a container of its own; here other tests' Envoys
				// may share this machine's shared memory, which hot restart would claim.
				argv = append(argv, "--disable-hot-restart")
			}
			proc := start(t, name, argv[0], argv[1:]...)
			procs[name] = proc
			hc := s.HealthCheck.Test
			if len(hc) < 2 || hc[0] != "CMD" {
				t.Fatalf("%s healthcheck.test %q: want the CMD form", name, hc)
			}
			check := local(hc[1:])
			proc.WaitFor(t, "its compose health check", func() error {
				if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
					return fmt.Errorf("%q: %v %s", hc[1:], err, clip(out))
				}
				return nil
			})
			t.Logf("%s: started in depends_on order and healthy", name)
			healthy[name], progress = true, true
		}
		if !progress {
			t.Fatalf("depends_on has a cycle or names a missing service: healthy %v", healthy)
		}
	}

	// The Envoy health check says LIVE; the first check of jwt-authz may still be under way.
	procs["envoy"].WaitFor(t, "authz cluster healthy", httpOK("http://127.0.0.1:9901/clusters", "::health_flags::healthy"))

	s := &stack{base: "http://127.0.0.1:8000"}
	alice := s.login(t, "alice", "alice-password")
	e := s.do(t, "GET", "/api/things", http.Header{"Authorization": {"Bearer " + alice}}, "").upstream(t, 200)
	if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("GET /api/things (alice): upstream saw x-jwt-sub %q, want [alice]", got)
	}
	s.do(t, "GET", "/api/things", nil, "").challenge(t, 401, "")
	t.Log("through Envoy on :8000: login 200, API 200 with x-jwt-sub alice, no token 401")
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
