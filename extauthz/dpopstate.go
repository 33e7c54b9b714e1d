package extauthz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// nonces are stateless DPoP server nonces (RFC 9449 §8): a nonce is the number of its time
// window and an HMAC of it under a secret every replica shares, so any replica can check
// a nonce another made, without talking to it. A nonce is good in its window and the next
// one, so every nonce lives between one and two lifetimes.
type nonces struct {
	secrets  [][]byte // the first makes nonces; all are accepted
	lifetime time.Duration
}

func (n *nonces) window(now time.Time) uint64 { return uint64(now.UnixNano() / int64(n.lifetime)) }

func (n *nonces) make(secret []byte, w uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], w)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(dpopNonceContext))
	mac.Write(b[:8])
	copy(b[8:], mac.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// current is the nonce to hand out now.
func (n *nonces) current(now time.Time) string { return n.make(n.secrets[0], n.window(now)) }

// valid reports whether s is a nonce of this window or the previous one, under any secret.
func (n *nonces) valid(s string, now time.Time) bool {
	b, err := strictB64.DecodeString(s)
	if err != nil || len(b) != 24 {
		return false
	}
	w, cur := binary.BigEndian.Uint64(b[:8]), n.window(now)
	if w != cur && w+1 != cur {
		return false
	}
	for _, secret := range n.secrets {
		if hmac.Equal([]byte(n.make(secret, w)), []byte(s)) {
			return true
		}
	}
	return false
}

// maxSeenProofs bounds the per-replica replay memory. Proofs stay in it for max_age plus
// the clock skew (a minute and a half by default), so this holds over 1000 new proofs a
// second.
const maxSeenProofs = 100_000

// errSeenProofsFull: the replay memory is full of proofs still inside their window.
var errSeenProofsFull = errors.New("extauthz: DPoP replay memory full")

// seenProofs is the replay memory of one replica, used when no shared store is
// configured: a replay through another replica is not caught (docs/tokens.md).
type seenProofs struct {
	mu sync.Mutex
	m  map[string]int64 // key -> expiry, Unix ns
}

// firstUse records key until now+ttl and reports whether it was new. When full of live
// entries it fails (closed) rather than forget one, which would let its replay through.
func (s *seenProofs) firstUse(key string, now time.Time, ttl time.Duration) (bool, error) {
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int64{}
	}
	if exp, ok := s.m[key]; ok && exp > t {
		return false, nil
	}
	if len(s.m) >= maxSeenProofs {
		for k, exp := range s.m {
			if exp <= t {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxSeenProofs {
			return false, errSeenProofsFull
		}
	}
	s.m[key] = t + int64(ttl)
	return true, nil
}
