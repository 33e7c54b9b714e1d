package envoy

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeyRotation rotates demo-issuer's signing key (POST /rotate on its admin listener)
// while traffic flows through Envoy, and checks what the README promises of rotation:
// jwt-authz learns a new key from the first token that carries it (one refetch for an
// unknown kid, shared by every request that meets it), keeps accepting the old key while
// the issuer still publishes it, and refuses a key once the issuer has withdrawn it, even
// for a token it had verified and cached before.
func TestKeyRotation(t *testing.T) {
	t.Run("under load", rotationUnderLoad)
	t.Run("withdrawn key", withdrawnKey)
}

// rotationUnderLoad: publish-delay 0, so the issuer signs with a new key the moment it
// publishes it, and jwt-authz's scheduled refresh is minutes away: only the unknown-kid
// refetch can make the new tokens work, and not one of them may be refused.
func rotationUnderLoad(t *testing.T) {
	const rotations = 2
	s := startStack(t, stackOptions{
		issuerAdmin: true,
		// Every client logs in every second: no login rate limits.
		issuerArgs: []string{"-publish-delay", "0", "-user-limit", "0", "-ip-limit", "0"},
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			src := jwksSource(t, root)
			// No scheduled refresh during the test, whatever the JWKS's max-age (60s) says.
			src["refresh_interval"], src["min_refresh_interval"] = "5m", "5m"
			// The rotations are seconds apart; the default cooldown (10s) would hold back
			// the second one's refetch, by design, and leave its tokens unknown for a while.
			src["unknown_kid_cooldown"] = "1s"
		},
	})
	metrics := "http://" + local(s.AuthzHTTP) + "/metrics"
	fetchesBefore := metric(t, metrics, "jwt_authz_key_fetches_total")
	okBefore := metric(t, metrics, "jwt_authz_key_fetches_total", `result="ok"`)
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	first := s.kid(t)
	before := s.login(t, "alice", "alice-password") // a token from before any rotation
	s.do(t, "GET", "/api/things", bearer(before), "").upstream(t, 200)

	l := s.startLoad(t, 3, time.Second)
	l.waitUntil(t, "requests allowed with the first key", func(c loadCounts) bool { return c.ByKID[first] >= 5 })
	kids := []string{first}
	for i := range rotations {
		time.Sleep(2 * time.Second) // traffic on the current key before the next rotation
		rot := s.rotate(t)
		if rot.PreviousKID != kids[i] {
			t.Fatalf("rotation %d replaced kid %q, want %q", i+1, rot.PreviousKID, kids[i])
		}
		kids = append(kids, rot.KID)
		l.waitUntil(t, "requests allowed with the new key "+rot.KID, func(c loadCounts) bool { return c.ByKID[rot.KID] >= 5 })
		s.do(t, "GET", "/api/things", bearer(before), "").upstream(t, 200)
	}
	time.Sleep(2 * time.Second) // and on the last key
	c := l.stop()
	l.check(t)
	t.Logf("%d requests, %d allowed, %d failed; %d logins; allowed by kid: %v", c.Requests, c.Allowed, c.Failed, c.Logins, c.ByKID)

	// Tokens minted before the rotations are still valid and their key still published.
	e := s.do(t, "GET", "/api/things", bearer(before), "").upstream(t, 200)
	if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("GET /api/things (alice, token from before the rotations): upstream saw x-jwt-sub %q, want [alice]", got)
	}
	for _, kid := range kids {
		if c.ByKID[kid] == 0 {
			t.Errorf("no request was allowed with kid %s (kids in order: %v)", kid, kids)
		}
	}
	published := s.jwks(t)
	for _, kid := range kids {
		if !slices.ContainsFunc(published, func(k publishedKey) bool { return k.Kid == kid }) {
			t.Errorf("the issuer no longer publishes kid %s, within its -ttl (15m)", kid)
		}
	}

	// Each new kid cost one fetch, however many requests carried it at once.
	fetches := metric(t, metrics, "jwt_authz_key_fetches_total") - fetchesBefore
	ok := metric(t, metrics, "jwt_authz_key_fetches_total", `result="ok"`) - okBefore
	t.Logf("jwt-authz key fetches: %v before the load (result ok: %v), %v during it (result ok: %v)", fetchesBefore, okBefore, fetches, ok)
	if okBefore < 1 || ok < 1 {
		t.Errorf("jwt_authz_key_fetches_total{result=ok}: %v at start, %v more after %d rotations; want the initial fetch and more", okBefore, ok, rotations)
	}
	if fetches > rotations {
		t.Errorf("jwt_authz_key_fetches_total: %v fetches during %d rotations, want at most one per rotation (single flight)", fetches, rotations)
	}
}

