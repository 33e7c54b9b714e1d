// Package keys holds the verification keys of each provider: loaded from JWKS, PEM and HMAC
// secret files, fetched from JWKS URLs and OpenID Connect discovery, and kept fresh under
// rotation.
//
// What it does that Envoy jwt_authn, Istio and go-oidc do not all do (docs/landscape.md §4):
// a kid it has never seen triggers one shared refetch (single flight, with a cooldown and a
// negative cache, so a flood of random kids costs one fetch); a failed fetch keeps the last
// good keys for max_stale and retries with jittered exponential backoff instead of waiting a
// whole interval or serving nothing; Cache-Control max-age and ETag are honoured; one bad key
// in a fetched set is skipped, not the whole set; one failing source does not stop the
// others; files are watched and swapped atomically; and when it cannot vouch for a key it
// says so with an error (fail closed, 503) rather than answering "unknown kid" (401).
//
// The package never logs. Every fetch and reload is reported to Options.OnFetch, and Ready
// and Status expose its health.
package keys

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/jwt-authz/jwt-authz/config"
)

// Negative-cache bounds: kids come from tokens, so an attacker chooses them. Past the cap a
// kid is simply not remembered; the cooldown still bounds the fetches it can cause.
const (
	maxUnknownKIDs   = 4096
	maxUnknownKIDLen = 256
)

