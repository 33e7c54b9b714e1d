package envoy

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/internal/redistest"
)

// TestDPoPReplicas runs DPoP through a real Envoy in front of two jwt-authz replicas that
// share a nonce secret and a real redis-server as replay store: the first proof is answered
// use_dpop_nonce with a DPoP-Nonce, the proof with that nonce is allowed, and every replay
// of it is refused, including by the replica that never saw it (so the refusal came from
// the shared store, not from a replica's memory); the bound token as a bearer token is
// refused.
func TestDPoPReplicas(t *testing.T) {
	redis := redistest.Start(t)
	secretFile := filepath.Join(t.TempDir(), "dpop-nonce.key")
	writeFile(t, secretFile, []byte(strings.Repeat("k", 48)+"\n"))
	s := startStack(t, stackOptions{editAuthz: dpopSettings(secretFile, redis), editEnvoy: secondReplica})
	fileB := s.authzConfig(t, "jwt-authz-b.yaml", s.Authz2, s.AuthzHTTP2)
	s.startAuthz(t, "jwt-authz B", fileB, s.AuthzHTTP2)
	s.waitHealthy(t, "authz", s.Authz2)

	token, proof := dpopClient(t, s)
	dpop := func(p string) http.Header { return http.Header{"Authorization": {"DPoP " + token}, "Dpop": {p}} }
	reason := func(r reply) string {
		var b struct{ Reason string }
		json.Unmarshal(r.body, &b)
		return b.Reason
	}

	r := s.do(t, "GET", "/api/things", dpop(proof("")), "")
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 401 || reason(r) != "dpop_nonce_required" || nonce == "" ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `DPoP realm="demo", error="use_dpop_nonce"`) {
		t.Fatalf("GET /api/things, proof without nonce = %d %s, DPoP-Nonce %q, WWW-Authenticate %q; want 401 use_dpop_nonce with a nonce",
			r.status, clip(r.body), nonce, r.header.Get("WWW-Authenticate"))
	}
	p := proof(nonce)
	e := s.do(t, "GET", "/api/things", dpop(p), "").upstream(t, 200)
	if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("GET /api/things (DPoP): upstream saw x-jwt-sub %q, want [alice]", got)
	}
	for i := range 6 {
		if r := s.do(t, "GET", "/api/things", dpop(p), ""); r.status != 401 || reason(r) != "dpop_replay" {
			t.Errorf("replay %d of the proof = %d %s, want 401 dpop_replay", i+1, r.status, clip(r.body))
		}
	}
	// Each replica counts its own decisions: the one that did not allow the proof refused
	// at least one replay of it, which only the shared store could tell it was.
	count := func(port int, reason string) float64 {
		return metric(t, "http://"+local(port)+"/metrics", "jwt_authz_decisions_total", `reason="`+reason+`"`)
	}
	allowedA, allowedB := count(s.AuthzHTTP, "allowed"), count(s.AuthzHTTP2, "allowed")
	replayA, replayB := count(s.AuthzHTTP, "dpop_replay"), count(s.AuthzHTTP2, "dpop_replay")
	t.Logf("replica A: %v allowed, %v dpop_replay; replica B: %v allowed, %v dpop_replay", allowedA, replayA, allowedB, replayB)
	if allowedA+allowedB != 1 || (allowedA == 1 && replayB == 0) || (allowedB == 1 && replayA == 0) {
		t.Errorf("the replica that did not see the proof refused none of its replays (A: %v allowed %v replays, B: %v allowed %v replays)",
			allowedA, replayA, allowedB, replayB)
	}

	r = s.do(t, "GET", "/api/things", http.Header{"Authorization": {"Bearer " + token}}, "")
	if r.status != 401 || reason(r) != "dpop_bound_as_bearer" {
		t.Errorf("GET /api/things with the DPoP-bound token as Bearer = %d %s, want 401 dpop_bound_as_bearer", r.status, clip(r.body))
	}
}

