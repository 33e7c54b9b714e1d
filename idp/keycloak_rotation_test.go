package idp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwt-authz/jwt-authz/idp"
)

// TestKeycloakRotation rotates a realm's RS256 key the way a Keycloak admin does, while
// traffic flows: a new key provider of higher priority signs every new token from the moment
// it is published, and not one of them may be refused; the old key, made passive, keeps
// verifying the tokens it signed while Keycloak still publishes it; disabled, it is refused.
func TestKeycloakRotation(t *testing.T) {
	kc := startedKeycloak(t)
	createRealm(t, kc, "rotation")
	a := startAuthz(t, keycloakConfig(kc, "rotation", `      - discovery: true
        refresh_interval: 2s       # Keycloak serves its JWKS with no-cache
        min_refresh_interval: 1s
        unknown_kid_cooldown: 1s
`))
	a.waitReady(t)

	oldKey := activeRS256(t, kc, "rotation")
	before, err := kc.ClientCredentials("rotation", "billing.example.com", "billing-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if kid := header(t, before.AccessToken)["kid"]; kid != oldKey.KID {
		t.Fatalf("token signed with kid %v, want the active RS256 key %s", kid, oldKey.KID)
	}
	if d := a.check(t, "/api/things", before.AccessToken); d.code != 0 {
		t.Fatalf("Check(token before rotation) = %v, want allowed", d)
	}

	traffic := startTraffic(t, kc, a)
	traffic.waitFor(t, oldKey.KID, 5)
	if _, err := kc.AddKeyProvider("rotation", "rsa-rotated", "rsa-generated", map[string]string{"priority": "200", "algorithm": "RS256"}); err != nil {
		t.Fatal(err)
	}
	newKey := activeRS256(t, kc, "rotation")
	if newKey.KID == oldKey.KID {
		t.Fatalf("the active RS256 key is still %s after adding a provider of higher priority", oldKey.KID)
	}
	traffic.waitFor(t, newKey.KID, 5)

	// Passive: published, no longer signing. Its tokens stay good.
	if err := kc.SetKeyProvider("rotation", oldKey.ProviderID, map[string]string{"active": "false"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // at least one scheduled refresh
	if d := a.check(t, "/api/things", before.AccessToken); d.code != 0 {
		t.Errorf("Check(token of the passive key %s) = %v, want allowed while Keycloak publishes it", oldKey.KID, d)
	}

	// Disabled: withdrawn from the JWKS. Its tokens are refused, cached or not.
	if err := kc.SetKeyProvider("rotation", oldKey.ProviderID, map[string]string{"enabled": "false"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := a.check(t, "/api/things", before.AccessToken)
		if d.code == 16 && d.http == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check(token of the disabled key %s) = %v 30s after disabling it, want 401", oldKey.KID, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	traffic.waitFor(t, newKey.KID, traffic.allowed(newKey.KID)+5) // new tokens still flow
	allowed, failures := traffic.stop()
	t.Logf("traffic: allowed by kid %v", allowed)
	for _, f := range failures {
		t.Error(f)
	}
}

// activeRS256 is the realm's RS256 signing key.
func activeRS256(t *testing.T, kc *idp.Keycloak, realm string) idp.RealmKey {
	t.Helper()
	keys, err := kc.Keys(realm)
	if err != nil {
		t.Fatal(err)
	}
	var best *idp.RealmKey
	for i, k := range keys {
		if k.Algorithm == "RS256" && k.Status == "ACTIVE" && k.Use == "SIG" && (best == nil || k.ProviderPrio > best.ProviderPrio) {
			best = &keys[i]
		}
	}
	if best == nil {
		t.Fatalf("realm %s has no active RS256 key: %+v", realm, keys)
	}
	return *best
}

// traffic is a client that takes a fresh client-credentials token from Keycloak and checks it
// with jwt-authz, over and over, until stopped (at most 2 minutes). Every token is freshly
// signed, so it carries whatever key Keycloak signs with at that moment.
type traffic struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	byKID    map[string]int
	failures []string
}

func startTraffic(t *testing.T, kc *idp.Keycloak, a *authz) *traffic {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tr := &traffic{cancel: cancel, done: make(chan struct{}), byKID: map[string]int{}}
	t.Cleanup(func() { tr.stop() })
	go func() {
		defer close(tr.done)
		for ctx.Err() == nil {
			tok, err := kc.ClientCredentials("rotation", "billing.example.com", "billing-secret", "")
			if err != nil {
				tr.fail("token: " + err.Error())
				continue
			}
			kid := kidOf(tok.AccessToken)
			resp, err := a.client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Path: "/api/things", Host: "api.example.com",
					Headers: map[string]string{"authorization": "Bearer " + tok.AccessToken},
				}},
			}})
			switch {
			case ctx.Err() != nil:
			case err != nil:
				tr.fail("Check: RPC error " + err.Error())
			case resp.GetStatus().GetCode() != 0:
				tr.fail("Check(fresh token, kid " + kid + ") denied: " + resp.GetStatus().GetMessage())
			default:
				tr.mu.Lock()
				tr.byKID[kid]++
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

func (tr *traffic) fail(msg string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) < 10 {
		tr.failures = append(tr.failures, msg)
	}
}

func (tr *traffic) allowed(kid string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.byKID[kid]
}

// waitFor waits until n tokens signed by kid have been allowed.
func (tr *traffic) waitFor(t *testing.T, kid string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for tr.allowed(kid) < n {
		select {
		case <-tr.done:
			t.Fatalf("traffic ended before %d tokens of kid %s were allowed", n, kid)
		default:
		}
		if time.Now().After(deadline) {
			tr.mu.Lock()
			got, failures := tr.byKID[kid], tr.failures
			tr.mu.Unlock()
			t.Fatalf("%d tokens of kid %s allowed after 60s, want %d; failures: %q", got, kid, n, failures)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the traffic and returns the allowed counts by kid and the failures seen.
func (tr *traffic) stop() (map[string]int, []string) {
	tr.cancel()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.byKID, tr.failures
}

func kidOf(tok string) string {
	var h struct{ Kid string }
	seg, _, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(seg)
	json.Unmarshal(raw, &h)
	return h.Kid
}
