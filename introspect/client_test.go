package introspect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/config"
)

// endpoint is a real introspection endpoint on 127.0.0.1: answer(token) is the body it
// sends; calls counts the requests it served.
type endpoint struct {
	*httptest.Server
	calls atomic.Int64
}

func newEndpoint(t *testing.T, answer func(w http.ResponseWriter, token string)) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "pw" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		answer(w, r.PostFormValue("token"))
	}))
	t.Cleanup(e.Close)
	return e
}

func jsonAnswer(body string) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
}

func newClient(t *testing.T, url string, edit func(*config.Introspection)) *Client {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Introspection{Endpoint: url, ClientID: "rs", ClientSecretFile: "secret", Timeout: config.Duration(time.Second)}
	if edit != nil {
		edit(&c)
	}
	cl, err := New(c, "https://op.example", func(p string) string { return filepath.Join(dir, p) })
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestIntrospectAnswers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		answer  func(http.ResponseWriter, string)
		active  bool
		wantErr bool
	}{
		{"active", jsonAnswer(`{"active":true,"sub":"alice"}`), true, false},
		{"inactive", jsonAnswer(`{"active":false}`), false, false},
		{"string active", jsonAnswer(`{"active":"true"}`), false, true},
		{"number active", jsonAnswer(`{"active":1}`), false, true},
		{"no active", jsonAnswer(`{"sub":"alice"}`), false, true},
		{"null", jsonAnswer(`null`), false, true},
		{"trailing data", jsonAnswer(`{"active":true}{"active":false}`), false, true},
		{"oversized", jsonAnswer(`{"active":true,"pad":"` + strings.Repeat("x", 1<<20) + `"}`), false, true},
		{"not json type", func(w http.ResponseWriter, _ string) { fmt.Fprint(w, `{"active":true}`) }, false, true},
		{"status 500", func(w http.ResponseWriter, _ string) { http.Error(w, "x", 500) }, false, true},
		{"redirect", func(w http.ResponseWriter, _ string) {
			w.Header().Set("Location", "http://127.0.0.1:1/")
			w.WriteHeader(http.StatusFound)
		}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			c := newClient(t, e.URL, nil)
			active, answer, err := c.Introspect(ctx, "tok-"+tc.name)
			if (err != nil) != tc.wantErr || active != tc.active {
				t.Fatalf("got active=%v err=%v, want active=%v err=%v", active, err, tc.active, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrUnavailable) {
				t.Errorf("error %v is not ErrUnavailable", err)
			}
			if active && !strings.Contains(string(answer), `"alice"`) {
				t.Errorf("answer %s", answer)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error names the secret: %v", err)
			}
		})
	}
}

func TestIntrospectDown(t *testing.T) {
	e := newEndpoint(t, jsonAnswer(`{"active":true}`))
	c := newClient(t, e.URL, nil)
	e.Close()
	if _, _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("endpoint down: %v", err)
	}
}

// TestIntrospectSlow: an endpoint slower than the timeout is an error, not an answer.
func TestIntrospectSlow(t *testing.T) {
	release := make(chan struct{})
	e := newEndpoint(t, func(w http.ResponseWriter, _ string) {
		<-release
		jsonAnswer(`{"active":true}`)(w, "")
	})
	defer close(release)
	c := newClient(t, e.URL, func(c *config.Introspection) { c.Timeout = config.Duration(50 * time.Millisecond) })
	active, _, err := c.Introspect(context.Background(), "tok")
	if !errors.Is(err, ErrUnavailable) || active {
		t.Fatalf("slow endpoint: active=%v err=%v", active, err)
	}
}

// TestIntrospectSingleFlight: N concurrent checks of one token while the endpoint is
// answering make one call; errors are not cached.
func TestIntrospectSingleFlight(t *testing.T) {
	release := make(chan struct{})
	e := newEndpoint(t, func(w http.ResponseWriter, _ string) {
		<-release
		jsonAnswer(`{"active":true,"sub":"alice"}`)(w, "")
	})
	c := newClient(t, e.URL, nil)
	const n = 50
	var wg sync.WaitGroup
	var started sync.WaitGroup
	results := make(chan bool, n)
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			active, _, err := c.Introspect(context.Background(), "same-token")
			results <- active && err == nil
		})
	}
	started.Wait()
	for e.calls.Load() == 0 { // the first call is at the endpoint
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others reach the flight; late ones hit the cache
	close(release)
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Fatal("a concurrent check did not get the active answer")
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Fatalf("%d concurrent checks made %d calls, want 1", n, got)
	}
}

