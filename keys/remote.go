package keys

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

const (
	userAgent    = "jwt-authz"
	firstBackoff = time.Second
)

// remote is the fetch state of a jwks_uri or discovery source.
type remote struct {
	client                             *http.Client
	timeout, cooldown, maxStale        time.Duration
	interval, minInterval, maxInterval time.Duration
	issuer                             string
	discoveryURL                       string // discovery sources only
	// bearerFile holds the token sent to bearerOrigin (scheme://host of the configured
	// URL) and nowhere else: a discovered jwks_uri on another host does not get it.
	bearerFile, bearerOrigin string
	spiffe                   bool // the document is a SPIFFE trust bundle

	// turn is held by the one fetch in progress, and guards the fields below. A channel,
	// not a mutex, so a fetch queued behind a slow one gives up when its context ends.
	turn     chan struct{}
	jwksURI  string // the configured jwks_uri, or the last discovered one
	etag     string // of the keys held, valid for etagURI only
	etagURI  string
	discETag string
	fails    int // consecutive failed fetches
	// next is the delay until the next scheduled fetch (a time.Duration), atomic so the
	// refresh loop can read it while a fetch is in progress.
	next atomic.Int64
}

// newRemote checks a jwks_uri or discovery spec. Zero durations get config's defaults, so
// a spec that did not go through config.Parse still behaves.
func newRemote(issuer string, spec config.Key, resolvePath func(string) string, client *http.Client) (*remote, string, error) {
	d := func(v config.Duration, def time.Duration) time.Duration {
		if v <= 0 {
			return def
		}
		return v.D()
	}
	r := &remote{
		issuer:   issuer,
		timeout:  d(spec.Timeout, config.DefaultFetchTimeout),
		cooldown: d(spec.UnknownKIDCooldown, config.DefaultUnknownKIDCooldown),
		maxStale: d(spec.MaxStale, config.DefaultMaxStale),
		interval: max(d(spec.RefreshInterval, config.DefaultRefreshInterval), config.MinimumRefreshInterval),
		jwksURI:  spec.JWKSURI,
		turn:     make(chan struct{}, 1),
	}
	if spec.SPIFFEBundleURI != "" {
		r.jwksURI, r.spiffe = spec.SPIFFEBundleURI, true
	}
	r.minInterval = d(spec.MinRefreshInterval, min(config.DefaultMinRefresh, r.interval))
	r.maxInterval = max(d(spec.MaxRefreshInterval, max(config.DefaultMaxRefresh, r.interval)), r.minInterval)
	name := r.jwksURI
	if spec.Discovery {
		r.discoveryURL = strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
		if spec.DiscoveryURI != "" { // an issuer template has no well-known URL of its own
			r.discoveryURL = spec.DiscoveryURI
		}
		name = r.discoveryURL
	}
	if err := checkHTTPURL(name); err != nil {
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	if spec.BearerTokenFile != "" {
		if !config.BearerAllowed(name) {
			return nil, "", fmt.Errorf("%s: bearer_token_file needs https or a loopback address: %w", name, ErrMalformed)
		}
		u, _ := url.Parse(name)
		r.bearerFile, r.bearerOrigin = resolvePath(spec.BearerTokenFile), u.Scheme+"://"+u.Host
	}
	if client == nil {
		var err error
		if client, err = newHTTPClient(spec.CAFile, resolvePath, r.timeout); err != nil {
			return nil, "", err
		}
	}
	r.client = client
	return r, name, nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("not an absolute http(s) URL: %w", ErrMalformed)
	}
	return nil
}

// newHTTPClient builds the client of one remote source.
func newHTTPClient(caFile string, resolvePath func(string) string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if caFile != "" {
		path := resolvePath(caFile)
		pemData, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate: %w", path, ErrMalformed)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("redirect from https to http refused")
			}
			return nil
		},
	}, nil
}

// fetched is the outcome of one remote fetch, before it is installed.
type fetched struct {
	url         string // the JWKS URL
	keys        []*jose.JSONWebKey
	skipped     []error
	notModified bool
	etag        string
	maxAge      time.Duration
	hasMaxAge   bool
}

// fetchRemote fetches src, installs what it got, schedules its next fetch and reports. It
// returns whether the fetch succeeded, so that only a refetch that really looked at the
// source may conclude that a kid is not there.
func (s *Set) fetchRemote(ctx context.Context, src *source, trigger Trigger) bool {
	r := src.rem
	ev := FetchEvent{Kind: src.kind, Source: src.name, Trigger: trigger}
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return false // shutting down, or a refetch nobody waits for any more
	}
	ctx, span := s.startFetchSpan(ctx, src, trigger)
	f, err := r.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		<-r.turn
		span.End()
		return false // the Set is stopping: not a failure of the source
	}
	ev.URL, ev.Skipped = f.url, f.skipped
	switch {
	case err != nil:
	case f.notModified:
		s.mu.Lock()
		s.markGoodLocked(src)
		s.mu.Unlock()
		ev.Result = ResultNotModified
	default:
		var skipped []error
		skipped, err = s.install(src, f.keys)
		ev.Skipped = append(ev.Skipped, skipped...)
		if err == nil {
			r.etag, r.etagURI = f.etag, f.url
			ev.Result = ResultOK
		}
	}
	if err != nil {
		r.fails++
		r.next.Store(int64(r.backoff()))
		s.setErr(src, err)
		ev.Result, ev.Err = ResultError, err
	} else {
		r.fails = 0
		r.next.Store(int64(r.refreshDelay(f.maxAge, f.hasMaxAge)))
		if trigger != TriggerUnknownKID {
			// "Unknown until the next successful refresh": the negative cache may hide a
			// kid published since it was last looked for. Unknown-kid refetches do not
			// clear it, or a flood of fresh random kids would keep it empty.
			s.forgetUnknown()
		}
	}
	ev.Next = time.Duration(r.next.Load())
	<-r.turn
	ev.Keys = s.keyCount(src)
	endFetchSpan(span, ev)
	s.onFetch(ev)
	return err == nil
}

