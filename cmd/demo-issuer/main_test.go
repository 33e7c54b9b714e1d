package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

// logSink collects run's JSON log and reports the "listening" lines, which carry the
// addresses that ":0" was bound to.
type logSink struct {
	mu        sync.Mutex
	all       bytes.Buffer
	partial   []byte
	listening chan listenLine
}

type listenLine struct {
	Msg      string `json:"msg"`
	Listener string `json:"listener"`
	Addr     string `json:"addr"`
}

func newLogSink() *logSink { return &logSink{listening: make(chan listenLine, 8)} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte("\n"))
		if !ok {
			break
		}
		l.partial = rest
		var ll listenLine
		if json.Unmarshal(line, &ll) == nil && ll.Msg == "listening" {
			l.listening <- ll
		}
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// testIssuer is a demo-issuer started through run on 127.0.0.1:0.
type testIssuer struct {
	public string // base URL of the public listener
	admin  string // base URL of the admin listener, if any
	web    string // base URL of the web listener (-web-addr), if any
	logs   *logSink

	mu      sync.Mutex
	secrets []string // passwords sent and tokens received: none may appear in the log
}

const testIssuerURL = "http://demo-issuer.test:8080"

// startIssuer runs demo-issuer with the test users, a test issuer and audience, and extra.
// It stops it at the end of the test and then checks that the log holds no secret.
func startIssuer(t *testing.T, extra ...string) *testIssuer {
	t.Helper()
	args := append([]string{
		"-addr", "127.0.0.1:0",
		"-issuer", testIssuerURL,
		"-audience", "demo-api",
		"-users", "testdata/users.yaml",
	}, extra...)
	wantListeners := 1
	for _, flag := range []string{"-admin-addr", "-web-addr"} {
		if slices.Contains(args, flag) {
			wantListeners++
		}
	}

	ti := &testIssuer{logs: newLogSink()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, ti.logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run(%q) = %v after cancel, want nil", args, err)
		}
		logs := ti.logs.String()
		for _, s := range ti.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("log contains a password or token (%.12s...):\n%s", s, logs)
			}
		}
	})

	timeout := time.After(20 * time.Second) // RSA key generation is slow under -race
	for range wantListeners {
		select {
		case ll := <-ti.logs.listening:
			switch ll.Listener {
			case "public":
				ti.public = "http://" + ll.Addr
			case "admin":
				ti.admin = "http://" + ll.Addr
			case "web":
				ti.web = "http://" + ll.Addr
			}
		case err := <-done:
			done <- err
			t.Fatalf("run(%q) = %v before listening", args, err)
		case <-timeout:
			t.Fatalf("run(%q): no listening line after 20s; log:\n%s", args, ti.logs)
		}
	}
	return ti
}

// response is what a test looks at in an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{res.StatusCode, res.Header, b}
}

// login posts a username and password and returns the response; on 200, the token too.
func (ti *testIssuer) login(t *testing.T, username, password string, header ...string) (response, string) {
	t.Helper()
	body, _ := json.Marshal(loginRequest{Username: username, Password: password})
	res := do(t, http.MethodPost, ti.public+"/login", "application/json", string(body), header...)
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.secrets = append(ti.secrets, password)
	if res.status != http.StatusOK {
		return res, ""
	}
	var tr tokenResponse
	if err := json.Unmarshal(res.body, &tr); err != nil {
		t.Fatalf("login(%s): body %s: %v", username, res.body, err)
	}
	ti.secrets = append(ti.secrets, tr.AccessToken)
	return res, tr.AccessToken
}

func (ti *testIssuer) mustLogin(t *testing.T, username, password string) string {
	t.Helper()
	res, token := ti.login(t, username, password)
	if res.status != http.StatusOK {
		t.Fatalf("login(%s) = %d %s, want 200", username, res.status, res.body)
	}
	return token
}

