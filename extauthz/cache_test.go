package extauthz

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

// cacheConfig: demo reads the Authorization header only, partner a header and a cookie.
const cacheConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256, RS256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub}
- name: partner
  issuer: https://partner.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  token_sources: [{header: authorization, prefix: Bearer}, {cookie: session}]
rules:
- name: admin
  match: {path_prefix: /admin}
  require: {providers: [demo], scopes: [admin]}
- name: gold
  match: {path_prefix: /gold}
  require: {claims: {tier: gold}}
- name: partner-only
  match: {path_prefix: /partner}
  require: {providers: [partner]}
- name: api
  match: {path_prefix: /api}
  require: {}
`

type cacheFixture struct {
	cached, uncached *Policy
	demo             *fakeKeys // shared by both policies
}

func newCacheFixture(t *testing.T, extra string) cacheFixture {
	t.Helper()
	f := cacheFixture{demo: newFakeKeys("ec256", "rsa")}
	keys := map[string]KeySource{"demo": f.demo, "partner": newFakeKeys("ec256")}
	f.cached = newPolicy(t, cacheConfig+extra, keys)
	f.uncached = newPolicy(t, cacheConfig+"cache: {enabled: false}\n", keys)
	return f
}

// TestCacheTransparent: once a token is in the cache, every later request with it gets
// exactly the response the uncached path gives, whatever changed in between.
func TestCacheTransparent(t *testing.T) {
	tok := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["exp"] = testNow.Unix() + 60 })
	tests := []struct {
		name   string
		req    envoyRequest
		at     time.Duration // after testNow
		change func(f cacheFixture)
		reason Reason
		hit    bool
	}{
		{name: "same request", req: envoyRequest{headers: bearer(tok)}, reason: ReasonAllowed, hit: true},
		{name: "other encoding", req: envoyRequest{rawHeader: true, headers: bearer(tok)}, reason: ReasonAllowed, hit: true},
		{name: "rule needs a scope", req: envoyRequest{path: "/admin", headers: bearer(tok)}, reason: ReasonScope, hit: true},
		{name: "rule needs a claim", req: envoyRequest{path: "/gold", headers: bearer(tok)}, reason: ReasonClaimMismatch, hit: true},
		{name: "rule takes another provider", req: envoyRequest{path: "/partner", headers: bearer(tok)}, reason: ReasonIssuerNotHere},
		{name: "source the provider does not read", req: envoyRequest{headers: hdrs("cookie", "session="+tok)}, reason: ReasonIssuerNotHere},
		{name: "within skew after exp", req: envoyRequest{headers: bearer(tok)}, at: 90 * time.Second, reason: ReasonAllowed, hit: true},
		{name: "beyond skew after exp", req: envoyRequest{headers: bearer(tok)}, at: 91 * time.Second, reason: ReasonExpired},
		{name: "key withdrawn", req: envoyRequest{headers: bearer(tok)}, change: func(f cacheFixture) { delete(f.demo.keys, "ec256") }, reason: ReasonUnknownKey},
		{name: "key replaced under the same kid", req: envoyRequest{headers: bearer(tok)}, change: func(f cacheFixture) { f.demo.keys["ec256"] = verificationKey("attacker-ec", "") }, reason: ReasonSignature},
		{name: "keys unavailable", req: envoyRequest{headers: bearer(tok)}, change: func(f cacheFixture) { f.demo.unavailable.Store(true) }, reason: ReasonKeysUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, "")
			if _, d := f.cached.Check(t.Context(), envoyRequest{headers: bearer(tok)}.proto(), testNow); !d.Allowed || d.Cached {
				t.Fatalf("Check(first use) = %+v, want an uncached allow", d)
			}
			if tc.change != nil {
				tc.change(f)
			}
			now := testNow.Add(tc.at)
			want, wantD := f.uncached.Check(t.Context(), tc.req.proto(), now)
			got, gotD := f.cached.Check(t.Context(), tc.req.proto(), now)
			if gotD.Reason != tc.reason || gotD.Cached != tc.hit {
				t.Errorf("Check(%s) = %s cached %v, want %s cached %v", tc.name, gotD.Reason, gotD.Cached, tc.reason, tc.hit)
			}
			gotD.Cached = false
			if diff := cmp.Diff(wantD, gotD); diff != "" {
				t.Errorf("Check(%s) decision differs from the uncached one (-uncached +cached):\n%s", tc.name, diff)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Check(%s) response differs from the uncached one (-uncached +cached):\n%s", tc.name, diff)
			}
		})
	}
}

func TestCacheDenialsNotCached(t *testing.T) {
	f := newCacheFixture(t, "")
	forged := sig.mint(t, "ES256", "attacker-ec", func(h, _ map[string]any) { h["kid"] = "ec256" })
	for i := range 3 {
		if _, d := check(t, f.cached, envoyRequest{headers: bearer(forged)}.proto()); d.Reason != ReasonSignature || d.Cached {
			t.Errorf("Check(forged token, try %d) = %s cached %v, want invalid_signature uncached", i, d.Reason, d.Cached)
		}
	}
	if n := f.cached.CachedTokens(); n != 0 {
		t.Errorf("CachedTokens() after denials = %d, want 0", n)
	}
	if n := f.demo.lookups.Load(); n != 3 {
		t.Errorf("key lookups for three forged tokens = %d, want 3 (each verified)", n)
	}
}

func TestCacheBounds(t *testing.T) {
	tests := []struct {
		name   string
		extra  string
		tokens int
		max    int
	}{
		{name: "disabled", extra: "cache: {enabled: false}\n", tokens: 10, max: 0},
		{name: "entries", extra: "cache: {max_entries: 64}\n", tokens: 200, max: 64},
		{name: "bytes", extra: "cache: {max_bytes: 32768}\n", tokens: 200, max: 32768 / entryOverhead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, tc.extra)
			for i := range tc.tokens {
				tok := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["sub"] = fmt.Sprintf("user-%d", i) })
				if _, d := check(t, f.cached, envoyRequest{headers: bearer(tok)}.proto()); !d.Allowed {
					t.Fatalf("Check(token %d) = %s, want allowed", i, d.Reason)
				}
			}
			if n := f.cached.CachedTokens(); n > tc.max || (tc.max > 0 && n == 0) {
				t.Errorf("CachedTokens() after %d tokens = %d, want 1..%d", tc.tokens, n, tc.max)
			}
		})
	}
}

// TestCacheReload: a new Policy starts empty, so a token is never trusted under a
// configuration that did not verify it.
func TestCacheReload(t *testing.T) {
	f := newCacheFixture(t, "")
	tok := sig.mint(t, "ES256", "ec256", nil)
	s := NewServer(f.cached, Options{Now: func() time.Time { return testNow }})
	req := envoyRequest{headers: bearer(tok)}.proto()
	s.Check(t.Context(), req)
	if n := f.cached.CachedTokens(); n != 1 {
		t.Fatalf("CachedTokens() after one allow = %d, want 1", n)
	}
	// The new configuration no longer trusts demo's audience.
	reloaded := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [other-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: api
  match: {path_prefix: /}
  require: {}
`, map[string]KeySource{"demo": f.demo})
	s.SetPolicy(reloaded)
	resp, _ := s.Check(t.Context(), req)
	if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != string(ReasonAudience) {
		t.Errorf("Check(cached token after reload) = %s, want %s", got, ReasonAudience)
	}
}

