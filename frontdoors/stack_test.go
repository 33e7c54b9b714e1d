package frontdoors

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

var (
	repoRoot string
	binDir   string
)

func TestMain(m *testing.M) {
	root, _ := filepath.Abs("..")
	repoRoot = root
	dir, err := os.MkdirTemp("", "jwt-authz-frontdoors-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binary is ./cmd/name, built once per test run.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", binDir+string(filepath.Separator),
			"./cmd/jwt-authz", "./cmd/demo-issuer", "./cmd/demo-upstream")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// proxyBinary finds a proxy: $env, else name on PATH. Missing, the test is skipped, except
// under CI (CI set), where it fails: .ci/run installs every proxy these tests run.
func proxyBinary(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("no %s: set %s or install it (.ci/run does)", name, env)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// The ports written in this folder's files, and what each one is.
const (
	portProxy    = 8000 // the front door: Envoy, nginx or Caddy
	portIssuer   = 8080 // demo-issuer
	portUpstream = 8081 // demo-upstream
	portGRPC     = 9001 // jwt-authz gRPC
	portHTTP     = 9002 // jwt-authz /readyz, /metrics
	portAuthz    = 9003 // jwt-authz's HTTP decision face
	portEnvoyAdm = 9901 // Envoy's admin
)

// stack is the demo behind one front door, every part on 127.0.0.1 with free ports.
type stack struct {
	dir   string
	ports map[int]int // the file's port -> the one used
	authz *testproc.Process
	proxy string // the front door's base URL
}

func newStack(t *testing.T) *stack {
	s := &stack{dir: t.TempDir(), ports: map[int]int{}}
	for _, p := range []int{portProxy, portIssuer, portUpstream, portGRPC, portHTTP, portAuthz, portEnvoyAdm} {
		s.ports[p] = testproc.Port(t)
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", s.ports[portIssuer])
	up := testproc.Run(t, "demo-upstream", nil, binary(t, "demo-upstream"), "-addr", s.addr(portUpstream))
	iss := testproc.Run(t, "demo-issuer", nil, binary(t, "demo-issuer"), "-addr", s.addr(portIssuer), "-issuer", issuer,
		"-audience", "demo-api", "-users", filepath.Join(repoRoot, "cmd/demo-issuer/users.yaml"))
	iss.WaitFor(t, "healthy", httpOK(issuer+"/healthz"))
	up.WaitFor(t, "listening", func() error { _, err := http.Get("http://" + s.addr(portUpstream) + "/"); return err })
	cfg := s.file(t, "jwt-authz.yaml")
	s.authz = testproc.Run(t, "jwt-authz", nil, binary(t, "jwt-authz"), "-config", cfg)
	s.authz.WaitFor(t, "ready", httpOK("http://"+s.addr(portHTTP)+"/readyz"))
	s.proxy = "http://" + s.addr(portProxy)
	return s
}

func (s *stack) addr(port int) string { return "127.0.0.1:" + strconv.Itoa(s.ports[port]) }

// file writes this folder's file name into the stack's directory with the ports rewritten,
// and returns its path.
func (s *stack) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var pairs []string
	for from, to := range s.ports {
		pairs = append(pairs, fmt.Sprintf("127.0.0.1:%d", from), s.addr(from),
			fmt.Sprintf("port_value: %d", from), fmt.Sprintf("port_value: %d", to))
	}
	text = strings.NewReplacer(pairs...).Replace(text)
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func httpOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// reply is one answer through the front door.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *stack) send(t *testing.T, method, path string, headers ...string) reply {
	t.Helper()
	var body io.Reader
	if method == "POST" && len(headers)%2 == 1 { // a trailing odd element is the body
		body = strings.NewReader(headers[len(headers)-1])
		headers = headers[:len(headers)-1]
	}
	req, err := http.NewRequest(method, s.proxy+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// echo is demo-upstream's answer: the request as it arrived there.
type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

func (r reply) echo() (echo, bool) {
	var e echo
	return e, json.Unmarshal(r.body, &e) == nil && e.Method != "" && e.Headers != nil
}

func (r reply) reason() string {
	var v struct{ Reason string }
	json.Unmarshal(r.body, &v)
	return v.Reason
}
