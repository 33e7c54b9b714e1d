package main

/*
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

// yield_due answers true at most once per interval_ns on each thread: each Envoy worker
// thread keeps its own clock here, in C thread-local storage (Go cannot tell threads apart).
static bool yield_due(int64_t interval_ns) {
	static __thread int64_t last;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (now - last < interval_ns) {
		return false;
	}
	last = now;
	return true;
}
*/
import "C"

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// Envoy's worker threads are threads Go did not start. Each call into the module takes a P
// (one of Go's GOMAXPROCS scheduling slots) and, back in Envoy's code, keeps it in the state
// Go gives a thread in a system call. Go's sysmon thread watches such Ps, on the workers'
// own cores, and two things made it wake thousands of times a second there:
//
//   - With no P idle, it takes a P back from a thread in a system call after 20 µs, then
//     polls every 20 µs; and the worker waits for a P on its next call. Envoy pinned to one
//     core has GOMAXPROCS 1 by default. So the module keeps one P more than Envoy's workers
//     (ensureProcs), unless the operator sets GOMAXPROCS.
//   - A P whose goroutine has not been rescheduled for 10 ms is preempted and taken back,
//     and each time sysmon starts polling every 20 µs again. A worker's calls never
//     reschedule its goroutine, so this came every 10 ms. So each worker yields its P once
//     every 5 ms (yieldIfDue): one trip through Go's scheduler, and sysmon backs off to 10 ms.
//
// Measured with Envoy on one pinned core, one cached token (busy machine, A/B in one run):
// docs/in-process.md, "Speed".

// procsMu serialises the adjustment of GOMAXPROCS by filter configs.
var procsMu sync.Mutex

// ensureProcs raises GOMAXPROCS to workers+1 unless the environment sets it; it answers the
// value in force.
func ensureProcs(workers int) int {
	procsMu.Lock()
	defer procsMu.Unlock()
	current := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" || current > workers {
		return current
	}
	runtime.GOMAXPROCS(workers + 1)
	return workers + 1
}

// yieldInterval is half of the 10 ms after which Go's sysmon preempts a P that has run the
// same goroutine throughout.
const yieldInterval = 5 * time.Millisecond

// yieldIfDue, called on an Envoy worker thread inside a hook, reschedules the thread's
// goroutine if it has not been for yieldInterval.
func yieldIfDue() {
	if C.yield_due(C.int64_t(yieldInterval)) {
		runtime.Gosched()
	}
}