// Options are the optional collaborators of a Set.
type Options struct {
	// HTTPClient fetches remote documents. Nil builds one per source from its spec:
	// timeout, ca_file roots, proxy from the environment, no https->http redirects.
	// Each fetch is bounded by the source's timeout whichever client is used.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnFetch hears about every remote fetch and file reload, from several goroutines at
	// once; it must not block for long. Nil ignores them.
	OnFetch func(FetchEvent)
	// TracerProvider traces fetches (trace.go); nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Set is the verification keys of one provider, merged from its key sources. It satisfies
// extauthz.KeySource. It is safe for concurrent use.
//
// Freshness is per source. A file source never goes stale. A remote source serves its keys
// until max_stale after its last good fetch. Lookup returns a key from any source that is
// fresh, even when another source of the provider is stale or has never loaded: that key
// is still vouched for. It returns an error (ErrNoKeys or ErrStale, fail closed) only when
// the kid is not among the fresh keys and some source is stale or has never loaded, because
// then the kid may well be one the provider uses: "unknown kid" would be a lie.
type Set struct {
	issuer       string
	now          func() time.Time
	onFetch      func(FetchEvent)
	tracer       trace.Tracer
	sources      []*source // in config order
	remotes      []*source
	files        []*source
	cooldown     time.Duration // least time between unknown-kid refetches
	pollInterval time.Duration // file poll, the fallback under the watcher
	// private marks a set of decryption keys (NewDecryptionSet): its files hold private
	// keys, parsed by parsePrivateFile.
	private    bool
	newWatcher func() (*fsnotify.Watcher, error)

	// snap is what Lookup reads, without locks: replaced whole, never mutated.
	snap atomic.Pointer[snapshot]

	mu      sync.Mutex // serializes installs; guards source.keys/lastGood/lastErr and below
	started bool
	life    context.Context // Start's context, for refetches that outlive their caller

	refetches singleflight.Group
	unknownMu sync.Mutex
	nextOK    time.Time           // guarded by unknownMu: no unknown-kid refetch before it
	unknown   map[string]struct{} // guarded by unknownMu: kids missing after a refetch
}

// snapshot maps each kid to its key and source. only is the Set's single key when it holds
// exactly one and every source has loaded: the answer for a token without kid.
type snapshot struct {
	byKID map[string]entry
	only  entry
	// replaced is closed when a newer snapshot is published, so a Lookup waiting on a
	// refetch of several sources can return as soon as the one holding its kid has answered.
	replaced chan struct{}
}

type entry struct {
	key *jose.JSONWebKey
	src *source
}

// source is one config.Key.
type source struct {
	kind Kind
	name string // the configured path or URL, as reported
	path string // file sources: the resolved path
	kid  string // pem_file and hmac_secret_file
	rem  *remote
	// freshUntil is the instant (Unix ns) until which the source's keys serve: 0 before its
	// first load, MaxInt64 for a file, last good fetch + max_stale for a remote source.
	freshUntil atomic.Int64

	// Guarded by Set.mu.
	keys     []*jose.JSONWebKey
	lastGood time.Time
	lastErr  error

	// File sources, owned by NewSet and then by the watcher goroutine.
	seen    [32]byte // SHA-256 of the content last parsed
	seenErr string   // the read error last reported
}

func (src *source) fresh(now int64) bool { return now < src.freshUntil.Load() }

// NewSet builds the key set of the provider whose tokens carry issuer. It checks every spec,
// resolves file paths with resolvePath (nil: as written), and loads the files now: a file
// that is missing, malformed, weak, holds a private key, or repeats a kid is an error, so a
// bad config fails at startup. Remote sources are first fetched by Start.
func NewSet(issuer string, specs []config.Key, resolvePath func(string) string, opts Options) (*Set, error) {
	return newSet(issuer, specs, resolvePath, opts, false)
}

func newSet(issuer string, specs []config.Key, resolvePath func(string) string, opts Options, private bool) (*Set, error) {
	if resolvePath == nil {
		resolvePath = func(p string) string { return p }
	}
	s := &Set{
		issuer:       issuer,
		now:          opts.Now,
		onFetch:      opts.OnFetch,
		tracer:       newTracer(opts.TracerProvider),
		pollInterval: defaultPollInterval,
		newWatcher:   fsnotify.NewWatcher,
		unknown:      map[string]struct{}{},
		private:      private,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onFetch == nil {
		s.onFetch = func(FetchEvent) {}
	}
	s.snap.Store(&snapshot{replaced: make(chan struct{})})
	if len(specs) == 0 {
		return nil, fmt.Errorf("issuer %q has no key sources: %w", issuer, ErrNoKeys)
	}
	for i, spec := range specs {
		src, err := newSource(issuer, spec, resolvePath, opts.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		s.sources = append(s.sources, src)
		if src.rem != nil {
			s.remotes = append(s.remotes, src)
			if s.cooldown == 0 || src.rem.cooldown < s.cooldown {
				s.cooldown = src.rem.cooldown
			}
		} else {
			s.files = append(s.files, src)
		}
	}
	for i, src := range s.sources {
		if src.rem != nil {
			continue
		}
		if err := s.reloadFile(src, TriggerInitial); err != nil {
			return nil, fmt.Errorf("keys[%d]: %s %s: %w", i, src.kind, src.name, err)
		}
	}
	return s, nil
}

func newSource(issuer string, spec config.Key, resolvePath func(string) string, client *http.Client) (*source, error) {
	n := 0
	src := &source{kid: spec.KID}
	for _, f := range []struct {
		kind Kind
		val  string
	}{
		{KindJWKSFile, spec.JWKSFile}, {KindPEMFile, spec.PEMFile},
		{KindHMACSecretFile, spec.HMACSecretFile}, {KindJWKSURI, spec.JWKSURI},
		{KindSPIFFEBundleURI, spec.SPIFFEBundleURI}, {KindSPIFFEBundleFile, spec.SPIFFEBundleFile},
	} {
		if f.val != "" {
			n++
			src.kind, src.name = f.kind, f.val
		}
	}
	if spec.Discovery {
		n++
		src.kind = KindDiscovery
	}
	switch {
	case n != 1:
		return nil, fmt.Errorf("want exactly one of jwks_uri, jwks_file, pem_file, hmac_secret_file, discovery, spiffe_bundle_uri and spiffe_bundle_file, got %d: %w", n, ErrMalformed)
	case src.kind == KindHMACSecretFile && spec.KID == "":
		return nil, fmt.Errorf("hmac_secret_file %s: kid is required: %w", src.name, ErrMalformed)
	case src.kind == KindJWKSURI || src.kind == KindDiscovery || src.kind == KindSPIFFEBundleURI:
		rem, name, err := newRemote(issuer, spec, resolvePath, client)
		if err != nil {
			return nil, err
		}
		src.rem, src.name = rem, name
	default:
		src.path = resolvePath(src.name)
	}
	return src, nil
}

// Start fetches every remote source once, concurrently, and returns when each has had its
// first attempt (or ctx is done). Then, until ctx is done, it refreshes remote sources in
// the background and watches the files. A failed first fetch is not an error: the Set is
// simply not Ready, it is reported to OnFetch, and it is retried with backoff (a provider
// whose issuer is down at boot must come up by itself when the issuer does). Start returns
// an error only if ctx is done before the first attempts finish, or when called twice.
func (s *Set) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return fmt.Errorf("keys: Start called twice for issuer %q", s.issuer)
	}
	s.started, s.life = true, ctx
	s.mu.Unlock()

	s.fetchRemotes(ctx, TriggerInitial)
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, src := range s.remotes {
		go s.refreshLoop(ctx, src)
	}
	if len(s.files) > 0 {
		s.watchFiles(ctx)
	}
	return nil
}

// fetchRemotes fetches every remote source concurrently and waits for all. It reports
// whether every fetch succeeded.
func (s *Set) fetchRemotes(ctx context.Context, trigger Trigger) bool {
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for _, src := range s.remotes {
		wg.Go(func() {
			if !s.fetchRemote(ctx, src, trigger) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	return !failed.Load()
}

// Status returns the Set's state.
func (s *Set) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	st := Status{Ready: s.Ready()}
	for _, src := range s.sources {
		st.Keys += len(src.keys)
		st.Sources = append(st.Sources, SourceStatus{
			Kind:     src.kind,
			Source:   src.name,
			Keys:     len(src.keys),
			LastGood: src.lastGood,
			Stale:    src.freshUntil.Load() != 0 && !src.fresh(now),
			LastErr:  src.lastErr,
		})
	}
	return st
}

// install makes keys the keys of src and publishes a new snapshot. A key that another
// source of the provider also publishes is one key when the two agree (same kid, same
// material and alg: discovery and the jwks_uri it names serve the same document); a source
// whose keys all agree with another's has loaded all the same. Two different keys under one
// kid are a conflict: that kid is refused (Lookup does not find it) while the sources
// disagree, and each conflict is returned in conflicts; the other keys keep serving. A key
// whose material, kid, alg, use and certificates did not change keeps its old pointer.
// Installing nothing is an error and leaves the old keys in place.
func (s *Set) install(src *source, keys []*jose.JSONWebKey) (conflicts []error, err error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key left to use: %w", ErrNoKeys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := make(map[string]*jose.JSONWebKey, len(src.keys))
	for _, k := range src.keys {
		prev[k.KeyID] = k
	}
	out := make([]*jose.JSONWebKey, 0, len(keys))
	for _, k := range keys {
		if old := prev[k.KeyID]; old != nil && sameKey(old, k) {
			k = old
		}
		out = append(out, k)
	}
	for _, o := range s.sources {
		if o == src {
			continue
		}
		for _, theirs := range o.keys {
			for _, ours := range out {
				if ours.KeyID == theirs.KeyID && !sameMaterial(ours, theirs) {
					conflicts = append(conflicts, fmt.Errorf("kid %q: %s %s publishes a different key under it; the kid is refused: %w",
						clip(ours.KeyID), o.kind, o.name, ErrDuplicateKID))
				}
			}
		}
	}
	src.keys = out
	s.markGoodLocked(src)
	s.publishLocked()
	return conflicts, nil
}

// markGoodLocked records a good load or fetch of src.
func (s *Set) markGoodLocked(src *source) {
	now := s.now()
	src.lastGood, src.lastErr = now, nil
	until := int64(math.MaxInt64)
	if src.rem != nil {
		until = now.Add(src.rem.maxStale).UnixNano()
	}
	src.freshUntil.Store(until)
}

// publishLocked rebuilds the snapshot from the sources' keys and, if any kid or key
// changed, publishes it and forgets the unknown kids.
func (s *Set) publishLocked() {
	next := &snapshot{byKID: map[string]entry{}, replaced: make(chan struct{})}
	all := true
	conflicted := map[string]bool{}
	for _, src := range s.sources {
		all = all && len(src.keys) > 0
		for _, k := range src.keys {
			held, dup := next.byKID[k.KeyID]
			switch {
			case conflicted[k.KeyID]:
			case !dup:
				next.byKID[k.KeyID] = entry{k, src}
			case !sameMaterial(held.key, k):
				// We cannot know which of the two the issuer signs with: refuse both.
				delete(next.byKID, k.KeyID)
				conflicted[k.KeyID] = true
			}
		}
	}
	if len(next.byKID) == 1 && all {
		for _, e := range next.byKID {
			next.only = e
		}
	}
	old := s.snap.Load()
	if old.only == next.only && len(old.byKID) == len(next.byKID) && sameEntries(old.byKID, next.byKID) {
		return
	}
	s.snap.Store(next)
	close(old.replaced)
	s.forgetUnknown()
}

func sameEntries(a, b map[string]entry) bool {
	for kid, e := range a {
		if b[kid] != e {
			return false
		}
	}
	return true
}

func (s *Set) setErr(src *source, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src.lastErr = err
}

func (s *Set) keyCount(src *source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(src.keys)
}

// clip shortens text from a token or a remote document before it goes into an error.
func clip(v string) string {
	const n = 128
	if len(v) <= n {
		return v
	}
	return v[:n] + "..."
}
