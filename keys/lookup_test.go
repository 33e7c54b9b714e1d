package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

func TestLookupWithoutKID(t *testing.T) {
	ctx := context.Background()
	one, err := NewSet("https://issuer.test", []config.Key{{PEMFile: "rsa2048.pem", KID: "r"}}, testdata, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k, found, err := one.Lookup(ctx, ""); err != nil || !found || k.KeyID != "r" {
		t.Errorf(`one key: Lookup("") = %v, %v, %v; want key "r"`, k, found, err)
	}
	many, err := NewSet("https://issuer.test", []config.Key{{JWKSFile: "jwks.json"}}, testdata, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k, found, err := many.Lookup(ctx, ""); err != nil || found {
		t.Errorf(`four keys: Lookup("") = %v, %v, %v; want not found, no error`, k, found, err)
	}
	if k, found, err := many.Lookup(ctx, "nope"); err != nil || found {
		t.Errorf(`Lookup("nope") = %v, %v, %v; want not found, no error`, k, found, err)
	}
}

// The hot path: a known kid is a map read, with no lock and no allocation.
func TestLookupKnownKIDDoesNotAllocate(t *testing.T) {
	s, err := NewSet("https://issuer.test", []config.Key{{JWKSFile: "jwks.json"}}, testdata, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _, _ = s.Lookup(ctx, "ec-1") }); n != 0 {
		t.Errorf("Lookup(known kid) allocates %v times, want 0", n)
	}
}

func BenchmarkLookupKnownKID(b *testing.B) {
	s, err := NewSet("https://issuer.test", []config.Key{{JWKSFile: "jwks.json"}}, testdata, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _, _ = s.Lookup(ctx, "ec-1")
		}
	})
}

// A key published after the last fetch is accepted on its first token, at the cost of one
// fetch; a key withdrawn is no longer returned after the refresh that drops it.
func TestRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		k1 := ecJWK(t, "k1")
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1} })
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
		defer cancel()
		ctx := context.Background()

		if !s.Ready() {
			t.Fatal("Ready() = false after a good first fetch")
		}
		before := is.gets()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1, ecJWK(t, "k2")} })
		k, found, err := s.Lookup(ctx, "k2")
		if err != nil || !found || k.KeyID != "k2" {
			t.Fatalf(`Lookup("k2") after rotation = %v, %v, %v; want the new key`, k, found, err)
		}
		if n := is.gets() - before; n != 1 {
			t.Errorf("Lookup of a new kid cost %d fetches, want 1", n)
		}

		// k1 is withdrawn; the next scheduled refresh drops it.
		is.set(func(is *testIssuer) { is.keys = is.keys[1:] })
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		if k, found, err := s.Lookup(ctx, "k1"); err != nil || found {
			t.Errorf(`Lookup("k1") after withdrawal = %v, %v, %v; want not found, no error`, k, found, err)
		}
	})
}

// 1,000 random unknown kids within one second cost at most one fetch.
func TestUnknownKIDFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
		defer cancel()

		before := is.gets()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad []string
		for i := range 1000 {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * time.Millisecond) // spread over one second
				kid := randomKID()
				k, found, err := s.Lookup(context.Background(), kid)
				if found || err != nil {
					mu.Lock()
					bad = append(bad, kid)
					mu.Unlock()
					_ = k
				}
				if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
					mu.Lock()
					bad = append(bad, "k1")
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		n := is.gets() - before
		t.Logf("flood: 1000 unknown kids in 1s -> %d JWKS fetches", n)
		if n > 1 {
			t.Errorf("1000 unknown kids cost %d fetches, want at most 1", n)
		}
		if len(bad) > 0 {
			t.Errorf("%d lookups went wrong during the flood (first %q)", len(bad), bad[0])
		}

		// An unknown kid looked for by a refetch is remembered: asked again after the
		// cooldown, it costs no fetch.
		time.Sleep(config.DefaultUnknownKIDCooldown)
		kid := randomKID()
		_, _, _ = s.Lookup(context.Background(), kid)
		time.Sleep(config.DefaultUnknownKIDCooldown)
		before = is.gets()
		if _, found, err := s.Lookup(context.Background(), kid); found || err != nil {
			t.Errorf("Lookup(%q) again = %v, %v; want not found, no error", kid, found, err)
		}
		if n := is.gets() - before; n != 0 {
			t.Errorf("a kid known to be unknown cost %d fetches, want 0", n)
		}
	})
}

