package main

import (
	"os"
	"runtime"
	"sync"
)

// Envoy's worker threads are threads Go did not start. Each call into the module takes a P
// (one of Go's GOMAXPROCS scheduling slots) and, back in Envoy's code, keeps it in the state
// Go gives a thread in a system call. When no P is idle, Go's sysmon thread takes such a P
// back after 20 µs and then wakes every 20 µs to look again, on the workers' own cores; and a
// worker whose P was taken waits for one on its next call. Measured with Envoy on one pinned
// core (GOMAXPROCS 1 by default there): 70 µs of Envoy CPU per cached request, a Go thread
// waking about 9,000 times a second; with one P more than the workers, 48 µs.
//
// So the module keeps at least one P more than Envoy has workers, and never fewer than Go's
// own default. An operator's GOMAXPROCS is left alone.

// procsMu serialises the adjustment: filter configs load on Envoy's main thread, but the
// library may be loaded more than once in tests.
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
