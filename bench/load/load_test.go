package load

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// These exercise the runner with an in-memory call: no server, no network, a few
// milliseconds each. They check counting, not timing.

func TestRunClosedMaxRequests(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Options{Workers: 4, Duration: 10 * time.Second, MaxRequests: 50},
		func(context.Context, int, uint64) error { calls.Add(1); return nil })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Mode != "closed" || res.Requests != 50 || res.Errors != 0 {
		t.Errorf("Run(closed, MaxRequests 50) = mode %q, %d requests, %d errors; want closed, 50, 0", res.Mode, res.Requests, res.Errors)
	}
	if res.Seconds >= 10 {
		t.Errorf("Run(closed, MaxRequests 50) took the whole duration (%vs), want it to stop at the count", res.Seconds)
	}
}

func TestRunCountsErrors(t *testing.T) {
	boom := errors.New("denied")
	res, err := Run(context.Background(), Options{Workers: 2, Duration: time.Second, MaxRequests: 20},
		func(_ context.Context, _ int, seq uint64) error {
			if seq%2 == 0 {
				return boom
			}
			return nil
		})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Requests+res.Errors != 20 || res.Errors == 0 || res.FirstError != "denied" {
		t.Errorf("Run(half failing) = %d ok, %d errors, first %q; want 20 in all, some errors, first \"denied\"",
			res.Requests, res.Errors, res.FirstError)
	}
	if res.Latency.Count != res.Requests {
		t.Errorf("Run(half failing) timed %d requests, want only the %d that succeeded", res.Latency.Count, res.Requests)
	}
}

func TestRunOpenFollowsTheSchedule(t *testing.T) {
	// 2000/s for 50 ms is 100 requests due, whatever the timers do.
	res, err := Run(context.Background(), Options{Workers: 4, Duration: 50 * time.Millisecond, Rate: 2000},
		func(context.Context, int, uint64) error { return nil })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Mode != "open" || res.Requests != 100 || res.Late != 0 {
		t.Errorf("Run(open, 2000/s, 50ms) = mode %q, %d requests, %d late; want open, 100, 0", res.Mode, res.Requests, res.Late)
	}
}

func TestRunRejectsEmptyOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{}, func(context.Context, int, uint64) error { return nil }); err == nil {
		t.Error("Run(Options{}) = nil error, want an error")
	}
}