func randomKID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// One stale source does not take down the keys of a fresh one, but a kid it might hold is
// answered with ErrStale, not "unknown".
func TestOneSourceStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good, bad := &testIssuer{}, &testIssuer{}
		goodClient, stopGood := startPipeHost(good, "good.test")
		defer stopGood()
		badClient, stopBad := startPipeHost(bad, "bad.test")
		defer stopBad()
		good.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "kg")} })
		bad.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "kb")} })
		client := &http.Client{Transport: byHost{"good.test": goodClient, "bad.test": badClient}}
		badSpec := remoteSpec(bad.url + "/jwks")
		badSpec.MaxStale = config.Duration(time.Hour)
		s, cancel := startSet(t, good.url, []config.Key{remoteSpec(good.url + "/jwks"), badSpec}, client, nil)
		defer cancel()
		ctx := context.Background()
		bad.set(func(is *testIssuer) { is.status = http.StatusBadGateway })
		time.Sleep(2 * time.Hour)

		if _, found, err := s.Lookup(ctx, "kg"); !found || err != nil {
			t.Errorf("Lookup(kg) with the other source stale = %v, %v; want found", found, err)
		}
		for _, kid := range []string{"kb", "other", ""} {
			if _, found, err := s.Lookup(ctx, kid); found || !errors.Is(err, ErrStale) {
				t.Errorf("Lookup(%q) with a source stale = %v, %v; want %v", kid, found, err, ErrStale)
			}
		}
		if s.Ready() {
			t.Error("Ready() = true with a stale source")
		}
		st := s.Status()
		if st.Sources[0].Stale || !st.Sources[1].Stale || st.Keys != 2 {
			t.Errorf("Status() = %+v, want the second source stale, 2 keys held", st)
		}
	})
}

// Lookup waits for the refetch only as long as its context allows.
func TestLookupBoundedByContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
		defer cancel()
		is.set(func(is *testIssuer) { is.hang = true })
		ctx, cancelLookup := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancelLookup()
		if _, found, err := s.Lookup(ctx, "k2"); found || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Lookup(k2) with a hanging issuer = %v, %v; want %v", found, err, context.DeadlineExceeded)
		}
		synctest.Wait()
		if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
			t.Errorf("Lookup(k1) = %v, %v; want found", found, err)
		}
	})
}

// A kid that appears at one source is served without waiting for another, slower one.
func TestRefetchNotHeldBySlowSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := &testIssuer{}, &testIssuer{}
		fastClient, stopFast := startPipeHost(fast, "fast.test")
		defer stopFast()
		slowClient, stopSlow := startPipeHost(slow, "slow.test")
		defer stopSlow()
		fast.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "f1")} })
		slow.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "s1")} })
		client := &http.Client{Transport: byHost{"fast.test": fastClient, "slow.test": slowClient}}
		s, cancel := startSet(t, fast.url, []config.Key{remoteSpec(slow.url + "/jwks"), remoteSpec(fast.url + "/jwks")}, client, nil)
		defer cancel()

		slow.set(func(is *testIssuer) { is.hang = true })
		fast.set(func(is *testIssuer) { is.keys = append(is.keys, ecJWK(t, "f2")) })
		// Well under the slow source's 5s fetch timeout.
		ctx, cancelLookup := context.WithTimeout(context.Background(), time.Second)
		defer cancelLookup()
		if _, found, err := s.Lookup(ctx, "f2"); !found || err != nil {
			t.Errorf("Lookup(f2) while another source hangs = %v, %v; want found at once", found, err)
		}
	})
}
