// Package gctune paces the garbage collector for a server whose live heap is small next to
// what it allocates per request.
//
// With the default GOGC=100 the runtime collects whenever the heap has grown by as much as
// is live, and never waits for less than 4 MiB. jwt-authz lives in a few MiB and allocates
// several KiB per uncached check, so it collected every few hundred requests, and on one
// core the collector took a large share of the CPU (docs/benchmarks.md compares). With a
// big live heap (a full token cache) the opposite matters: headroom is resident memory.
//
// So after each collection the tuner aims the next one at max(Floor, Ratio × live heap):
// GOGC is high while the heap is small (a 4 MiB heap collects at 24 MiB instead of 8) and
// falls to 25 as it grows (100k cached tokens stay within 64 MiB resident). An operator's
// GOGC wins: when it is set the tuner does nothing. GOMEMLIMIT works as usual on top, and
// when it is unset SetMemoryLimit (memlimit.go) derives a soft limit from the cache's bound.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const (
	// Floor is the heap size below which the next collection is not started.
	Floor = 24 << 20
	// Ratio is the heap growth over the live heap allowed above Floor.
	Ratio = 1.25
	// minPercent and maxPercent bound the GOGC the tuner sets.
	minPercent, maxPercent = 25, 1000
)

// Tuner adjusts GOGC after every collection. Stop it with Stop.
type Tuner struct {
	mu      sync.Mutex
	stopped bool
	percent int
	runs    int // adjustments made, one per collection
	samples []metrics.Sample
}

// Start begins tuning, unless the environment sets GOGC; it returns nil then.
func Start() *Tuner {
	if _, set := os.LookupEnv("GOGC"); set {
		return nil
	}
	t := &Tuner{samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/gc/scan/stack:bytes"},
	}}
	t.adjust()
	t.arm()
	return t
}

// Percent is the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Runs is how many times GOGC was set: once at Start and once after each collection.
func (t *Tuner) Runs() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs
}

// Stop ends tuning and restores GOGC=100.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(100)
}

// arm sets a finalizer on a fresh object: it runs after the next collection that finds
// the object unreachable, that is, once per collection.
func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t}, func(s *sentinel) {
		if s.t.adjust() {
			s.t.arm()
		}
	})
}

type sentinel struct{ t *Tuner }

// adjust sets GOGC for the next collection; false once stopped.
func (t *Tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.runs++
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	// The runtime's goal is live + (live + globals + stacks) × GOGC/100.
	roots := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	p := PercentFor(live, roots)
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// PercentFor is the GOGC that puts the next collection at max(Floor, Ratio × live), for
// the runtime's rule that the goal is live + scannable × GOGC/100.
func PercentFor(live, scannable uint64) int {
	if scannable == 0 {
		return maxPercent
	}
	goal := max(float64(Floor), Ratio*float64(live))
	p := int((goal - float64(live)) * 100 / float64(scannable))
	return min(max(p, minPercent), maxPercent)
}
