package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeIntrospection: the binary, from a config file with introspection and a secret
// file, answers opaque tokens over real gRPC from a real introspection endpoint, fails
// closed when the endpoint goes away, and logs neither the tokens nor the secret.
func TestServeIntrospection(t *testing.T) {
	const secret = "intro-secret-value-7f3a"
	const goodToken, inactiveToken, lateToken = "opaque-good-2b9c41d7", "opaque-inactive-51e0aa3c", "opaque-late-93d1c0b2"
	introspection := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, s, ok := r.BasicAuth(); !ok || id != "jwt-authz" || s != secret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") == goodToken {
			fmt.Fprintf(w, `{"active":true,"iss":"https://issuer.test","sub":"alice","aud":"api","exp":%d}`, time.Now().Add(time.Hour).Unix())
			return
		}
		fmt.Fprint(w, `{"active":false}`)
	}))
	defer introspection.Close()
	idp := newIdP(t)
	srv, _ := startIntrospecting(t, idp, introspection.URL, secret)
	authz := checkClient(t, srv.grpcAddr)

	if code := checkCode(t, authz, "/api/things", goodToken); code != 0 {
		t.Errorf("active opaque token: status %d, want 0", code)
	}
	if code := checkCode(t, authz, "/api/things", idp.sign(t, map[string]any{"sub": "bob"})); code != 0 {
		t.Errorf("a JWT of the same provider: status %d, want 0", code)
	}
	if code := checkCode(t, authz, "/api/things", inactiveToken); code != 16 {
		t.Errorf("inactive opaque token: status %d, want 16", code)
	}
	introspection.Close()
	if code := checkCode(t, authz, "/api/things", lateToken); code != 14 {
		t.Errorf("introspection endpoint down: status %d, want 14 (503)", code)
	}
	if code := checkCode(t, authz, "/api/things", goodToken); code != 0 {
		t.Errorf("active opaque token, cached while the endpoint is down: status %d, want 0", code)
	}
	metrics := get(t, srv.httpURL+"/metrics")
	for _, want := range []string{
		`reason="token_inactive"} 1`,
		`reason="introspection_unavailable"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var logs string
	// The decision lines reach the log after the answers: wait for the last one.
	waitUntil(10*time.Second, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		logs = strings.Join(srv.logs, "\n")
		return strings.Count(logs, `"msg":"decision"`) >= 5
	})
	for _, never := range []string{secret, goodToken, inactiveToken, lateToken} {
		if strings.Contains(logs, never) {
			t.Errorf("the log contains %q", never)
		}
	}
	if !strings.Contains(logs, "introspection_unavailable") {
		t.Errorf("the log does not record the 503's reason:\n%s", logs)
	}
}

// TestSecretFileRotation: rotating the introspection client's secret file (as a Kubernetes
// Secret is rotated, the config file untouched) reloads the config, as a change to the
// config file does: the endpoint refuses the old secret, and the server uses the new one
// within a poll or two.
func TestSecretFileRotation(t *testing.T) {
	const oldSecret, newSecret = "intro-secret-old-1c4e", "intro-secret-new-8a2d"
	var mu sync.Mutex
	accepted := oldSecret
	introspection := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		want := accepted
		mu.Unlock()
		if id, s, ok := r.BasicAuth(); !ok || id != "jwt-authz" || s != want {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"iss":"https://issuer.test","sub":"alice","aud":"api","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	defer introspection.Close()
	srv, secretFile := startIntrospecting(t, newIdP(t), introspection.URL, oldSecret)
	authz := checkClient(t, srv.grpcAddr)

	// Each check sends a token not seen before, so the answer is never the cache's.
	n := 0
	check := func() int32 {
		n++
		return checkCode(t, authz, "/api/things", fmt.Sprintf("opaque-%d-7d1f2a9c", n))
	}
	if code := check(); code != 0 {
		t.Fatalf("opaque token with the first secret: status %d, want 0", code)
	}
	mu.Lock()
	accepted = newSecret // the authorization server rotates the client's secret
	mu.Unlock()
	if code := check(); code != 14 {
		t.Errorf("opaque token after the endpoint's rotation, old secret on file: status %d, want 14 (503)", code)
	}
	writeFile(t, secretFile, newSecret+"\n")
	reloaded := waitUntil(10*time.Second, func() bool {
		return strings.Contains(get(t, srv.httpURL+"/metrics"), `jwt_authz_config_reloads_total{result="ok"} 1`)
	})
	if !reloaded {
		t.Fatalf("no reload within 10 s of the secret file's change; metrics:\n%s", get(t, srv.httpURL+"/metrics"))
	}
	if code := check(); code != 0 {
		t.Errorf("opaque token after the secret file's rotation: status %d, want 0", code)
	}
	var logs string
	said := waitUntil(5*time.Second, func() bool { // the log is written in batches
		srv.mu.Lock()
		defer srv.mu.Unlock()
		logs = strings.Join(srv.logs, "\n")
		return strings.Contains(logs, "secret file it names changed")
	})
	if !said {
		t.Errorf("the log does not say why it reloaded:\n%s", logs)
	}
	for _, never := range []string{oldSecret, newSecret} {
		if strings.Contains(logs, never) {
			t.Errorf("the log contains the secret %q", never)
		}
	}
}

// startIntrospecting runs the binary on validConfig for idp, whose provider also introspects
// opaque tokens at endpoint as client jwt-authz, with secret in client_secret_file; it
// answers the server and the secret file's path, once the server is ready.
func startIntrospecting(t *testing.T, idp *idp, endpoint, secret string) (*runningServer, string) {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "introspection.secret")
	writeFile(t, secretFile, secret+"\n")
	cfg := strings.Replace(validConfig(idp.srv.URL, "/api"), "    claims_to_headers: {sub: x-jwt-sub}\n",
		"    claims_to_headers: {sub: x-jwt-sub}\n    introspection:\n      endpoint: "+endpoint+
			"\n      client_id: jwt-authz\n      client_secret_file: introspection.secret\n      timeout: 1s\n", 1)
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, cfg)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)
	return srv, secretFile
}
