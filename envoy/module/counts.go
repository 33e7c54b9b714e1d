package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwt-authz/jwt-authz/extauthz"
)

// flushInterval is how often the decision counts reach Envoy's stats: /stats lags by at
// most this (Envoy's own stats sinks flush every 5 s by default).
const flushInterval = 500 * time.Millisecond

// decisionCounts counts a filter config's decisions by (decision, reason) in Go and adds them
// to Envoy's labelled counter on Envoy's main thread, every flushInterval. Envoy 1.40's
// labelled increment_counter turns the label values into a stat name on every call, which
// cost a worker about 2 µs per request (measured: docs/in-process.md, "Speed"); an atomic
// add costs nanoseconds. The counter's name and tags in /stats are the same either way.
type decisionCounts struct {
	config uintptr // Envoy's filter config, for the config-level callbacks
	id     uint    // the labelled counter, defined on config
	// known counts each reason of extauthz.Reasons as deny [0] and allow [1],
	// read-only after construction; other reasons go to more.
	known map[extauthz.Reason]*[2]atomic.Uint64
	more  sync.Map    // countKey → *atomic.Uint64
	dirty atomic.Bool // a count was added since the last flush began

	mu        sync.Mutex
	scheduler uintptr // Envoy's config scheduler, made on the first tick that needs one
	closed    bool
	stop      chan struct{}
	stopped   chan struct{}
}

type countKey struct {
	allowed bool
	reason  extauthz.Reason
}

func newDecisionCounts(config uintptr, id uint) *decisionCounts {
	c := &decisionCounts{config: config, id: id, known: map[extauthz.Reason]*[2]atomic.Uint64{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	for _, r := range extauthz.Reasons {
		c.known[r] = new([2]atomic.Uint64)
	}
	go c.tick()
	return c
}

// add counts one decision; any thread.
func (c *decisionCounts) add(allowed bool, reason extauthz.Reason) {
	if n, ok := c.known[reason]; ok {
		i := 0
		if allowed {
			i = 1
		}
		n[i].Add(1)
	} else {
		k := countKey{allowed, reason}
		v, ok := c.more.Load(k)
		if !ok {
			v, _ = c.more.LoadOrStore(k, new(atomic.Uint64))
		}
		v.(*atomic.Uint64).Add(1)
	}
	if !c.dirty.Load() { // a store on every request would contend between workers
		c.dirty.Store(true)
	}
}

// tick asks Envoy, every flushInterval in which something was counted, to run flush on its
// main thread (the config scheduler: a commit from any thread, the event on the main one,
// dropped by Envoy if the filter config is gone by then).
func (c *decisionCounts) tick() {
	defer close(c.stopped)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if !c.dirty.Load() {
			continue
		}
		c.mu.Lock()
		if !c.closed {
			if c.scheduler == 0 {
				// Made here, not in the config hook: Envoy's filter config is not yet
				// shared when the module builds its own, and the scheduler holds a weak
				// reference to it.
				c.scheduler = newConfigScheduler(c.config)
			}
			commitConfigScheduler(c.scheduler, 0)
		}
		c.mu.Unlock()
	}
}

// flush adds the counts to Envoy's counter; main thread only (the config-scheduled and
// config-destroy hooks).
func (c *decisionCounts) flush() {
	c.dirty.Store(false) // before the swaps: a count added after its swap marks the next flush
	var labels labelValues
	hand := func(allowed bool, reason extauthz.Reason, n uint64) {
		if n == 0 {
			return
		}
		decision := "deny"
		if allowed {
			decision = "allow"
		}
		configIncrementCounter2(c.config, c.id, &labels, decision, string(reason), n)
	}
	for _, r := range extauthz.Reasons {
		n := c.known[r]
		hand(false, r, n[0].Swap(0))
		hand(true, r, n[1].Swap(0))
	}
	c.more.Range(func(k, v any) bool {
		key := k.(countKey)
		hand(key.allowed, key.reason, v.(*atomic.Uint64).Swap(0))
		return true
	})
}

// close stops the ticks and hands Envoy what is left; main thread only (the config-destroy
// hook, while Envoy's filter config and its counters are still there).
func (c *decisionCounts) close() {
	close(c.stop)
	<-c.stopped
	c.mu.Lock()
	c.closed = true
	sched := c.scheduler
	c.scheduler = 0
	c.mu.Unlock()
	c.flush()
	if sched != 0 {
		deleteConfigScheduler(sched)
	}
}
