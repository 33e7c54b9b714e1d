package envoy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/config"
)

// process is one program under test; its stdout and stderr are kept and written to the test
// log when the test fails.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// start runs bin with args until the test ends.
func start(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s %s ---\n%s", name, strings.Join(args, " "), redact(p.out.String()))
		}
	})
	return p
}

// stop asks the process to exit (SIGTERM) and kills it if it has not after 5s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once, as a crash would.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitFor polls ready every 50ms until it returns nil, the process exits or 30s pass.
func (p *process) waitFor(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before %s", p.name, p.err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not after 30s: %v", p.name, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpOK is a readiness probe: GET url answers 200 (and the body contains want).
func httpOK(url, want string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("GET %s: no %q in %.300s", url, want, body)
		}
		return nil
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logs and bodies that reach the test output never carry a credential, whatever a process
// under test printed or echoed: anything shaped like a JWS (or the start of one) and any
// Bearer credential is replaced.
var (
	jwtLike    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,2}`)
	bearerLike = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',;]+`)
)

func redact(s string) string {
	return jwtLike.ReplaceAllString(bearerLike.ReplaceAllString(s, "${1}<redacted>"), "<jwt redacted>")
}

// clip is a response body fit for a failure message: credentials redacted, then cut short.
func clip(b []byte) string {
	s := redact(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// stack is the whole demo on 127.0.0.1: demo-issuer, demo-upstream, jwt-authz and Envoy, run
// from envoy.yaml and jwt-authz.yaml rewritten for loopback (rewrite_test.go).
type stack struct {
	ports
	rawHeaders bool   // Envoy runs with encode_raw_headers
	base       string // Envoy's listener, http://127.0.0.1:port
	admin      string // Envoy's admin API

	issuer   string            // iss of the issuer's tokens (from jwt-authz.yaml)
	audience string            // the audience jwt-authz accepts
	key      *ecdsa.PrivateKey // the issuer's signing key (given with -key-file)

	envoy, authz, issuerProc, upstream *process
}

// startStack starts the demo and returns when Envoy is ready and reports the authz cluster
// healthy. rawHeaders selects the encode_raw_headers variant of envoy.yaml.
func startStack(t *testing.T, rawHeaders bool) *stack {
	t.Helper()
	envoyBin := envoyBinary(t)
	bins := map[string]string{}
	for _, c := range commands {
		bins[c] = binary(t, c)
	}
	dir := t.TempDir()
	s := &stack{ports: freePorts(t), rawHeaders: rawHeaders}
	s.base = "http://127.0.0.1:" + strconv.Itoa(s.Listener)
	s.admin = "http://127.0.0.1:" + strconv.Itoa(s.Admin)

	authzSrc, err := os.ReadFile("jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	authzCfg, err := loopbackAuthzConfig(authzSrc, s.ports)
	if err != nil {
		t.Fatal(err)
	}
	authzFile := filepath.Join(dir, "jwt-authz.yaml")
	writeFile(t, authzFile, authzCfg)
	c, err := config.Load(authzFile)
	if err != nil {
		t.Fatalf("the rewritten jwt-authz.yaml does not load: %v", err)
	}
	s.issuer, s.audience = c.Providers[0].Issuer, c.Providers[0].Audiences[0]

	envoySrc, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	envoyCfg, err := loopbackEnvoyConfig(envoySrc, s.ports, rawHeaders)
	if err != nil {
		t.Fatal(err)
	}
	envoyFile := filepath.Join(dir, "envoy.yaml")
	writeFile(t, envoyFile, envoyCfg)

	// The issuer signs with a key the test also holds, so the test can mint tokens the
	// issuer never would (expired, another audience) that are otherwise genuine.
	s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "issuer-key.pem")
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	local := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	s.issuerProc = start(t, "demo-issuer", bins["demo-issuer"],
		"-addr", local(s.Issuer), "-issuer", s.issuer, "-audience", s.audience,
		"-users", filepath.Join(repoRoot, "cmd", "demo-issuer", "users.yaml"),
		"-alg", "ES256", "-key-file", keyFile)
	s.upstream = start(t, "demo-upstream", bins["demo-upstream"], "-addr", local(s.Upstream))
	s.issuerProc.waitFor(t, "GET /healthz", httpOK("http://"+local(s.Issuer)+"/healthz", ""))
	s.upstream.waitFor(t, "GET /healthz", httpOK("http://"+local(s.Upstream)+"/healthz", ""))

	s.authz = start(t, "jwt-authz", bins["jwt-authz"], "-config", authzFile)
	s.authz.waitFor(t, "GET /readyz", httpOK("http://"+local(s.AuthzHTTP)+"/readyz", ""))

	s.envoy = start(t, "envoy", envoyBin, "-c", envoyFile, "--disable-hot-restart",
		"--concurrency", "1", "--log-level", "warning",
		// Access log lines are read by the tests: flush them every 200ms, not every 10s.
		"--file-flush-interval-msec", "200")
	s.envoy.waitFor(t, "admin /ready", httpOK(s.admin+"/ready", "LIVE"))
	s.envoy.waitFor(t, "authz cluster healthy",
		httpOK(s.admin+"/clusters", "authz::"+local(s.Authz)+"::health_flags::healthy"))
	return s
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// accessLog waits up to 5s (Envoy flushes its log every 200ms here) for an access log
// line that contains every one of parts, and returns it.
func (s *stack) accessLog(parts ...string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range strings.Split(s.envoy.out.String(), "\n") {
			if containsAll(l, parts) {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("no such access log line")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"Authorization":["Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"]}`, `{"Authorization":["Bearer <redacted>"]}`},
		{`cut eyJhbGciOiJFUzI1NiJ9.eyJzd`, `cut <jwt redacted>`},
		{`authorization: bearer opaque-token-123`, `authorization: bearer <redacted>`},
		{`nothing to hide`, `nothing to hide`},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
