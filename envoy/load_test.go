package envoy

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"
)

// load is closed-loop traffic through the stack's Envoy: a few clients, each sending
// GET /api/things with its current token and the next request only once the answer is in.
// Every token is valid, so every answer must be the upstream's 200; anything else (a
// denial, a 503, a reset connection) is a failure, counted and described.
type load struct {
	s      *stack
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	counts   loadCounts
	failures []string // the first few failures, described
}

// loadCounts is what a load has done so far.
type loadCounts struct {
	Requests, Allowed, Failed int
	Logins, LoginErrors       int
	ByKID                     map[string]int // allowed requests by the kid of their token
}

// sub returns what happened between before and c.
func (c loadCounts) sub(before loadCounts) loadCounts {
	d := loadCounts{Requests: c.Requests - before.Requests, Allowed: c.Allowed - before.Allowed,
		Failed: c.Failed - before.Failed, Logins: c.Logins - before.Logins,
		LoginErrors: c.LoginErrors - before.LoginErrors, ByKID: map[string]int{}}
	for kid, n := range c.ByKID {
		if n > before.ByKID[kid] {
			d.ByKID[kid] = n - before.ByKID[kid]
		}
	}
	return d
}

// loadUsers are the accounts the clients log in as, in turn.
var loadUsers = []struct{ name, password string }{{"alice", "alice-password"}, {"admin", "admin-password"}}

// startLoad starts clients that each log in through Envoy, then call the API until stop;
// with relogin > 0 they log in again that often, so the tokens they carry follow the
// issuer's signing key. The load is stopped when the test ends, if not before.
func (s *stack) startLoad(t *testing.T, clients int, relogin time.Duration) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{s: s, cancel: cancel, counts: loadCounts{ByKID: map[string]int{}}}
	for i := range clients {
		u := loadUsers[i%len(loadUsers)]
		l.wg.Go(func() { l.client(ctx, u.name, u.password, relogin) })
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) client(ctx context.Context, user, password string, relogin time.Duration) {
	var (
		token    string
		loggedIn time.Time
	)
	for ctx.Err() == nil {
		if token == "" || relogin > 0 && time.Since(loggedIn) >= relogin {
			tok, err := l.s.accessToken(user, password)
			l.record(func(c *loadCounts) (string, bool) {
				c.Logins++
				if err != nil {
					c.LoginErrors++
					return err.Error(), false
				}
				return "", true
			})
			if err == nil {
				token, loggedIn = tok, time.Now()
			} else if token == "" {
				time.Sleep(100 * time.Millisecond) // the issuer's trouble is reported; do not spin
				continue
			}
		}
		// The request is not tied to ctx: stopping the load lets it finish, so stopping
		// is never counted as a failure.
		r, err := l.s.send("GET", "/api/things", http.Header{"Authorization": {"Bearer " + token}}, "")
		kid := kidOf(token)
		l.record(func(c *loadCounts) (string, bool) {
			c.Requests++
			switch {
			case err != nil:
				c.Failed++
				return fmt.Sprintf("%s (%s, kid %s)", err, user, kid), false
			case r.status != http.StatusOK || !r.isEcho():
				c.Failed++
				return fmt.Sprintf("GET /api/things (%s, kid %s) = %d %s, want 200 from the upstream", user, kid, r.status, clip(r.body)), false
			}
			c.Allowed++
			c.ByKID[kid]++
			return "", true
		})
	}
}

// record updates the counts with count, which says what went wrong, if anything.
func (l *load) record(count func(*loadCounts) (failure string, ok bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure, ok := count(&l.counts); !ok && len(l.failures) < 10 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000 ")+failure)
	}
}

// snapshot returns the counts so far.
func (l *load) snapshot() loadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts
	c.ByKID = maps.Clone(c.ByKID)
	return c
}

// stop ends the load and returns its counts once every client has had its last answer.
func (l *load) stop() loadCounts {
	l.cancel()
	l.wg.Wait()
	return l.snapshot()
}

// check reports every failure of the load: a request with a valid token that was not
// allowed, or a login that did not work.
func (l *load) check(t *testing.T) {
	t.Helper()
	c := l.snapshot()
	if c.Failed == 0 && c.LoginErrors == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Errorf("%d of %d requests with a valid token failed, and %d of %d logins; the first:", c.Failed, c.Requests, c.LoginErrors, c.Logins)
	for _, f := range l.failures {
		t.Errorf("  %s", f)
	}
}

// waitUntil waits, at most 30s, until the counts satisfy cond.
func (l *load) waitUntil(t *testing.T, what string, cond func(loadCounts) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(l.snapshot()) {
		if time.Now().After(deadline) {
			l.check(t)
			t.Fatalf("load: %s: not after 30s (%+v)", what, l.snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
