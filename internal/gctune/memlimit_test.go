package gctune

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestDefaultMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		cache int64
		want  int64
	}{
		{name: "default cache (64 MiB)", cache: 64 << 20, want: 128 << 20},
		{name: "small cache", cache: 1 << 20, want: 33<<20 + 512<<10},
		{name: "no cache bound", cache: 0, want: math.MaxInt64},
	}
	for _, tc := range tests {
		if got := DefaultMemoryLimit(tc.cache); got != tc.want {
			t.Errorf("DefaultMemoryLimit(%d) = %d, want %d", tc.cache, got, tc.want)
		}
	}
}

// TestSetMemoryLimit: the derived limit is set when GOMEMLIMIT is not, and an operator's
// GOMEMLIMIT is left alone.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT") // t.Setenv restores it afterwards
	limit, set := SetMemoryLimit(64 << 20)
	if !set || limit != 128<<20 || debug.SetMemoryLimit(-1) != 128<<20 {
		t.Errorf("SetMemoryLimit(64 MiB) without GOMEMLIMIT = %d, %v; runtime limit %d; want 128 MiB set", limit, set, debug.SetMemoryLimit(-1))
	}

	debug.SetMemoryLimit(200 << 20) // as the runtime would have from GOMEMLIMIT=200MiB
	t.Setenv("GOMEMLIMIT", "200MiB")
	limit, set = SetMemoryLimit(64 << 20)
	if set || limit != 200<<20 || debug.SetMemoryLimit(-1) != 200<<20 {
		t.Errorf("SetMemoryLimit(64 MiB) with GOMEMLIMIT=200MiB = %d, %v; runtime limit %d; want 200 MiB untouched", limit, set, debug.SetMemoryLimit(-1))
	}
}
