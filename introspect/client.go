// Package introspect asks an OAuth 2.0 token introspection endpoint (RFC 7662) about opaque
// access tokens, for jwt-authz providers that configure introspection. Answers are cached
// by the token's SHA-256 digest (the token itself is never kept or logged), concurrent
// questions about one token make one call, and every failure is an error: the caller
// fails closed.
package introspect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/jwt-authz/jwt-authz/config"
)

// ErrUnavailable: the endpoint could not give a usable answer (down, slow, an HTTP error,
// an oversized or malformed body).
var ErrUnavailable = errors.New("introspect: endpoint unavailable")

// Client asks one provider's introspection endpoint. It is safe for concurrent use.
type Client struct {
	issuer      string
	endpoint    string // "" until discovered when not configured
	clientID    string
	secret      string           // client_secret_basic
	assertions  *assertionSigner // private_key_jwt
	http        *http.Client
	maxBytes    int64
	cacheFor    time.Duration
	inactiveFor time.Duration
	now         func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[[sha256.Size]byte]entry
	calls  int64 // endpoint calls made, for tests and metrics
}

type entry struct {
	active  bool
	answer  []byte
	expires time.Time
}

// maxEntries bounds the cache; when full, expired entries are swept and, if still full,
// the cache is emptied (a flood of distinct tokens costs calls, never memory).
const maxEntries = 100_000

// New builds a Client from a validated config for the provider of issuer (whose discovery
// document names the endpoint when c has none); resolvePath resolves the secret file's
// path (config.Config.Path).
func New(c config.Introspection, issuer string, resolvePath func(string) string) (*Client, error) {
	c = c.WithDefaults()
	cl := &Client{
		issuer: issuer, endpoint: c.Endpoint, clientID: c.ClientID,
		http: &http.Client{
			Timeout: c.Timeout.D(),
			// An introspection answer is never a redirect: following one could send the
			// client's credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxBytes: int64(c.MaxResponseBytes), cacheFor: c.CacheFor.D(), inactiveFor: c.InactiveCacheFor.D(),
		now: time.Now, cache: map[[sha256.Size]byte]entry{},
	}
	if c.ClientAuth == config.PrivateKeyJWT {
		var err error
		if cl.assertions, err = newAssertionSigner(c, issuer, resolvePath(c.PrivateKeyFile)); err != nil {
			return nil, err
		}
		return cl, nil
	}
	path := resolvePath(c.ClientSecretFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("introspect: client_secret_file: %w", err)
	}
	cl.secret = strings.TrimRight(string(b), "\r\n")
	if cl.secret == "" {
		return nil, fmt.Errorf("introspect: client_secret_file %s is empty", path)
	}
	return cl, nil
}

// Calls is how many requests the Client has sent to the endpoint.
func (c *Client) Calls() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Introspect reports whether token is active and, if so, the answer's JSON object (its
// claims). An error means no usable answer: fail closed.
func (c *Client) Introspect(ctx context.Context, token string) (active bool, answer []byte, err error) {
	digest := sha256.Sum256([]byte(token))
	if e, ok := c.cached(digest); ok {
		return e.active, e.answer, nil
	}
	v, err, _ := c.flight.Do(string(digest[:]), func() (any, error) {
		e, err := c.call(ctx, token)
		if err != nil {
			return nil, err
		}
		c.store(digest, e)
		return e, nil
	})
	if err != nil {
		return false, nil, err
	}
	e := v.(entry)
	return e.active, e.answer, nil
}

// Cached is Introspect's answer when the cache has one, without calling the endpoint: ok is
// false when a call would be needed. For a caller that must not wait on the network (the
// in-process module on Envoy's worker thread).
func (c *Client) Cached(token string) (active bool, answer []byte, ok bool) {
	e, ok := c.cached(sha256.Sum256([]byte(token)))
	return e.active, e.answer, ok
}

func (c *Client) cached(digest [sha256.Size]byte) (entry, bool) {
	c.mu.Lock()
	e, ok := c.cache[digest]
	c.mu.Unlock()
	if !ok || !c.now().Before(e.expires) {
		return entry{}, false
	}
	return e, true
}

// Clients builds a Client for each provider of cfg that configures introspection, by
// provider name.
func Clients(cfg *config.Config) (map[string]*Client, error) {
	clients := map[string]*Client{}
	for _, p := range cfg.Providers {
		if p.Introspection == nil {
			continue
		}
		c, err := New(*p.Introspection, p.Issuer, cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("providers %q: introspection: %w", p.Name, err)
		}
		clients[p.Name] = c
	}
	return clients, nil
}

func (c *Client) store(digest [sha256.Size]byte, e entry) {
	if !e.expires.After(c.now()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= maxEntries {
		now := c.now()
		for k, old := range c.cache {
			if !now.Before(old.expires) {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= maxEntries {
			clear(c.cache)
		}
	}
	c.cache[digest] = e
}

// call sends one RFC 7662 §2.1 request. The context of the first asker bounds it, and the
// client's timeout bounds it in any case.
func (c *Client) call(ctx context.Context, token string) (entry, error) {
	endpoint, err := c.endpointURL(ctx)
	if err != nil {
		return entry{}, err
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if c.assertions != nil {
		a, err := c.assertions.assertion(c.now())
		if err != nil {
			return entry{}, fmt.Errorf("%w: client assertion: %v", ErrUnavailable, err)
		}
		form.Set("client_id", c.clientID)
		form.Set("client_assertion_type", assertionType)
		form.Set("client_assertion", a)
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return entry{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.assertions == nil {
		// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(c.secret))
	}
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	resp, err := c.http.Do(req)
	if err != nil {
		// The error text of net/http names the URL, never the body or credentials.
		return entry{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return entry{}, fmt.Errorf("%w: status %d", ErrUnavailable, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return entry{}, fmt.Errorf("%w: content type %q is not application/json", ErrUnavailable, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return entry{}, fmt.Errorf("%w: reading the answer: %v", ErrUnavailable, err)
	}
	if int64(len(body)) > c.maxBytes {
		return entry{}, fmt.Errorf("%w: answer larger than %d bytes", ErrUnavailable, c.maxBytes)
	}
	a, err := ParseAnswer(body)
	if err != nil {
		return entry{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	now := c.now()
	if !a.Active {
		return entry{expires: now.Add(c.inactiveFor)}, nil
	}
	expires := now.Add(c.cacheFor)
	if a.HasExp && a.Exp.Before(expires) {
		expires = a.Exp
	}
	return entry{active: true, answer: body, expires: expires}, nil
}
