package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name            string
		live, scannable uint64
		want            int
	}{
		{"small heap waits for the floor", 4 * mib, 6 * mib, 333},              // (24-4)/6
		{"tiny heap is capped", 1 * mib, 1 * mib, maxPercent},                  // (24-1)/1 = 2300
		{"heap at the floor gets the minimum", 24 * mib, 26 * mib, minPercent}, // 0
		{"big heap grows by a quarter", 80 * mib, 82 * mib, minPercent},        // 24%: clamped to 25
		{"no scannable bytes yet", 0, 0, maxPercent},
	}
	for _, tc := range tests {
		if got := PercentFor(tc.live, tc.scannable); got != tc.want {
			t.Errorf("%s: PercentFor(%d, %d) = %d, want %d", tc.name, tc.live, tc.scannable, got, tc.want)
		}
	}
}

// TestStart: without GOGC the tuner sets GOGC after each collection; with it, it stays out.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "100")
	if tu := Start(); tu != nil {
		t.Fatal("Start tuned although GOGC is set")
	}
	os.Unsetenv("GOGC") // t.Setenv restores it afterwards
	tu := Start()
	if tu == nil {
		t.Fatal("Start returned nil without GOGC")
	}
	defer tu.Stop()
	garbage := make([][]byte, 0, 1024)
	for range 1024 {
		garbage = append(garbage, make([]byte, 1024))
	}
	runtime.KeepAlive(garbage)
	// Finalizers run asynchronously after a cycle: collect until the tuner has run again.
	deadline := time.Now().Add(10 * time.Second)
	for tu.Runs() < 3 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := tu.Runs(); n < 3 {
		t.Fatalf("the tuner ran %d times over many collections, want once per collection", n)
	}
	p := tu.Percent()
	if p < minPercent || p > maxPercent {
		t.Fatalf("Percent() = %d, want within [%d, %d]", p, minPercent, maxPercent)
	}
	if got := debug.SetGCPercent(p); got != p {
		t.Fatalf("runtime GOGC = %d, tuner says %d", got, p)
	}
	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("after Stop GOGC = %d, want 100", got)
	}
}
