package keys

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// Issue 18, point 1: the issuer starts signing with a new key while its JWKS endpoint fails;
// the unknown-kid refetch fails; the endpoint recovers. The new key must work on the first
// request after the cooldown, not wait for the scheduled refresh (minutes away), and a kid
// that a complete refetch did not find is still remembered as unknown.
func TestFailedRefetchDoesNotLockOutNewKey(t *testing.T) {
	for _, fail := range []struct {
		name string
		set  func(is *testIssuer)
	}{
		{"500", func(is *testIssuer) { is.status = http.StatusInternalServerError }},
		{"hang", func(is *testIssuer) { is.hang = true }},
		{"bad json", func(is *testIssuer) { is.body = []byte(`{"keys":`) }},
	} {
		t.Run(fail.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				is := &testIssuer{}
				client, stop := startPipeIssuer(is)
				defer stop()
				k1, k2 := ecJWK(t, "k1"), ecJWK(t, "k2")
				is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1} })
				s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
				defer cancel()
				ctx := context.Background()

				is.set(fail.set)
				before := is.gets()
				if _, found, err := s.Lookup(ctx, "k2"); found || err != nil {
					t.Fatalf("Lookup(k2) while the issuer fails = %v, %v; want not found, no error (k1 still fresh)", found, err)
				}
				if n := is.gets() - before; n != 1 {
					t.Fatalf("the unknown kid caused %d fetches, want 1", n)
				}

				is.set(func(is *testIssuer) {
					is.status, is.hang, is.body = 0, false, nil
					is.keys = []jose.JSONWebKey{k1, k2}
				})
				// Past the cooldown (and a hanging fetch's timeout), far before the next
				// scheduled refresh (refresh_interval 5m).
				time.Sleep(config.DefaultUnknownKIDCooldown + config.DefaultFetchTimeout)
				before = is.gets()
				if k, found, err := s.Lookup(ctx, "k2"); !found || err != nil || k.KeyID != "k2" {
					t.Fatalf("Lookup(k2) after the issuer recovered = %v, %v, %v; want the new key", k, found, err)
				}
				if n := is.gets() - before; n != 1 {
					t.Errorf("the new key cost %d fetches after recovery, want 1", n)
				}

				// A refetch that did answer still feeds the negative cache.
				time.Sleep(config.DefaultUnknownKIDCooldown)
				if _, found, err := s.Lookup(ctx, "k3"); found || err != nil {
					t.Fatalf("Lookup(k3) = %v, %v; want not found, no error", found, err)
				}
				time.Sleep(config.DefaultUnknownKIDCooldown)
				before = is.gets()
				if _, found, err := s.Lookup(ctx, "k3"); found || err != nil {
					t.Fatalf("Lookup(k3) again = %v, %v; want not found, no error", found, err)
				}
				if n := is.gets() - before; n != 0 {
					t.Errorf("a kid a complete refetch did not find cost %d more fetches, want 0", n)
				}
			})
		})
	}
}

// With two sources, a refetch in which one answered and the other failed is not complete:
// the failing one may be where the new kid lives.
func TestPartlyFailedRefetchDoesNotLockOutNewKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good, bad := &testIssuer{}, &testIssuer{}
		goodClient, stopGood := startPipeHost(good, "good.test")
		defer stopGood()
		badClient, stopBad := startPipeHost(bad, "bad.test")
		defer stopBad()
		good.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "kg")} })
		bad.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "kb")} })
		client := &http.Client{Transport: byHost{"good.test": goodClient, "bad.test": badClient}}
		s, cancel := startSet(t, good.url, []config.Key{remoteSpec(good.url + "/jwks"), remoteSpec(bad.url + "/jwks")}, client, nil)
		defer cancel()
		ctx := context.Background()

		bad.set(func(is *testIssuer) { is.status = http.StatusServiceUnavailable })
		if _, found, err := s.Lookup(ctx, "kb2"); found || err != nil {
			t.Fatalf("Lookup(kb2) while one source fails = %v, %v; want not found, no error", found, err)
		}
		bad.set(func(is *testIssuer) {
			is.status = 0
			is.keys = append(is.keys, ecJWK(t, "kb2"))
		})
		time.Sleep(config.DefaultUnknownKIDCooldown)
		if _, found, err := s.Lookup(ctx, "kb2"); !found || err != nil {
			t.Errorf("Lookup(kb2) after the source recovered = %v, %v; want found", found, err)
		}
	})
}
