package extauthz

import (
	"crypto/sha256"
	"sync"
	"time"
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
// It is bounded by entries and by approximate bytes; when full, the oldest insertions go
// first (tokens inserted earlier tend to expire earlier). Safe for concurrent use.
type tokenCache struct {
	shards     [cacheShards]cacheShard
	maxEntries int // per shard
	maxBytes   int64
}

const cacheShards = 32

type cacheShard struct {
	mu      sync.Mutex
	entries map[[32]byte]*cacheEntry
	order   [][32]byte // insertion order, oldest first; may hold keys already deleted
	bytes   int64
}

// cacheEntry is a verified identity plus its accounting.
type cacheEntry struct {
	id   *identity
	size int64
}

func newTokenCache(maxEntries int, maxBytes int64) *tokenCache {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil
	}
	c := &tokenCache{maxEntries: max(1, maxEntries/cacheShards), maxBytes: max(1, maxBytes/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = make(map[[32]byte]*cacheEntry)
	}
	return c
}

func cacheKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func (c *tokenCache) shard(k [32]byte) *cacheShard { return &c.shards[k[0]%cacheShards] }

// get returns the entry for k if it is still within its time bounds at now, given the
// provider's clock skew. Expired entries are dropped.
func (c *tokenCache) get(k [32]byte, now time.Time) *identity {
	s := c.shard(k)
	s.mu.Lock()
	e := s.entries[k]
	if e != nil && !e.id.exp.IsZero() && now.After(e.id.exp.Add(e.id.provider.skew)) {
		s.removeLocked(k, e)
		e = nil
	}
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	if !e.id.nbf.IsZero() && now.Before(e.id.nbf.Add(-e.id.provider.skew)) {
		return nil // verified early within skew; not valid yet at this instant
	}
	return e.id
}

// put stores a verified token. Tokens without exp are cached too: the key check and a
// reload still bound their life.
func (c *tokenCache) put(k [32]byte, id *identity) {
	e := &cacheEntry{id: id, size: id.estimate()}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[k]; old != nil {
		s.removeLocked(k, old)
	}
	for len(s.entries) >= c.maxEntries || (s.bytes+e.size > c.maxBytes && len(s.entries) > 0) {
		if !s.evictOldestLocked() {
			break
		}
	}
	if len(s.order) > 2*c.maxEntries { // stale keys from expiries and drops: compact
		live := s.order[:0]
		for _, ok := range s.order {
			if s.entries[ok] != nil {
				live = append(live, ok)
			}
		}
		s.order = live
	}
	s.entries[k] = e
	s.order = append(s.order, k)
	s.bytes += e.size
}

// drop removes k (its key left the set).
func (c *tokenCache) drop(k [32]byte) {
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

func (s *cacheShard) removeLocked(k [32]byte, e *cacheEntry) {
	delete(s.entries, k)
	s.bytes -= e.size
}

// evictOldestLocked removes the oldest live entry; order is compacted as it is consumed.
func (s *cacheShard) evictOldestLocked() bool {
	for len(s.order) > 0 {
		k := s.order[0]
		s.order[0] = [32]byte{}
		s.order = s.order[1:]
		if e := s.entries[k]; e != nil {
			s.removeLocked(k, e)
			return true
		}
	}
	return false
}

// estimate approximates the memory an entry holds.
func (id *identity) estimate() int64 {
	const overhead = 320 // entry, identity, map slot, order slot, slice headers
	n := int64(overhead + len(id.sub) + len(id.kid) + len(id.payload))
	for _, h := range id.headers {
		n += int64(len(h)) + 16
	}
	for k, v := range id.claims {
		n += int64(len(k)) + 48
		if s, ok := v.(string); ok {
			n += int64(len(s))
		}
	}
	return n
}
