package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// testIssuer is an identity provider whose JWKS and discovery answers the test controls.
type testIssuer struct {
	mu           sync.Mutex
	url          string
	keys         []jose.JSONWebKey
	status       int    // answer this instead of 200, when non-zero
	hang         bool   // hold JWKS requests until the client gives up
	body         []byte // serve this instead of the keys
	cacheControl string
	etags        bool   // send ETag, answer 304 to a matching If-None-Match
	issuer       string // the discovery document's "issuer"; default url
	jwksPath     string // where discovery points; default /jwks
	jwksGets     int
	notModified  int
	discoveries  int
	userAgent    string
}

func (is *testIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	is.userAgent = r.Header.Get("User-Agent")
	jwksPath := is.jwksPath
	if jwksPath == "" {
		jwksPath = "/jwks"
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discoveries++
		iss := is.issuer
		if iss == "" {
			iss = is.url
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": is.url + jwksPath})
		return
	case jwksPath, "/jwks":
	default:
		is.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	is.jwksGets++
	status, hang, cc, etags := is.status, is.hang, is.cacheControl, is.etags
	body := is.body
	if body == nil && r.URL.Path == jwksPath {
		body, _ = json.Marshal(jose.JSONWebKeySet{Keys: is.keys})
	} else if body == nil {
		body = []byte(`{"keys":[]}`) // the old location, once moved
	}
	tag := ""
	if etags {
		sum := sha256.Sum256(body)
		tag = `"` + hex.EncodeToString(sum[:8]) + `"`
		if r.Header.Get("If-None-Match") == tag {
			is.notModified++
		}
	}
	is.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if tag != "" {
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

func (is *testIssuer) set(f func(is *testIssuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

func (is *testIssuer) gets() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwksGets
}

// startPipeIssuer serves is over an in-memory network (net.Pipe), so a test can run in a
// synctest bubble: every wait on it is durably blocking and fake time moves only when all
// goroutines wait. The returned stop must run inside the bubble before it ends.
func startPipeIssuer(is *testIssuer) (client *http.Client, stop func()) {
	return startPipeHost(is, "issuer.test")
}

// startPipeHost is startPipeIssuer for an issuer at http://host.
func startPipeHost(is *testIssuer, host string) (client *http.Client, stop func()) {
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{}), host: host}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: is}}
	srv.Start()
	is.url = srv.URL
	tr := &http.Transport{DialContext: ln.dial}
	return &http.Client{Transport: tr}, func() {
		tr.CloseIdleConnections()
		srv.Close()
	}
}

type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	host  string
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.host) }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr string

func (pipeAddr) Network() string  { return "pipe" }
func (a pipeAddr) String() string { return string(a) }

// byHost sends each request to the client of its host.
type byHost map[string]*http.Client

func (b byHost) RoundTrip(r *http.Request) (*http.Response, error) {
	return b[r.URL.Host].Transport.RoundTrip(r)
}

// recorder keeps the FetchEvents a Set reports.
type recorder struct {
	mu  sync.Mutex
	evs []FetchEvent
}

func (r *recorder) on(ev FetchEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) events() []FetchEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

func (r *recorder) last() FetchEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.evs) == 0 {
		return FetchEvent{}
	}
	return r.evs[len(r.evs)-1]
}

// ecJWK is a fresh P-256 public key named kid.
func ecJWK(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// remoteSpec is a jwks_uri or discovery spec with config's defaults applied.
func remoteSpec(jwksURI string) config.Key {
	return config.Key{
		JWKSURI:            jwksURI,
		Discovery:          jwksURI == "",
		RefreshInterval:    config.Duration(config.DefaultRefreshInterval),
		MinRefreshInterval: config.Duration(config.DefaultMinRefresh),
		MaxRefreshInterval: config.Duration(config.DefaultMaxRefresh),
		MaxStale:           config.Duration(config.DefaultMaxStale),
		UnknownKIDCooldown: config.Duration(config.DefaultUnknownKIDCooldown),
		Timeout:            config.Duration(config.DefaultFetchTimeout),
	}
}

// startSet builds and starts a Set for issuer over client; the Set stops with the returned
// cancel.
func startSet(t *testing.T, issuer string, specs []config.Key, client *http.Client, rec *recorder) (*Set, context.CancelFunc) {
	t.Helper()
	opts := Options{HTTPClient: client}
	if rec != nil {
		opts.OnFetch = rec.on
	}
	s, err := NewSet(issuer, specs, nil, opts)
	if err != nil {
		t.Fatalf("NewSet(%q) = %v", issuer, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start() = %v", err)
	}
	return s, cancel
}

// kids lists the kids the Set holds, sorted.
func kids(s *Set) []string {
	var out []string
	for kid := range s.snap.Load().byKID {
		out = append(out, kid)
	}
	slices.Sort(out)
	return out
}

// writeAtomic replaces path the way deployment tools do: write a temporary file, rename it
// over.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