// fetch gets the discovery document if any, then the JWKS, within the source's timeout.
func (r *remote) fetch(ctx context.Context) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if r.discoveryURL != "" {
		if err := r.discover(ctx); err != nil {
			return fetched{}, err
		}
	}
	f := fetched{url: r.jwksURI}
	etag := ""
	if r.etagURI == r.jwksURI {
		etag = r.etag
	}
	resp, err := r.get(ctx, r.jwksURI, etag)
	if err != nil {
		return f, err
	}
	f.notModified, f.etag = resp.notModified, resp.etag
	f.maxAge, f.hasMaxAge = maxAge(resp.header)
	if f.notModified {
		return f, nil
	}
	if r.spiffe {
		var hint time.Duration
		f.keys, f.skipped, hint, err = parseSPIFFEBundle(resp.body, fromRemote)
		if hint > 0 { // the bundle's own word on how often to refresh wins over HTTP caching
			f.maxAge, f.hasMaxAge = hint, true
		}
	} else {
		f.keys, f.skipped, err = parseJWKS(resp.body, fromRemote)
	}
	if err != nil {
		return f, fmt.Errorf("%s: %w", r.jwksURI, err)
	}
	return f, nil
}

type response struct {
	body        []byte
	header      http.Header
	etag        string
	notModified bool
}

// get fetches one document: 200 with a body of at most 1 MiB, or 304 to If-None-Match.
func (r *remote) get(ctx context.Context, rawURL, etag string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return response{}, fmt.Errorf("%s: %w: %w", rawURL, err, ErrFetch)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	if r.bearerFile != "" && req.URL.Scheme+"://"+req.URL.Host == r.bearerOrigin {
		token, err := readBearer(r.bearerFile)
		if err != nil {
			return response{}, fmt.Errorf("bearer_token_file: %w: %w", err, ErrFetch)
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%w: %w", err, ErrFetch)
	}
	defer resp.Body.Close()
	out := response{header: resp.Header, etag: resp.Header.Get("ETag")}
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		out.notModified, out.etag = true, etag
		return out, nil
	case resp.StatusCode != http.StatusOK:
		return response{}, fmt.Errorf("GET %s: status %d: %w", rawURL, resp.StatusCode, ErrFetch)
	case resp.ContentLength > maxDocSize:
		return response{}, fmt.Errorf("GET %s: body of %d bytes is over the %d limit: %w", rawURL, resp.ContentLength, maxDocSize, ErrFetch)
	}
	out.body, err = io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return response{}, fmt.Errorf("GET %s: reading body: %w: %w", rawURL, err, ErrFetch)
	}
	if len(out.body) > maxDocSize {
		return response{}, fmt.Errorf("GET %s: body over the %d byte limit: %w", rawURL, maxDocSize, ErrFetch)
	}
	return out, nil
}

// readBearer reads a bearer token file at every fetch: projected service-account tokens
// are rotated by the kubelet, and a read per fetch (minutes apart) costs nothing. Errors
// never quote the content.
func readBearer(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", fmt.Errorf("%s is empty", path)
	case len(token) > 64<<10 || strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("%s does not hold one token", path)
	}
	return token, nil
}

// maxAge reads Cache-Control (RFC 9111 §5.2.2): max-age, or no-cache/no-store, which ask
// for the shortest interval allowed.
func maxAge(h http.Header) (time.Duration, bool) {
	var (
		age   time.Duration
		found bool
	)
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "no-cache" || d == "no-store" {
				return 0, true
			}
			if n, ok := strings.CutPrefix(d, "max-age="); ok {
				secs, err := strconv.ParseInt(strings.Trim(n, `"`), 10, 64)
				if err == nil && secs >= 0 && !found {
					age, found = time.Duration(min(secs, 1<<31))*time.Second, true
				}
			}
		}
	}
	return age, found
}

// refreshDelay is the wait after a good fetch: max-age clamped to the min/max refresh
// interval, else refresh_interval; never more than half of max_stale (nor under 1s), so a
// failing issuer gets several retries before the keys stop serving. Up to 10% is taken off at random so
// that replicas started together do not fetch together.
func (r *remote) refreshDelay(age time.Duration, hasAge bool) time.Duration {
	d := r.interval
	if hasAge {
		d = min(max(age, r.minInterval), r.maxInterval)
	}
	d = max(min(d, r.maxStale/2), config.MinimumRefreshInterval)
	return d - jitter(d/10)
}

// backoff is the wait after the n-th failed fetch in a row: 1s, 2s, 4s, ... up to the
// refresh interval, with "equal jitter" (half fixed, half random) so a fleet that lost its
// issuer at the same moment does not hammer it in step when it comes back.
func (r *remote) backoff() time.Duration {
	d := r.interval
	if r.fails <= 30 {
		d = min(firstBackoff<<(r.fails-1), r.interval)
	}
	return d/2 + jitter(d/2)
}

// jitter is a random duration in [0, d].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// refreshLoop fetches src on its schedule until ctx is done.
func (s *Set) refreshLoop(ctx context.Context, src *source) {
	t := time.NewTimer(time.Duration(src.rem.next.Load()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.fetchRemote(ctx, src, TriggerRefresh)
		t.Reset(time.Duration(src.rem.next.Load()))
	}
}
