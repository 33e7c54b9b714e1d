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
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/config"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// start runs bin with args until the test ends; its output, credentials redacted, is
// written to the test log when the test fails.
func start(t *testing.T, name, bin string, args ...string) *testproc.Process {
	t.Helper()
	return testproc.Run(t, name, testproc.Redact, bin, args...)
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

// metric scrapes the /metrics page at URL page and returns the sum of the samples of name whose labels
// include every one of labels (written as on the page: `result="ok"`); 0 when none has.
func metric(t *testing.T, page, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(page)
	if err != nil {
		t.Fatalf("GET %s: %v", page, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", page, resp.Status, err)
	}
	sum := 0.0
	for _, l := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(l, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || !containsAll(series, labels) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("GET %s: %q: %v", page, l, err)
		}
		sum += v
	}
	return sum
}

// envoyStats returns the lines of Envoy's /stats whose names match the regular expression
// filter.
func envoyStats(t *testing.T, s *stack, filter string) string {
	t.Helper()
	return strings.TrimSpace(envoyAdmin(t, s, "/stats?filter="+url.QueryEscape(filter)))
}

// envoyAdmin returns the body of GET path on Envoy's admin API; a failure fails the test.
func envoyAdmin(t *testing.T, s *stack, path string) string {
	t.Helper()
	resp, err := http.Get(s.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s %v", s.admin, path, resp.Status, err)
	}
	return string(b)
}

// envoyCounter returns the value of one Envoy counter; 0 when Envoy has none by that name.
func envoyCounter(t *testing.T, s *stack, name string) int {
	t.Helper()
	v, _ := strings.CutPrefix(envoyStats(t, s, "^"+regexp.QuoteMeta(name)+"$"), name+": ")
	n, err := strconv.Atoi(v)
	if err != nil && v != "" {
		t.Fatalf("Envoy counter %s: %q", name, v)
	}
	return n
}

// awaitEnvoyCounter polls counter name until it reaches atLeast or 5 s pass, and answers its
// last value: the module hands Envoy its decision counts every half second.
func awaitEnvoyCounter(t *testing.T, s *stack, name string, atLeast int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := envoyCounter(t, s, name)
		if n >= atLeast || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// redact keeps credentials out of failure messages (testproc.Redact).
var redact = testproc.Redact

// clip is a response body fit for a failure message: credentials redacted, then cut short.
func clip(b []byte) string {
	s := testproc.Redact(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// stack is the whole demo on 127.0.0.1: demo-issuer, demo-upstream, jwt-authz and Envoy, run
// from envoy.yaml and jwt-authz.yaml rewritten for loopback (rewrite_test.go).
type stack struct {
	ports
	opts      stackOptions
	dir       string // config files, keys and certificates of this stack
	authzFile string // jwt-authz's config, as rewritten and edited
	base      string // Envoy's listener, http://127.0.0.1:port
	admin     string // Envoy's admin API

	issuer   string            // iss of the issuer's tokens (from jwt-authz.yaml)
	audience string            // the audience jwt-authz accepts
	key      *ecdsa.PrivateKey // the issuer's first signing key (given with -key-file)

	envoy, authz, issuerProc, upstream *testproc.Process
}

// stackOptions vary the demo for one test; the zero value runs it as shipped.
type stackOptions struct {
	rawHeaders  bool     // encode_raw_headers on the ext_authz filter (docs §1)
	module      bool     // the in-process module (module_test.go) where ext_authz was
	issuerAdmin bool     // demo-issuer serves POST /rotate on IssuerAdmin (see rotate)
	issuerArgs  []string // more demo-issuer flags, such as -ttl
	// editAuthz and editEnvoy change jwt-authz.yaml and envoy.yaml, parsed and rewritten for
	// loopback, before they are written: a test states its own settings next to its checks.
	editAuthz, editEnvoy func(t *testing.T, root map[string]any, p ports)
}

// startStack starts the demo and returns when Envoy is ready and reports the authz cluster
// healthy.
func startStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	envoyBinary(t) // skip before building anything when there is no Envoy
	for _, c := range commands {
		binary(t, c)
	}
	s := &stack{ports: freePorts(t), opts: opts, dir: t.TempDir()}
	s.authzFile = s.authzConfig(t, "jwt-authz.yaml", s.Authz, s.AuthzHTTP)
	c, err := config.Load(s.authzFile)
	if err != nil {
		t.Fatalf("the rewritten jwt-authz.yaml does not load: %v", err)
	}
	s.issuer, s.audience = c.Providers[0].Issuer, c.Providers[0].Audiences[0]

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
	keyFile := filepath.Join(s.dir, "issuer-key.pem")
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	args := []string{"-addr", local(s.Issuer), "-issuer", s.issuer, "-audience", s.audience,
		"-users", filepath.Join(repoRoot, "cmd", "demo-issuer", "users.yaml"),
		"-alg", "ES256", "-key-file", keyFile,
		// As the demo runs it: cookie sessions, and the page's second origin calling Envoy.
		"-cookie", "access_token", "-web-addr", local(s.Web), "-api-origin", "http://" + local(s.Listener)}
	if opts.issuerAdmin {
		args = append(args, "-admin-addr", local(s.IssuerAdmin))
	}
	s.issuerProc = start(t, "demo-issuer", binary(t, "demo-issuer"), append(args, opts.issuerArgs...)...)
	s.upstream = start(t, "demo-upstream", binary(t, "demo-upstream"), "-addr", local(s.Upstream))
	s.issuerProc.WaitFor(t, "GET /healthz", httpOK("http://"+local(s.Issuer)+"/healthz", ""))
	s.upstream.WaitFor(t, "GET /healthz", httpOK("http://"+local(s.Upstream)+"/healthz", ""))

	s.authz = s.startAuthz(t, "jwt-authz", s.authzFile, s.AuthzHTTP)
	s = s.frontedBy(t, "envoy", s.Listener, s.Admin, s.envoyConfig(t, s.Listener, s.Admin, opts.editEnvoy))
	s.waitHealthy(t, "authz", s.Authz)
	return s
}

// local is 127.0.0.1:port.
func local(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// authzConfig writes jwt-authz.yaml rewritten for loopback, listening on grpcPort and
// httpPort (the stack's ports, or a second replica's) and changed by opts.editAuthz, to
// name in the stack's folder, and returns its path.
func (s *stack) authzConfig(t *testing.T, name string, grpcPort, httpPort int) string {
	t.Helper()
	src, err := os.ReadFile("jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := s.ports
	p.Authz, p.AuthzHTTP = grpcPort, httpPort
	out, err := loopbackAuthzConfig(src, p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dir, name)
	writeFile(t, path, edited(t, out, p, s.opts.editAuthz))
	return path
}

// startAuthz runs jwt-authz with cfgFile and returns once its /readyz on httpPort answers
// 200: it has its keys.
func (s *stack) startAuthz(t *testing.T, name, cfgFile string, httpPort int) *testproc.Process {
	t.Helper()
	p := start(t, name, binary(t, "jwt-authz"), "-config", cfgFile)
	p.WaitFor(t, "GET /readyz", httpOK("http://"+local(httpPort)+"/readyz", ""))
	return p
}

// envoyConfig returns envoy.yaml rewritten for the stack, with Envoy's listener and admin
// API on listener and admin, then changed by edit (nil: none).
func (s *stack) envoyConfig(t *testing.T, listener, admin int, edit func(*testing.T, map[string]any, ports)) []byte {
	t.Helper()
	src, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := s.ports
	p.Listener, p.Admin = listener, admin
	out, err := loopbackEnvoyConfig(src, p, s.opts.rawHeaders)
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.module {
		out = edited(t, out, p, useModule(s.authzFile))
	}
	return edited(t, out, p, edit)
}

// frontedBy starts an Envoy from cfg, whose listener and admin API are on listener and
// admin, and returns the stack as seen through it once it is live. The stack's own Envoy
// is one; a test may put more in front of the same processes, configured otherwise.
func (s *stack) frontedBy(t *testing.T, name string, listener, admin int, cfg []byte) *stack {
	t.Helper()
	f := *s
	f.Listener, f.Admin = listener, admin
	f.base, f.admin = "http://"+local(listener), "http://"+local(admin)
	file := filepath.Join(s.dir, name+".yaml")
	writeFile(t, file, cfg)
	f.envoy = start(t, name, envoyBinary(t), "-c", file, "--disable-hot-restart",
		"--concurrency", "1", "--log-level", "warning",
		// Access log lines are read by the tests: flush them every 200ms, not every 10s.
		"--file-flush-interval-msec", "200")
	f.envoy.WaitFor(t, "admin /ready", httpOK(f.admin+"/ready", "LIVE"))
	return &f
}

// waitHealthy returns once Envoy's active health checks report cluster's endpoint
// 127.0.0.1:port healthy.
func (s *stack) waitHealthy(t *testing.T, cluster string, port int) {
	t.Helper()
	s.envoy.WaitFor(t, cluster+" endpoint "+local(port)+" healthy",
		httpOK(s.admin+"/clusters", cluster+"::"+local(port)+"::health_flags::healthy"))
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
	return s.envoy.Out.WaitLine(5*time.Second, func(l string) bool { return containsAll(l, parts) })
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
