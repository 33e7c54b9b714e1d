package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

func TestCheckFlag(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		config    string
		wantErr   bool
		wantInErr string
	}{
		{name: "valid", config: validConfig("http://127.0.0.1:1/jwks", "/api")},
		{name: "unknown key", config: "grpc_address: 127.0.0.1:0\nbogus: 1\n", wantErr: true, wantInErr: `unknown key "bogus"`},
		{
			name: "relative jwks_uri", wantErr: true, wantInErr: "providers[0].keys[0].jwks_uri: must be an absolute http(s) URL",
			config: strings.Replace(validConfig("http://127.0.0.1:1/jwks", "/api"), "http://127.0.0.1:1/jwks", "/jwks", 1),
		},
		{
			name: "alg none", wantErr: true, wantInErr: `providers[0].algorithms[0]: unsupported algorithm "none"`,
			config: strings.Replace(validConfig("http://127.0.0.1:1/jwks", "/api"), "[ES256]", "[none]", 1),
		},
		{
			name: "integer duration", wantErr: true, wantInErr: "want a duration string",
			config: strings.Replace(validConfig("http://127.0.0.1:1/jwks", "/api"), "refresh_interval: 1s", "refresh_interval: 5", 1),
		},
		{
			name: "claim path that can never match", wantErr: true, wantInErr: `providers[0].claims_to_headers.resource_access.billing\.example\.com.roles: `,
			config: strings.Replace(validConfig("http://127.0.0.1:1/jwks", "/api"), "{sub: x-jwt-sub}", `{'resource_access.billing\.example\.com.roles': x-jwt-roles}`, 1),
		},
		{
			name: "JSON Pointer claim path", config: strings.Replace(validConfig("http://127.0.0.1:1/jwks", "/api"), "{sub: x-jwt-sub}", `{'/resource_access/billing.example.com/roles': x-jwt-roles}`, 1),
		},
		{name: "missing file", config: "", wantErr: true, wantInErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if tt.config != "" {
				writeFile(t, path, tt.config)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"-config", path, "-check"}, &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run(-check %s) = %v (stderr %q), want error %v", tt.name, err, stderr.String(), tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(stderr.String(), tt.wantInErr) {
				t.Errorf("run(-check %s) stderr = %q, want it to contain %q", tt.name, stderr.String(), tt.wantInErr)
			}
			if !tt.wantErr && !strings.Contains(stdout.String(), "ok") {
				t.Errorf("run(-check) stdout = %q, want ok", stdout.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "jwt-authz ") || !strings.Contains(stdout.String(), "go1.") {
		t.Errorf("-version printed %q", stdout.String())
	}
}

// TestServe runs the real server: readiness, Check over gRPC, metrics, hot reload (a good
// file changes behaviour, a broken one is refused) and graceful shutdown.
func TestServe(t *testing.T) {
	idp := newIdP(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, validConfig(idp.srv.URL, "/api"))

	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, svc := range []string{"", authzService} {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health(%q) = %v, %v; want SERVING", svc, resp, err)
		}
	}
	checkReflection(t, conn)
	authz := authv3.NewAuthorizationClient(conn)
	token := idp.sign(t, map[string]any{"sub": "alice"})
	if code := checkCode(t, authz, "/api/things", token); code != 0 {
		t.Fatalf("Check(/api/things, valid token) status = %d, want 0", code)
	}
	if code := checkCode(t, authz, "/api/things", token); code != 0 { // second one is a cache hit
		t.Fatalf("Check(/api/things, valid token again) status = %d, want 0", code)
	}
	if code := checkCode(t, authz, "/api/things", ""); code != 16 {
		t.Fatalf("Check(/api/things, no token) status = %d, want 16", code)
	}

	metrics := get(t, srv.httpURL+"/metrics")
	for _, want := range []string{
		`jwt_authz_decisions_total{decision="allow",front="grpc",provider="demo",reason="allowed"} 2`,
		`jwt_authz_decisions_total{decision="deny",front="grpc",provider="",reason="missing_token"} 1`,
		`jwt_authz_token_cache_lookups_total{result="hit"} 1`,
		`jwt_authz_token_cache_lookups_total{result="miss"} 1`,
		`jwt_authz_keys{provider="demo"} 1`,
		`jwt_authz_keys_ready{provider="demo"} 1`,
		`jwt_authz_key_fetches_total{provider="demo",result="ok"}`,
		`jwt_authz_build_info{`,
		`jwt_authz_check_duration_seconds_count 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A broken file is refused and the old rules keep serving.
	writeFile(t, cfgPath, "grpc_address: [broken\n")
	srv.waitLog(t, "config reload refused")
	if code := checkCode(t, authz, "/api/things", token); code != 0 {
		t.Fatalf("after a broken reload, Check(/api/things) status = %d, want 0 (old config)", code)
	}
	// A good file changes behaviour: /api is now public-only under /other.
	writeFile(t, cfgPath, validConfig(idp.srv.URL, "/other"))
	srv.waitLog(t, "config reloaded")
	if code := checkCode(t, authz, "/api/things", token); code != 7 {
		t.Fatalf("after reload, Check(/api/things) status = %d, want 7 (no rule)", code)
	}
	metrics = get(t, srv.httpURL+"/metrics")
	for _, want := range []string{`jwt_authz_config_reloads_total{result="error"} 1`, `jwt_authz_config_reloads_total{result="ok"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// SIGTERM: not ready at once, still answering during shutdown_delay, then exit 0.
	srv.cancel()
	deadline := time.Now().Add(5 * time.Second)
	for httpStatus(srv.httpURL+"/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not turn 503 after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health during drain = %v, %v; want NOT_SERVING", resp, err)
	}
	if code := checkCode(t, authz, "/other/x", token); code != 0 {
		t.Errorf("Check during drain status = %d, want 0: calls must still be answered", code)
	}
	if err := srv.wait(); err != nil {
		t.Fatalf("run returned %v after shutdown, want nil", err)
	}
}

// TestNotReadyWithoutKeys: an unreachable JWKS keeps the server NOT_SERVING and tokens get
// 503, never an allow.
func TestNotReadyWithoutKeys(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, validConfig(url+"/jwks", "/api"))
	srv := startServer(t, cfgPath)
	if got := httpStatus(srv.httpURL + "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503 without keys", got)
	}
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v; want NOT_SERVING", resp, err)
	}
	idp := newIdP(t)
	if code := checkCode(t, authv3.NewAuthorizationClient(conn), "/api/x", idp.sign(t, map[string]any{"sub": "a"})); code != 14 {
		t.Errorf("Check without keys status = %d, want 14 (503)", code)
	}
	srv.cancel()
	if err := srv.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestUnixSocket(t *testing.T) {
	idp := newIdP(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "authz.sock")
	cfg := strings.Replace(validConfig(idp.srv.URL, "/api"), "grpc_address: 127.0.0.1:0", "grpc_address: unix://"+sock, 1)
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, cfg)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := checkCode(t, authv3.NewAuthorizationClient(conn), "/api/x", idp.sign(t, map[string]any{"sub": "a"})); code != 0 {
		t.Errorf("Check over unix socket status = %d, want 0", code)
	}
	srv.cancel()
	if err := srv.wait(); err != nil {
		t.Fatal(err)
	}
}