// TestIntrospectCache: answers are cached for cache_for but never past exp, inactive ones
// for inactive_cache_for; a different token is a different entry.
func TestIntrospectCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var body atomic.Value
	body.Store(fmt.Sprintf(`{"active":true,"exp":%d}`, now.Unix()+10))
	e := newEndpoint(t, func(w http.ResponseWriter, _ string) { jsonAnswer(body.Load().(string))(w, "") })
	c := newClient(t, e.URL, func(c *config.Introspection) {
		c.CacheFor = config.Duration(60 * time.Second)
		c.InactiveCacheFor = config.Duration(5 * time.Second)
	})
	c.now = func() time.Time { return now }
	ask := func(tok string, wantActive bool, wantCalls int64) {
		t.Helper()
		active, _, err := c.Introspect(context.Background(), tok)
		if err != nil || active != wantActive {
			t.Fatalf("%s: active=%v err=%v, want %v", tok, active, err, wantActive)
		}
		if got := e.calls.Load(); got != wantCalls {
			t.Fatalf("%s: %d calls, want %d", tok, got, wantCalls)
		}
	}
	ask("a", true, 1)
	now = now.Add(9 * time.Second)
	ask("a", true, 1) // cached
	ask("b", true, 2) // another token: its own entry
	now = now.Add(2 * time.Second)
	ask("a", true, 3) // past exp: asked again (the endpoint decides; here still active)

	body.Store(`{"active":false}`)
	ask("c", false, 4)
	now = now.Add(4 * time.Second)
	ask("c", false, 4) // inactive, cached
	now = now.Add(2 * time.Second)
	body.Store(fmt.Sprintf(`{"active":true,"exp":%d}`, now.Unix()+3600))
	ask("c", true, 5) // past inactive_cache_for
	now = now.Add(59 * time.Second)
	ask("c", true, 5) // cache_for (60s) wins over a far exp
	now = now.Add(2 * time.Second)
	ask("c", true, 6)
}

// TestNewSecretFile: a missing or empty secret file is a load error.
func TestNewSecretFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, path := range []string{filepath.Join(dir, "missing"), empty} {
		c := config.Introspection{Endpoint: "https://op.example/introspect", ClientID: "rs", ClientSecretFile: path}
		if _, err := New(c, "https://op.example", func(p string) string { return p }); err == nil {
			t.Errorf("%s: no error", path)
		}
	}
}

// TestIntrospectDiscovery: without an endpoint, the issuer's discovery document names it;
// a document for another issuer or a plain-http endpoint elsewhere is refused, and a
// failed discovery is retried by the next check.
func TestIntrospectDiscovery(t *testing.T) {
	var doc atomic.Value
	var introspections atomic.Int64
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, doc.Load().(string))
	})
	mux.HandleFunc("/introspect", func(w http.ResponseWriter, r *http.Request) {
		introspections.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "pw" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		jsonAnswer(`{"active":true}`)(w, "")
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte("pw"), 0o600)
	c, err := New(config.Introspection{ClientID: "rs", ClientSecretFile: "secret"}, srv.URL, func(p string) string { return filepath.Join(dir, p) })
	if err != nil {
		t.Fatal(err)
	}
	for i, bad := range []string{
		`{"issuer":"https://other.example","introspection_endpoint":"` + srv.URL + `/introspect"}`,
		`{"issuer":"` + srv.URL + `","introspection_endpoint":"http://op.example/introspect"}`,
		`{"issuer":"` + srv.URL + `"}`,
		`not json`,
	} {
		doc.Store(bad)
		if _, _, err := c.Introspect(context.Background(), fmt.Sprint("tok", i)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("discovery document %s: err = %v, want ErrUnavailable", bad, err)
		}
	}
	if n := introspections.Load(); n != 0 {
		t.Fatalf("%d introspection calls before a good discovery document", n)
	}
	doc.Store(`{"issuer":"` + srv.URL + `","introspection_endpoint":"` + srv.URL + `/introspect"}`)
	if active, _, err := c.Introspect(context.Background(), "tok"); err != nil || !active {
		t.Fatalf("after discovery: active=%v err=%v", active, err)
	}
}

// TestCached: Cached answers only what an earlier Introspect stored, and never calls the
// endpoint.
func TestCached(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, nil)
	if _, _, ok := c.Cached("tok"); ok || c.Calls() != 0 {
		t.Fatalf("Cached before any Introspect: ok %v, %d calls; want false, 0", ok, c.Calls())
	}
	if active, _, err := c.Introspect(context.Background(), "tok"); !active || err != nil {
		t.Fatalf("Introspect = %v, %v", active, err)
	}
	active, answer, ok := c.Cached("tok")
	if !ok || !active || !strings.Contains(string(answer), `"alice"`) || c.Calls() != 1 {
		t.Errorf("Cached after Introspect: ok %v, active %v, answer %s, %d calls; want the stored answer, 1 call", ok, active, answer, c.Calls())
	}
	if _, _, ok := c.Cached("another"); ok {
		t.Error("Cached answered for a token never introspected")
	}
}
