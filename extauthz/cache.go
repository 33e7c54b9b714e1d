package extauthz

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// tokenCache remembers tokens whose signature and claims a provider has verified, so a
// repeated token costs a hash and a map lookup instead of a signature verification.
//
// Its guarantees (landscape.md §5.10):
//   - it lives inside one Policy: a reload starts empty, so a token is never trusted under
//     a configuration that did not verify it;
//   - an entry records the provider that verified it, and a hit still has to pass the rule's
//     provider and token-source checks: a token verified for one provider never passes for
//     another;
//   - the time claims (exp, nbf) are checked again on every hit, and an entry is never kept
//     past the token's exp;
//   - on every hit the signing key is looked up again and must be the very key that verified
//     the token: a key withdrawn or replaced in the provider's set drops the entry;
//   - denials are not cached.
//
// It is bounded by entries and by approximate bytes; when full, it evicts the entry that
// expires soonest among a few sampled at random (as Redis does), which keeps no per-entry
// bookkeeping. Safe for concurrent use.
type tokenCache struct {
	shards     [cacheShards]cacheShard
	maxEntries int // per shard
	maxBytes   int64
}

const cacheShards = 32

// cacheKey is the first 128 bits of the token's SHA-256: a second preimage against any of
// 100k cached tokens would still take about 2^111 hashes, and the map stays small.
type cacheKey [16]byte

func keyOf(token string) cacheKey {
	// Read the string in place: Sum256 only reads it, and a copy would allocate per request.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	return cacheKey(sum[:16])
}

// evictionSample is how many entries are compared to choose one to evict.
const evictionSample = 8

type cacheShard struct {
	mu      sync.Mutex
	entries map[cacheKey]*identity
	bytes   int64
}

func newTokenCache(maxEntries int, maxBytes int64) *tokenCache {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil
	}
	c := &tokenCache{maxEntries: max(1, maxEntries/cacheShards), maxBytes: max(1, maxBytes/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = make(map[cacheKey]*identity)
	}
	return c
}

func (c *tokenCache) shard(k cacheKey) *cacheShard { return &c.shards[k[0]%cacheShards] }

// get returns the entry for k if it is still within its time bounds at now, given the
// provider's clock skew. Expired entries are dropped.
func (c *tokenCache) get(k cacheKey, now time.Time) *identity {
	s := c.shard(k)
	s.mu.Lock()
	id := s.entries[k]
	t := now.UnixNano()
	if id != nil && id.exp != 0 && t > id.exp+int64(id.provider.skew) {
		s.removeLocked(k, id)
		id = nil
	}
	s.mu.Unlock()
	if id == nil {
		return nil
	}
	if id.nbf != 0 && t < id.nbf-int64(id.provider.skew) {
		return nil // verified early within skew; not valid yet at this instant
	}
	return id
}

// put stores a verified token. Tokens without exp are cached too: the key check and a
// reload still bound their life.
func (c *tokenCache) put(k cacheKey, id *identity) {
	size := id.estimate()
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[k]; old != nil {
		s.removeLocked(k, old)
	}
	for len(s.entries) > 0 && (len(s.entries) >= c.maxEntries || s.bytes+size > c.maxBytes) {
		s.evictLocked()
	}
	s.entries[k] = id
	s.bytes += size
}

// drop removes k (its key left the set).
func (c *tokenCache) drop(k cacheKey) {
	s := c.shard(k)
	s.mu.Lock()
	if e := s.entries[k]; e != nil {
		s.removeLocked(k, e)
	}
	s.mu.Unlock()
}

// len is the number of entries (metrics, tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

func (s *cacheShard) removeLocked(k cacheKey, id *identity) {
	delete(s.entries, k)
	s.bytes -= id.estimate()
}

// evictLocked removes the soonest-expiring of a few entries: Go starts every map iteration
// at a random place, so the first few are a random sample.
func (s *cacheShard) evictLocked() {
	var victim cacheKey
	var vid *identity
	n := 0
	for k, id := range s.entries {
		if vid == nil || expiresBefore(id, vid) {
			victim, vid = k, id
		}
		if n++; n == evictionSample {
			break
		}
	}
	if vid != nil {
		s.removeLocked(victim, vid)
	}
}

// expiresBefore orders by exp; a token without exp counts as expiring last.
func expiresBefore(a, b *identity) bool {
	switch {
	case a.exp == 0:
		return false
	case b.exp == 0:
		return true
	}
	return a.exp < b.exp
}

// entryOverhead is the fixed part of an entry: the identity (112 bytes), its map slot, the
// claims slice (calibrated with BenchmarkCacheBytesPerToken); rareOverhead is the part most
// identities do not have.
const (
	entryOverhead = 150
	rareOverhead  = 64
)

// estimate approximates the memory an entry holds.
func (id *identity) estimate() int64 {
	n := int64(entryOverhead + len(id.sub) + cap(id.headerWire))
	if id.rare != nil {
		n += rareOverhead + int64(len(id.rare.kid)+len(id.rare.iss))
	}
	for _, v := range id.claims {
		n += 16
		if s, ok := v.(string); ok {
			n += int64(len(s))
		}
	}
	return n
}