// --- helpers ---

func validConfig(jwksURL, prefix string) string {
	if !strings.HasSuffix(jwksURL, "/jwks") {
		jwksURL += "/jwks"
	}
	return fmt.Sprintf(`grpc_address: 127.0.0.1:0
http_address: 127.0.0.1:0
shutdown_delay: 300ms
providers:
  - name: demo
    issuer: https://issuer.test
    audiences: [api]
    algorithms: [ES256]
    keys:
      - jwks_uri: %s
        refresh_interval: 1s
    claims_to_headers: {sub: x-jwt-sub}
rules:
  - name: api
    match: {path_prefix: %s}
    require: {}
`, jwksURL, prefix)
}

type idp struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	body, _ := json.Marshal(set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return &idp{srv: srv, key: k}
}

func (i *idp) sign(t *testing.T, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: "https://issuer.test", Audience: jwt.Audience{"api"},
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
	}).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkClient is a Check client of the server at addr (plaintext gRPC), closed with the test.
func checkClient(t *testing.T, addr string) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func checkCode(t *testing.T, c authv3.AuthorizationClient, path, token string) int32 {
	t.Helper()
	headers := map[string]string{":path": path, ":method": "GET", ":authority": "api.test"}
	if token != "" {
		headers["authorization"] = "Bearer " + token
	}
	resp, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: path, Host: "api.test", Headers: headers,
		}},
	}})
	if err != nil {
		t.Fatalf("Check(%s) RPC error %v: a decision must never be an RPC error", path, err)
	}
	return resp.GetStatus().GetCode()
}

type runningServer struct {
	grpcAddr, httpURL string
	authzURL          string // the HTTP decision face, when http_authz_address is set
	cancel            context.CancelFunc
	done              chan error

	mu   sync.Mutex
	logs []string
}

// startServer runs `run` with the config and reads the bound addresses from the log.
func startServer(t *testing.T, cfgPath string) *runningServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &runningServer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, []string{"-config", cfgPath}, io.Discard, pw)
		pw.Close()
		s.done <- err
	}()
	addrs := make(chan [3]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			var rec struct {
				Msg          string `json:"msg"`
				GRPCAddress  string `json:"grpc_address"`
				HTTPAddress  string `json:"http_address"`
				AuthzAddress string `json:"http_authz_address"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				addrs <- [3]string{rec.GRPCAddress, rec.HTTPAddress, rec.AuthzAddress}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", strings.Join(s.logs, "\n"))
			s.mu.Unlock()
		}
	})
	select {
	case a := <-addrs:
		s.grpcAddr, s.httpURL, s.authzURL = a[0], "http://"+a[1], "http://"+a[2]
	case err := <-s.done:
		t.Fatalf("run exited before serving: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("server did not start")
	}
	return s
}

func (s *runningServer) wait() error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(15 * time.Second):
		return errors.New("server did not stop")
	}
}

// waitLog waits until a log line with msg appears.
func (s *runningServer) waitLog(t *testing.T, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, l := range s.logs {
			if strings.Contains(l, `"msg":"`+msg) {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line %q within 10s", msg)
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for httpStatus(base+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("server not ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://idp.example/jwks.json", "https://idp.example/jwks.json"},
		{"https://user:s3cret@idp.example/jwks.json", "https://user:xxxxx@idp.example/jwks.json"},
		{"/etc/jwt-authz/keys/jwks.json", "/etc/jwt-authz/keys/jwks.json"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// checkReflection: server reflection (on by default) lists the Check service and describes
// it, although Check is registered on the wire path rather than by generated code.
func checkReflection(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var names []string
	for _, s := range ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, authzService) || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v, want %s and grpc.health.v1.Health", names, authzService)
	}
	files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: authzService}}).GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(files) == 0 {
		t.Fatalf("reflection has no descriptor for %s", authzService)
	}
}
