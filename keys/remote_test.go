package keys

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

// The issuer fails (500, or hangs): known keys keep working until max_stale, fetches back
// off, then Lookup fails closed and Ready is false; recovery drops withdrawn keys.
func TestOutage(t *testing.T) {
	const maxStale = time.Hour
	for _, mode := range []string{"500", "hang"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				is := &testIssuer{}
				client, stop := startPipeIssuer(is)
				defer stop()
				k1, k2 := ecJWK(t, "k1"), ecJWK(t, "k2")
				is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1, k2} })
				spec := remoteSpec(is.url + "/jwks")
				spec.MaxStale = config.Duration(maxStale)
				rec := &recorder{}
				s, cancel := startSet(t, is.url, []config.Key{spec}, client, rec)
				defer cancel()
				ctx := context.Background()
				good := time.Now()

				is.set(func(is *testIssuer) {
					is.status = http.StatusInternalServerError
					is.hang = mode == "hang"
				})
				before := is.gets()
				for time.Since(good) < maxStale-time.Minute {
					time.Sleep(time.Minute)
					if k, found, err := s.Lookup(ctx, "k1"); err != nil || !found {
						t.Fatalf("%v into the outage: Lookup(k1) = %v, %v, %v; want the last good key", time.Since(good), k, found, err)
					}
				}
				n := is.gets() - before
				t.Logf("outage (%s): %d fetches in %v of simulated time (refresh_interval %v, backoff from %v)",
					mode, n, time.Since(good).Round(time.Minute), config.DefaultRefreshInterval, firstBackoff)
				// 1s, 2s, ... 256s then one per interval: about 20; retrying every second
				// would be 3,540, waiting the whole interval 11.
				if n < 12 || n > 40 {
					t.Errorf("%d fetches during the outage, want backoff (12..40)", n)
				}
				if ev := rec.last(); ev.Result != ResultError || !errors.Is(ev.Err, ErrFetch) {
					t.Errorf("last event = %+v, want a fetch error", ev)
				}

				time.Sleep(2 * time.Minute) // past max_stale
				if _, found, err := s.Lookup(ctx, "k1"); found || !errors.Is(err, ErrStale) {
					t.Errorf("past max_stale: Lookup(k1) = %v, %v; want %v", found, err, ErrStale)
				}
				if s.Ready() {
					t.Error("past max_stale: Ready() = true")
				}
				if st := s.Status(); !st.Sources[0].Stale || st.Ready {
					t.Errorf("past max_stale: Status() = %+v, want stale and not ready", st)
				}

				// Recovery, with k1 withdrawn and k3 added while the issuer was down.
				is.set(func(is *testIssuer) {
					is.status, is.hang = 0, false
					is.keys = []jose.JSONWebKey{k2, ecJWK(t, "k3")}
				})
				// The longest backoff, after a hanging fetch's timeout.
				time.Sleep(config.DefaultRefreshInterval + config.DefaultFetchTimeout + time.Second)
				if !s.Ready() {
					t.Fatal("after recovery: Ready() = false")
				}
				if diff := cmp.Diff([]string{"k2", "k3"}, kids(s)); diff != "" {
					t.Errorf("after recovery, kids (-want +got):\n%s", diff)
				}
				if _, found, err := s.Lookup(ctx, "k1"); found || err != nil {
					t.Errorf("after recovery: Lookup(k1) = %v, %v; want not found, no error", found, err)
				}
			})
		})
	}
}

// A first fetch that fails leaves the Set unready; Lookup fails closed; it comes up by
// itself when the issuer does.
func TestFirstFetchFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{status: http.StatusServiceUnavailable}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
		defer cancel()
		if s.Ready() {
			t.Error("Ready() = true with no keys")
		}
		if _, found, err := s.Lookup(context.Background(), "k1"); found || !errors.Is(err, ErrNoKeys) {
			t.Errorf("Lookup(k1) before any key = %v, %v; want %v", found, err, ErrNoKeys)
		}
		is.set(func(is *testIssuer) { is.status = 0 })
		time.Sleep(10 * time.Second)
		if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
			t.Errorf("Lookup(k1) after the issuer came up = %v, %v; want found", found, err)
		}
	})
}

// Cache-Control max-age replaces refresh_interval, within [min, max] refresh interval.
func TestCacheControl(t *testing.T) {
	const (
		period   = 2 * time.Hour
		interval = 5 * time.Minute
	)
	tests := []struct {
		cacheControl string
		want         time.Duration // the interval it should produce
	}{
		{"", interval},
		{"public, max-age=600", 10 * time.Minute},
		{"max-age=5", time.Minute},          // clamped up to min_refresh_interval
		{"max-age=86400", 30 * time.Minute}, // clamped to max_refresh_interval
		{"no-store", time.Minute},           // as short as allowed
		{"max-age=nonsense", interval},      // ignored
		{`max-age="120", must-revalidate`, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.cacheControl, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				is := &testIssuer{cacheControl: tt.cacheControl}
				client, stop := startPipeIssuer(is)
				defer stop()
				is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
				spec := remoteSpec(is.url + "/jwks")
				spec.MaxRefreshInterval = config.Duration(30 * time.Minute)
				s, cancel := startSet(t, is.url, []config.Key{spec}, client, nil)
				defer cancel()
				_ = s
				before := is.gets()
				time.Sleep(period)
				n := is.gets() - before
				// Each interval is 90-100% of the wanted one (jitter).
				lo, hi := int(period/tt.want)-1, int(period/(tt.want*9/10))+1
				if n < lo || n > hi {
					t.Errorf("Cache-Control %q: %d fetches in %v, want %d..%d (every %v)", tt.cacheControl, n, period, lo, hi, tt.want)
				}
			})
		})
	}
}

