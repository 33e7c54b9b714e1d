//go:build jwtauthz_stubs

package main

import (
	"sync"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/extauthz"
)

// TestDecisionCounts: counts added on many threads while flushes run reach Envoy's counter
// exactly once each, under their labels; close hands over the rest; a tick asks for a flush
// only when something was counted.
func TestDecisionCounts(t *testing.T) {
	const config = 0x5eed // no other test's filter config
	watchConfig(config)
	c := newDecisionCounts(config, 0)
	const workers, each = 8, 5000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				switch {
				case w%2 == 0:
					c.add(true, extauthz.ReasonAllowed)
				case i%2 == 0:
					c.add(false, extauthz.ReasonMissingToken)
				default:
					c.add(false, extauthz.ReasonScope)
				}
			}
		}()
	}
	flushing := make(chan struct{})
	go func() {
		defer close(flushing)
		for range 200 {
			c.flush()
		}
	}()
	wg.Wait()
	<-flushing

	c.add(true, extauthz.ReasonAllowed)
	before := commits()
	time.Sleep(3 * flushInterval)
	if commits() == before {
		t.Errorf("no flush asked for in %v with counts pending", 3*flushInterval)
	}
	c.flush()
	idle := commits()
	time.Sleep(3 * flushInterval)
	if n := commits() - idle; n != 0 {
		t.Errorf("%d flushes asked for with nothing counted", n)
	}
	c.add(false, extauthz.ReasonMissingToken)
	c.add(true, "not_a_known_reason") // counted too, under its own label
	c.close()

	got := takeCounted()
	want := map[string]uint64{
		"allow/allowed":            workers/2*each + 1,
		"deny/missing_token":       workers/2*each/2 + 1,
		"deny/insufficient_scope":  workers / 2 * each / 2,
		"allow/not_a_known_reason": 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("counter %s = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counters %v, want only %v", got, want)
	}
}