func (ti *testIssuer) jwks(t *testing.T) jose.JSONWebKeySet {
	t.Helper()
	res := do(t, http.MethodGet, ti.public+"/.well-known/jwks.json", "", "")
	if res.status != http.StatusOK {
		t.Fatalf("GET jwks.json = %d, want 200", res.status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(res.body, &set); err != nil {
		t.Fatalf("jwks.json %s: %v", res.body, err)
	}
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// tokenClaims is every claim demo-issuer puts in a token.
type tokenClaims struct {
	jwt.Claims
	Scope string   `json:"scope,omitempty"`
	Roles []string `json:"roles"`
}

var errUnknownKID = errors.New("kid not in the JWKS")

// verify checks token against the served JWKS the way a verifier would, allowing only alg,
// and returns its kid and claims. It does not validate times: callers compare them.
func (ti *testIssuer) verify(t *testing.T, token string, alg jose.SignatureAlgorithm) (string, tokenClaims, error) {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return "", tokenClaims{}, err
	}
	h := tok.Headers[0]
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "JWT" {
		t.Errorf("token header typ = %v, want JWT", typ)
	}
	set := ti.jwks(t)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return h.KeyID, tokenClaims{}, errUnknownKID
	}
	var c tokenClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return h.KeyID, c, err
	}
	return h.KeyID, c, nil
}

func TestRunFlagErrors(t *testing.T) {
	base := []string{"-addr", "127.0.0.1:0", "-issuer", testIssuerURL, "-audience", "a", "-users", "testdata/users.yaml"}
	with := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"no issuer", []string{"-audience", "a", "-users", "testdata/users.yaml"}, "-issuer is required"},
		{"no audience", []string{"-issuer", testIssuerURL, "-users", "testdata/users.yaml"}, "-audience is required"},
		{"no users", []string{"-issuer", testIssuerURL, "-audience", "a"}, "-users is required"},
		{"unknown flag", with("-nope"), "not defined"},
		{"extra argument", with("stray"), "unexpected argument"},
		{"bad alg", with("-alg", "HS256"), "want ES256 or RS256"},
		{"ttl too short", with("-ttl", "500ms"), "-ttl"},
		{"relative issuer", with("-issuer", "demo-issuer"), "-issuer"},
		{"issuer with query", with("-issuer", "https://x/?a=b"), "-issuer"},
		{"rotate within publish delay", with("-rotate-every", "1m", "-publish-delay", "1m"), "-rotate-every"},
		{"negative publish delay", with("-publish-delay", "-1s"), "-publish-delay"},
		{"bad proxies", with("-trusted-proxies", "10.0.0.0/33"), "-trusted-proxies"},
		{"missing users file", with("-users", "testdata/nope.yaml"), "nope.yaml"},
		{"missing key file", with("-key-file", "testdata/nope.pem"), "nope.pem"},
		{"bad admin address", with("-admin-addr", "256.0.0.1:1"), "admin listener"},
		{"web without api origin", with("-web-addr", "127.0.0.1:0"), "-api-origin"},
		{"api origin without web", with("-api-origin", "http://127.0.0.1:8000"), "-web-addr"},
		{"api origin with a path", with("-web-addr", "127.0.0.1:0", "-api-origin", "http://127.0.0.1:8000/api"), "-api-origin"},
		{"bad cookie name", with("-cookie", "a;b"), "-cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), tt.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	ti := startIssuer(t, "-admin-addr", "127.0.0.1:0")
	for _, base := range []string{ti.public, ti.admin} {
		if res := do(t, http.MethodGet, base+"/healthz", "", ""); res.status != http.StatusOK {
			t.Errorf("GET %s/healthz = %d, want 200", base, res.status)
		}
	}
	// The admin endpoint must not be reachable on the public listener.
	if res := do(t, http.MethodPost, ti.public+"/rotate", "", ""); res.status != http.StatusNotFound {
		t.Errorf("POST public /rotate = %d, want 404", res.status)
	}
}

func TestDiscovery(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			ti := startIssuer(t, "-alg", alg)
			res := do(t, http.MethodGet, ti.public+"/.well-known/openid-configuration", "", "")
			if res.status != http.StatusOK {
				t.Fatalf("GET openid-configuration = %d, want 200", res.status)
			}
			var got map[string]any
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"issuer":                                testIssuerURL,
				"jwks_uri":                              testIssuerURL + "/.well-known/jwks.json",
				"token_endpoint":                        testIssuerURL + "/login",
				"id_token_signing_alg_values_supported": []any{alg},
				"response_types_supported":              []any{"token"},
				"subject_types_supported":               []any{"public"},
				"claims_supported":                      []any{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "roles"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("openid-configuration (-want +got):\n%s", diff)
			}
		})
	}
}
