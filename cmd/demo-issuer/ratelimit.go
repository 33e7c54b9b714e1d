package main

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (a username or a client address). Each
// bucket holds up to perMinute tokens and refills at perMinute per minute, so a burst of
// perMinute attempts is allowed and then one every 60s/perMinute. It is safe for
// concurrent use.
type limiter struct {
	perMinute float64 // 0 disables the limiter
	now       func() time.Time
	// maxKeys bounds memory: every distinct username an attacker invents is a key.
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute int, now func() time.Time) *limiter {
	return &limiter{
		perMinute: float64(perMinute),
		now:       now,
		maxKeys:   100_000,
		buckets:   make(map[string]*bucket),
	}
}

// allow takes one token from key's bucket. When the bucket is empty it returns false and
// how long until a token is back, for Retry-After.
func (l *limiter) allow(key string) (ok bool, retryAfter time.Duration) {
	if l.perMinute <= 0 {
		return true, 0
	}
	rate := l.perMinute / float64(time.Minute) // tokens per nanosecond
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now, rate)
		}
		if len(l.buckets) >= l.maxKeys {
			// Still full of active keys: refuse rather than grow without bound. A login
			// service under that much pressure is being attacked; failing closed is right.
			return false, time.Minute
		}
		b = &bucket{tokens: l.perMinute, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.perMinute, b.tokens+float64(elapsed)*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / rate))
}

// sweep forgets buckets that have refilled completely: they are indistinguishable from
// new ones. Called with l.mu held.
func (l *limiter) sweep(now time.Time, rate float64) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.last))*rate >= l.perMinute {
			delete(l.buckets, k)
		}
	}
}

// retryAfterSeconds renders d for the Retry-After header (RFC 9110 §10.2.3): whole
// seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientKey identifies the client of r for per-address limits.
//
// X-Forwarded-For is believed only when the direct peer is one of the trusted proxies,
// and then only its last hop: that is the address the proxy itself saw (Envoy appends it
// with use_remote_address), while every earlier hop is whatever the client chose to send.
// By default nothing is trusted and the peer address is the key. Behind Envoy that means
// all clients share Envoy's budget (-ip-limit per minute), which is enough for a demo and
// cannot be gamed; the per-username limit still stops password guessing. Trusting XFF by
// default would instead let anyone who reaches the issuer directly pick a fresh key per
// request. Pass -trusted-proxies with Envoy's network to get per-client limits.
//
// IPv6 clients are keyed by their /64: one host usually owns a whole /64.
func clientKey(r *http.Request, trusted []netip.Prefix) string {
	peer := addrOf(r.RemoteAddr)
	addr := peer
	if peer.IsValid() && containsAddr(trusted, peer) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			hops := strings.Split(xff[len(xff)-1], ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1])); err == nil {
				addr = a.Unmap().WithZone("")
			}
		}
	}
	if !addr.IsValid() {
		return r.RemoteAddr // not TCP (tests, unix sockets): still a stable key
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func addrOf(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePrefixes parses a comma-separated list of CIDRs or bare addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