// ETag -> If-None-Match -> 304 keeps the keys (same pointers) and counts as a good fetch.
func TestETag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{etags: true}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
		spec := remoteSpec(is.url + "/jwks")
		spec.MaxStale = config.Duration(time.Hour)
		rec := &recorder{}
		s, cancel := startSet(t, is.url, []config.Key{spec}, client, rec)
		defer cancel()
		ctx := context.Background()
		first, _, _ := s.Lookup(ctx, "k1")

		time.Sleep(3 * time.Hour) // many refreshes, each answered 304, well past max_stale
		is.mu.Lock()
		n := is.notModified
		is.mu.Unlock()
		if n < 30 {
			t.Errorf("%d answers were 304, want one per refresh (30+)", n)
		}
		k, found, err := s.Lookup(ctx, "k1")
		if !found || err != nil || k != first {
			t.Errorf("after 304s: Lookup(k1) = %p, %v, %v; want the same key %p", k, found, err, first)
		}
		if !s.Ready() {
			t.Error("after 304s: Ready() = false; a 304 is a good fetch")
		}
		if ev := rec.last(); ev.Result != ResultNotModified || ev.Keys != 1 {
			t.Errorf("last event = %+v, want not_modified with 1 key", ev)
		}
	})
}

// Keys whose material did not change keep their pointer across refreshes; a changed key
// gets a new one.
func TestPointerStability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		k1, k2 := ecJWK(t, "k1"), ecJWK(t, "k2")
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1, k2} })
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, nil)
		defer cancel()
		ctx := context.Background()
		a1, _, _ := s.Lookup(ctx, "k1")
		a2, _, _ := s.Lookup(ctx, "k2")

		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{k1, ecJWK(t, "k2")} }) // k2 replaced
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		b1, _, _ := s.Lookup(ctx, "k1")
		b2, _, _ := s.Lookup(ctx, "k2")
		if a1 != b1 {
			t.Error("unchanged key k1 got a new pointer after a refresh")
		}
		if a2 == b2 {
			t.Error("replaced key k2 kept its old pointer")
		}
	})
}

// One weak or duplicate key in a fetched set is skipped, not the set; a set with nothing
// usable is a failed fetch that keeps the last good keys.
func TestRemoteBadKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		weak := mustKeys(t, "jwks-weak.json")[1]
		k1, dup := ecJWK(t, "k1"), ecJWK(t, "dup")
		is.set(func(is *testIssuer) { is.body = mustJSON(t, map[string]any{"keys": []any{k1, weak, dup, dup}}) })
		rec := &recorder{}
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, rec)
		defer cancel()
		if diff := cmp.Diff([]string{"k1"}, kids(s)); diff != "" {
			t.Errorf("kids (-want +got):\n%s", diff)
		}
		ev := rec.last()
		if ev.Result != ResultOK || len(ev.Skipped) != 2 || !errors.Is(ev.Skipped[0], ErrWeakKey) || !errors.Is(ev.Skipped[1], ErrDuplicateKID) {
			t.Errorf("event = %+v, want ok with a weak and a duplicate key skipped", ev)
		}

		is.set(func(is *testIssuer) { is.body = mustJSON(t, map[string]any{"keys": []any{weak}}) })
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		if ev := rec.last(); ev.Result != ResultError || !errors.Is(ev.Err, ErrNoKeys) {
			t.Errorf("event = %+v, want an error: nothing usable", ev)
		}
		if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
			t.Errorf("Lookup(k1) after an unusable set = %v, %v; want the last good key", found, err)
		}
	})
}

// A kid served by a JWKS URL and by a file of the same provider with different keys: the
// kid is refused (which one does the issuer sign with?), reported, and the rest serve.
func TestRemoteConflictsWithFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "rsa-1"), ecJWK(t, "k2")} })
		rec := &recorder{}
		s, err := NewSet(is.url, []config.Key{{JWKSFile: testdata("jwks.json")}, remoteSpec(is.url + "/jwks")}, nil, Options{HTTPClient: client, OnFetch: rec.on})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if k, found, err := s.Lookup(ctx, "rsa-1"); found || err != nil {
			t.Errorf("Lookup(rsa-1) = %v, %v, %v; want not found: two sources disagree on it", k, found, err)
		}
		for _, kid := range []string{"k2", "ec-1"} {
			if _, found, err := s.Lookup(ctx, kid); !found || err != nil {
				t.Errorf("Lookup(%s) = %v, %v; want the key", kid, found, err)
			}
		}
		if ev := rec.last(); len(ev.Skipped) != 1 || !errors.Is(ev.Skipped[0], ErrDuplicateKID) {
			t.Errorf("event = %+v, want the rsa-1 conflict reported", ev)
		}
		if !s.Ready() {
			t.Error("Ready() = false")
		}
	})
}