// withdrawnKey: with -ttl 3s the issuer withdraws its first key 3s after it stops signing;
// jwt-authz refreshes every second here, and from its first refresh without the key on, a
// token signed with it gets 401: one it had verified and cached while the key was live,
// and one signed afterwards.
func withdrawnKey(t *testing.T) {
	s := startStack(t, stackOptions{
		issuerAdmin: true,
		issuerArgs:  []string{"-publish-delay", "0", "-ttl", "3s"},
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			src := jwksSource(t, root)
			// Every second, whatever the JWKS's max-age (60s) says.
			src["refresh_interval"], src["min_refresh_interval"], src["max_refresh_interval"] = "1s", "1s", "1s"
		},
	})
	metrics := "http://" + local(s.AuthzHTTP) + "/metrics"
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	old := s.kid(t)
	cached := mint(t, s.key, old, s.claims()) // valid for 5 minutes: only the key can fail it
	for range 3 {
		s.do(t, "GET", "/api/things", bearer(cached), "").upstream(t, 200)
	}
	if hits := metric(t, metrics, "jwt_authz_token_cache_lookups_total", `result="hit"`); hits < 2 {
		t.Fatalf("jwt_authz_token_cache_lookups_total{result=hit} = %v after 3 calls with one token, want it cached", hits)
	}

	rot := s.rotate(t)
	if rot.PreviousKID != old {
		t.Fatalf("the rotation replaced kid %q, want %q", rot.PreviousKID, old)
	}
	s.issuerProc.WaitFor(t, "kid "+old+" withdrawn", func() error {
		if slices.ContainsFunc(s.jwks(t), func(k publishedKey) bool { return k.Kid == old }) {
			return errors.New("still published")
		}
		return nil
	})
	// jwt-authz's next refresh drops the key; until then the token still passes.
	s.authz.WaitFor(t, "the cached token refused", func() error {
		r := s.do(t, "GET", "/api/things", bearer(cached), "")
		switch {
		case r.status == 401:
			return nil
		case r.status == 200 && r.isEcho():
			return errors.New("still allowed")
		}
		t.Fatalf("GET /api/things (token of the withdrawn key) = %d %s, want 200 until jwt-authz refreshes, then 401", r.status, clip(r.body))
		return nil
	})
	for range 3 {
		s.do(t, "GET", "/api/things", bearer(cached), "").challenge(t, 401, "invalid_token")
	}
	s.do(t, "GET", "/api/things", bearer(mint(t, s.key, old, s.claims())), "").challenge(t, 401, "invalid_token")
	if l, err := s.accessLog("GET /api/things 401", "flags=UAEX"); err == nil {
		t.Log(l)
	}

	// The new key works: the issuer signs with it.
	tok := s.login(t, "alice", "alice-password")
	if kidOf(tok) != rot.KID {
		t.Errorf("a login after the rotation got kid %q, want %q", kidOf(tok), rot.KID)
	}
	s.do(t, "GET", "/api/things", bearer(tok), "").upstream(t, 200)
	t.Logf("jwt-authz key fetches: %v ok, %v not modified", metric(t, metrics, "jwt_authz_key_fetches_total", `result="ok"`),
		metric(t, metrics, "jwt_authz_key_fetches_total", `result="not_modified"`))
}

// rotation is demo-issuer's answer to POST /rotate.
type rotation struct {
	KID         string `json:"kid"`
	PreviousKID string `json:"previous_kid"`
}

// rotate asks the issuer (started with issuerAdmin) for a new signing key.
func (s *stack) rotate(t *testing.T) rotation {
	t.Helper()
	resp, err := http.Post("http://"+local(s.IssuerAdmin)+"/rotate", "application/json", strings.NewReader(""))
	if err != nil {
		t.Fatalf("POST /rotate: %v", err)
	}
	defer resp.Body.Close()
	var rot rotation
	if err := json.NewDecoder(resp.Body).Decode(&rot); err != nil || resp.StatusCode != 200 || rot.KID == "" {
		t.Fatalf("POST /rotate = %s (%v), want 200 and the new kid", resp.Status, err)
	}
	t.Logf("POST /rotate: kid %s signs now, replacing %s", rot.KID, rot.PreviousKID)
	return rot
}
