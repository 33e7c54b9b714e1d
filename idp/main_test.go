package idp_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jwt-authz/jwt-authz/idp"
	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// The providers and the jwt-authz binary, each started or built once per test binary, on
// first use, and stopped by TestMain.
var (
	keycloakOnce sync.Once
	keycloak     *idp.Keycloak
	keycloakErr  error

	oidcOnce     sync.Once
	oidcProvider *idp.OIDCProvider
	oidcErr      error

	hydraOnce sync.Once
	hydra     *idp.Hydra
	hydraErr  error

	buildOnce sync.Once
	authzBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jwt-authz-idp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	authzBin = filepath.Join(dir, "jwt-authz")
	code := m.Run()
	if keycloak != nil {
		keycloak.Stop()
	}
	if oidcProvider != nil {
		oidcProvider.Stop()
	}
	if hydra != nil {
		hydra.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// startedKeycloak is the package's Keycloak, started by the first test that needs it.
func startedKeycloak(t *testing.T) *idp.Keycloak {
	t.Helper()
	keycloakOnce.Do(func() {
		start := time.Now()
		keycloak, keycloakErr = idp.StartKeycloak()
		if keycloakErr == nil {
			t.Logf("Keycloak %s started at %s in %s", keycloak.Version, keycloak.URL, time.Since(start).Round(time.Second))
		}
	})
	idp.Need(t, keycloakErr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- keycloak (last output) ---\n%s", keycloak.Log())
		}
	})
	return keycloak
}

// startedOIDCProvider is the package's oidc-provider, started by the first test that needs it.
func startedOIDCProvider(t *testing.T) *idp.OIDCProvider {
	t.Helper()
	oidcOnce.Do(func() {
		oidcProvider, oidcErr = idp.StartOIDCProvider()
		if oidcErr == nil {
			t.Logf("oidc-provider %s started at %s", oidcProvider.Version, oidcProvider.URL)
		}
	})
	idp.Need(t, oidcErr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- oidc-provider (last output) ---\n%s", oidcProvider.Log())
		}
	})
	return oidcProvider
}

// startedHydra is the package's Ory Hydra, started by the first test that needs it.
func startedHydra(t *testing.T) *idp.Hydra {
	t.Helper()
	hydraOnce.Do(func() {
		hydra, hydraErr = idp.StartHydra()
		if hydraErr == nil {
			t.Logf("Ory Hydra %s started at %s", hydra.Version, hydra.URL)
		}
	})
	idp.Need(t, hydraErr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hydra (last output) ---\n%s", hydra.Log())
		}
	})
	return hydra
}

// authz is a jwt-authz server run from its binary with a test's config.
type authz struct {
	client  authv3.AuthorizationClient
	httpURL string
	proc    *testproc.Process // its output is proc.Out
}

// startAuthz writes config (its grpc_address and http_address are added here) and runs
// jwt-authz on it until the test ends. It waits for /healthz, not /readyz: some tests are
// about readiness.
func startAuthz(t *testing.T, config string) *authz {
	t.Helper()
	buildOnce.Do(func() {
		args := []string{"build", "-buildvcs=false", "-o", authzBin}
		if raceEnabled { // the race detector watches the server under real traffic too
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "../cmd/jwt-authz")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/jwt-authz: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	grpcPort, httpPort := testproc.Port(t), testproc.Port(t)
	file := filepath.Join(t.TempDir(), "jwt-authz.yaml")
	text := fmt.Sprintf("grpc_address: 127.0.0.1:%d\nhttp_address: 127.0.0.1:%d\n%s", grpcPort, httpPort, config)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := testproc.Start("jwt-authz", exec.Command(authzBin, "-config", file))
	if err != nil {
		t.Fatal(err)
	}
	a := &authz{httpURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), proc: p}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- jwt-authz ---\n%s", testproc.Redact(p.Out.String()))
		}
	})
	p.WaitFor(t, "serving /healthz", a.answers200("/healthz"))
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a.client = authv3.NewAuthorizationClient(conn)
	return a
}

// waitReady waits for /readyz to answer 200: every provider's keys loaded.
func (a *authz) waitReady(t *testing.T) {
	t.Helper()
	a.proc.WaitFor(t, "/readyz 200", a.answers200("/readyz"))
}

// answers200 is a readiness probe: GET path answers 200.
func (a *authz) answers200(path string) func() error {
	return func() error {
		if code := httpStatus(a.httpURL + path); code != http.StatusOK {
			return fmt.Errorf("GET %s: %d", path, code)
		}
		return nil
	}
}

// decision is what jwt-authz answered a Check.
type decision struct {
	code      int32             // the CheckResponse status: 0 allowed, 16 unauthenticated, 7 denied
	http      int               // the denied response's HTTP status; 200 when allowed
	headers   map[string]string // headers to set upstream (allowed) or on the denial
	challenge string            // WWW-Authenticate of a denial
	reason    string            // a denial's reason word (the CheckResponse status message)
}

func (d decision) String() string {
	return fmt.Sprintf("status %d %s, HTTP %d, challenge %q", d.code, d.reason, d.http, d.challenge)
}

// denied reports whether d is a denial with HTTP status and reason.
func (d decision) denied(status int, reason string) bool {
	return d.code != 0 && d.http == status && d.reason == reason
}

// check asks jwt-authz about GET path with token as a bearer credential.
func (a *authz) check(t *testing.T, path, token string) decision {
	t.Helper()
	r := request{path: path}
	if token != "" {
		r.headers = map[string]string{"authorization": "Bearer " + token}
	}
	return a.ask(t, r)
}

// request is a request for ask: GET unless method is set, to api.example.com.
type request struct {
	method, path string
	headers      map[string]string // besides the pseudo-headers
	peerCert     string            // the client certificate Envoy saw, URL-encoded PEM
}

// ask asks jwt-authz about r, as Envoy's ext_authz filter would.
func (a *authz) ask(t *testing.T, r request) decision {
	t.Helper()
	if r.method == "" {
		r.method = "GET"
	}
	headers := map[string]string{":path": r.path, ":method": r.method, ":authority": "api.example.com"}
	for k, v := range r.headers {
		headers[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := a.client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Certificate: r.peerCert},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.method, Path: r.path, Host: "api.example.com", Headers: headers,
		}},
	}})
	if err != nil {
		t.Fatalf("Check(%s %s): RPC error %v", r.method, r.path, err)
	}
	d := decision{code: resp.GetStatus().GetCode(), http: http.StatusOK, headers: map[string]string{}}
	if ok := resp.GetOkResponse(); ok != nil {
		for _, h := range ok.GetHeaders() {
			d.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	if den := resp.GetDeniedResponse(); den != nil {
		d.http = int(den.GetStatus().GetCode())
		for _, h := range den.GetHeaders() {
			d.headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		d.challenge = d.headers["www-authenticate"]
		d.reason = resp.GetStatus().GetMessage()
	}
	return d
}

// metric is the sum of the samples of name whose labels contain every one of labels
// (`result="ok"`) on jwt-authz's /metrics.
func (a *authz) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(a.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var sum float64
lines:
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		sum += v
	}
	return sum
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