// TestIdentitySize: a cached identity stays in the 112-byte size class; a field added to it
// costs 100k cached tokens 1.6 MiB or more (what most tokens lack goes in identityRare).
func TestIdentitySize(t *testing.T) {
	if n := unsafe.Sizeof(identity{}); n > 112 {
		t.Errorf("identity is %d bytes, want at most 112", n)
	}
}

// TestInternTable: equal short strings share one value, other values pass through, and the
// table stops growing at its bound.
func TestInternTable(t *testing.T) {
	var tab internTable
	a := tab.share(strings.Clone("read write"))
	b := tab.share(strings.Clone("read write"))
	if unsafe.StringData(a.(string)) != unsafe.StringData(b.(string)) {
		t.Error("share(\"read write\") twice gave two copies, want one")
	}
	long := strings.Repeat("x", maxInternedBytes+1)
	if got := tab.share(long); got != long {
		t.Errorf("share(long) = %v, want it unchanged", got)
	}
	if got := tab.share(json.Number("1")); got != json.Number("1") {
		t.Errorf("share(number) = %v, want it unchanged", got)
	}
	for i := range 2 * maxInterned {
		tab.share(fmt.Sprint(i))
	}
	if n := len(tab.m); n != maxInterned {
		t.Errorf("table holds %d values, want the bound %d", n, maxInterned)
	}
}