// discovery: true and the same IdP's jwks_uri serve the same keys. They agree, so both
// sources load, the provider is ready, and an unknown kid is a 401 (found false, no error),
// not a 503.
func TestRemoteSourcesAgree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		is := &testIssuer{}
		client, stop := startPipeIssuer(is)
		defer stop()
		is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1"), ecJWK(t, "k2")} })
		rec := &recorder{}
		s, cancel := startSet(t, is.url, []config.Key{remoteSpec(""), remoteSpec(is.url + "/jwks")}, client, rec)
		defer cancel()
		if !s.Ready() {
			t.Fatalf("Ready() = false with two agreeing sources: %+v", s.Status())
		}
		ctx := context.Background()
		for _, kid := range []string{"k1", "k2"} {
			if _, found, err := s.Lookup(ctx, kid); !found || err != nil {
				t.Errorf("Lookup(%s) = %v, %v; want the key", kid, found, err)
			}
		}
		if _, found, err := s.Lookup(ctx, "unknown"); found || err != nil {
			t.Errorf("Lookup(unknown) = %v, %v; want not found and no error (401, not 503)", found, err)
		}
		for _, src := range s.Status().Sources {
			if src.Keys != 2 || src.LastErr != nil {
				t.Errorf("source %s %s: %d keys, err %v; want 2 keys, no error", src.Kind, src.Source, src.Keys, src.LastErr)
			}
		}
		if ev := rec.last(); len(ev.Skipped) != 0 {
			t.Errorf("event = %+v, want nothing skipped: the sources agree", ev)
		}

		// One key published by both sources is one key: a token without kid may use it.
		is.set(func(is *testIssuer) { is.keys = is.keys[:1] })
		time.Sleep(config.DefaultRefreshInterval + time.Second)
		if k, found, err := s.Lookup(ctx, ""); !found || err != nil || k.KeyID != "k1" {
			t.Errorf(`Lookup("") with k1 in both sources = %v, %v, %v; want k1`, k, found, err)
		}
	})
}

func TestResponseTooLarge(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			is := &testIssuer{}
			client, stop := startPipeIssuer(is)
			defer stop()
			k1 := mustJSON(t, ecJWK(t, "k1"))
			body := `{"keys":[` + string(k1) + `],"padding":"` + strings.Repeat("x", 1<<20) + `"}`
			is.set(func(is *testIssuer) { is.body = []byte(body) })
			if chunked {
				// Without Content-Length the limit is found while reading.
				client.Transport = stripContentLength{client.Transport}
			}
			rec := &recorder{}
			s, cancel := startSet(t, is.url, []config.Key{remoteSpec(is.url + "/jwks")}, client, rec)
			defer cancel()
			if ev := rec.last(); ev.Result != ResultError || !errors.Is(ev.Err, ErrFetch) || !strings.Contains(ev.Err.Error(), "limit") {
				t.Errorf("chunked=%v: event = %+v, want a fetch error over the size limit", chunked, ev)
			}
			if s.Ready() {
				t.Errorf("chunked=%v: Ready() = true after an oversized JWKS", chunked)
			}
		})
	}
}

type stripContentLength struct{ http.RoundTripper }

func (s stripContentLength) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.ContentLength = -1
	}
	return resp, err
}

// The default client, over a real TLS listener: ca_file, User-Agent.
func TestDefaultClientTLS(t *testing.T) {
	is := &testIssuer{}
	srv := httptest.NewTLSServer(is)
	defer srv.Close()
	is.url = srv.URL
	is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pemCert(srv.Certificate().Raw), 0o600); err != nil {
		t.Fatal(err)
	}

	noCA := remoteSpec(srv.URL + "/jwks")
	s, cancel := startSet(t, srv.URL, []config.Key{noCA}, nil, nil)
	cancel()
	if s.Ready() {
		t.Error("Ready() = true with an untrusted certificate")
	}

	spec := remoteSpec(srv.URL + "/jwks")
	spec.CAFile = ca
	s, cancel = startSet(t, srv.URL, []config.Key{spec}, nil, nil)
	defer cancel()
	if _, found, err := s.Lookup(context.Background(), "k1"); !found || err != nil {
		t.Fatalf("Lookup(k1) over TLS with ca_file = %v, %v", found, err)
	}
	is.mu.Lock()
	ua := is.userAgent
	is.mu.Unlock()
	if ua != "jwt-authz" {
		t.Errorf("User-Agent = %q, want jwt-authz", ua)
	}
}