// TestDPoPThroughModule: the in-process module enforces the config's dpop section as the
// server does: server nonces (a proof without one is answered use_dpop_nonce with a
// DPoP-Nonce) and the shared replay store (the allowed proof's jti is recorded in the real
// redis-server, and a replay of it is refused).
func TestDPoPThroughModule(t *testing.T) {
	redis := redistest.Start(t)
	secretFile := filepath.Join(t.TempDir(), "dpop-nonce.key")
	writeFile(t, secretFile, []byte(strings.Repeat("k", 48)+"\n"))
	s := startModuleStack(t, stackOptions{editAuthz: dpopSettings(secretFile, redis)})
	token, proof := dpopClient(t, s)
	dpop := func(p string) http.Header { return http.Header{"Authorization": {"DPoP " + token}, "Dpop": {p}} }

	r := s.do(t, "GET", "/api/things", dpop(proof("")), "")
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 401 || nonce == "" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("proof without nonce = %d %s, DPoP-Nonce %q, WWW-Authenticate %q; want 401 use_dpop_nonce with a nonce",
			r.status, clip(r.body), nonce, r.header.Get("WWW-Authenticate"))
	}
	if n := redisKeys(t, redis, "jwt-authz:dpop:*"); n != 0 {
		t.Fatalf("redis holds %d proof keys before any proof was allowed", n)
	}
	p := proof(nonce)
	s.do(t, "GET", "/api/things", dpop(p), "").upstream(t, 200)
	if n := redisKeys(t, redis, "jwt-authz:dpop:*"); n != 1 {
		t.Errorf("redis holds %d proof keys after one allowed proof, want 1 (the module must use the shared store)", n)
	}
	if r := s.do(t, "GET", "/api/things", dpop(p), ""); r.status != 401 || !strings.Contains(string(r.body), "dpop_replay") {
		t.Errorf("replay of the proof = %d %s, want 401 dpop_replay", r.status, clip(r.body))
	}
}

// dpopSettings turns on server nonces (secretFile) and the redis replay store at redis, and
// DPoP with ES256 for the demo's one provider.
func dpopSettings(secretFile, redis string) func(*testing.T, map[string]any, ports) {
	return func(t *testing.T, root map[string]any, _ ports) {
		root["dpop"] = map[string]any{
			"nonce":        map[string]any{"secret_file": secretFile, "lifetime": "5m"},
			"replay_store": map[string]any{"address": redis, "timeout": "1s"},
		}
		providers, err := list(root, "providers")
		if err != nil || len(providers) != 1 {
			t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
		}
		providers[0].(map[string]any)["dpop"] = map[string]any{"algorithms": []any{"ES256"}}
	}
}

// redisKeys counts redis's keys matching pattern (KEYS, in the RESP protocol).
func redisKeys(t *testing.T, addr, pattern string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "*2\r\n$4\r\nKEYS\r\n$%d\r\n%s\r\n", len(pattern), pattern)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "*") {
		t.Fatalf("redis KEYS %s: %q, %v", pattern, line, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		t.Fatalf("redis KEYS %s: %q", pattern, line)
	}
	return n
}

// dpopClient mints a token bound to a fresh ES256 key (cnf.jkt) and answers it with a
// function making that key's proofs for GET /api/things, with a nonce when given one.
func dpopClient(t *testing.T, s *stack) (token string, proof func(nonce string) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	claims := s.claims()
	claims["cnf"] = map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(sum)}
	token = mint(t, s.key, "", claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	ath := sha256.Sum256([]byte(token))
	return token, func(nonce string) string {
		c := map[string]any{"jti": rand.Text(), "htm": "GET", "htu": s.base + "/api/things", "iat": time.Now().Unix(),
			"ath": base64.RawURLEncoding.EncodeToString(ath[:])}
		if nonce != "" {
			c["nonce"] = nonce
		}
		b, _ := json.Marshal(c)
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}
