// Package load drives a request function for a bounded time and count, either at saturation
// (closed loop: each worker sends its next request as soon as the previous one answers) or
// at a fixed rate (open loop: requests are due on a schedule whether or not earlier ones have
// answered), and summarises what it saw. The load generators in bench/cmd use it against the
// ext_authz gRPC servers and against Envoy.
package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Call sends request number seq (0, 1, 2, ... across all workers) from worker w, which is in
// [0, Options.Workers), and returns when it has answered. An error means the request failed
// or was answered with something other than what the target should answer (a denial, a
// non-200): it is counted, not timed. Calls from different workers run concurrently; calls
// from one worker never do.
type Call func(ctx context.Context, w int, seq uint64) error

// Options bound and shape a run.
type Options struct {
	// Workers is the number of concurrent requests at most (streams, connections).
	Workers int
	// Warmup runs the same load for this long before anything is recorded.
	Warmup time.Duration
	// Duration is the length of the measured window.
	Duration time.Duration
	// Rate, when > 0, sends this many requests per second on a fixed schedule (open loop);
	// 0 means closed loop.
	Rate float64
	// MaxRequests, when > 0, ends the measured window after this many requests have been
	// sent, even before Duration.
	MaxRequests uint64
	// ServerPIDs, when set, are the processes serving the requests: the Result then says
	// how much CPU they used during the window (Linux /proc), together and each apart.
	ServerPIDs []int
}

// Result is what a run measured. Latencies of a closed loop run from send to answer. Those of
// an open loop run from the moment the schedule released the request, whether or not a worker
// was free to send it, so a server that falls behind is charged for the queueing it causes
// (no coordinated omission). Released, not due: Go's timers wake up to a millisecond late
// on an idle Linux P (epoll_wait counts milliseconds), which would otherwise be charged to
// every server alike and drown a 0.1 ms difference.
type Result struct {
	Mode       string  `json:"mode"` // "closed" or "open"
	Workers    int     `json:"workers"`
	TargetRate float64 `json:"target_rate,omitempty"`
	// Requests counts measured requests that succeeded; Errors those that failed.
	Requests   int    `json:"requests"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Late counts open-loop requests still waiting for a free worker when the run ended.
	Late    int     `json:"late,omitempty"`
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	Latency Summary `json:"latency"`
	// Server is what the ServerPIDs used during the window.
	Server *Usage `json:"server,omitempty"`
}

// drainGrace is how long an open-loop run waits for queued requests after its window.
const drainGrace = 2 * time.Second

// Run drives call as opts says and returns what it measured. It stops by itself: after
// Warmup+Duration (plus a short grace in open loop), after MaxRequests, or when ctx ends.
func Run(ctx context.Context, opts Options, call Call) (Result, error) {
	if opts.Workers <= 0 || opts.Duration <= 0 {
		return Result{}, errors.New("load: workers and duration must be positive")
	}
	var w window
	if len(opts.ServerPIDs) > 0 {
		if _, err := readProcTimes(opts.ServerPIDs); err != nil {
			return Result{}, fmt.Errorf("load: server processes: %w", err)
		}
		w.pids = opts.ServerPIDs
	}
	var res Result
	if opts.Rate > 0 {
		res = runOpen(ctx, opts, call, &w)
	} else {
		res = runClosed(ctx, opts, call, &w)
	}
	if w.pids != nil {
		res.Server = usage(w.pids, w.before, w.after, w.end.Sub(w.start), res.Requests)
		res.Server.StealShare = w.stealAfter.share(w.stealBefore)
	}
	return res, nil
}

// window takes the server readings at the edges of the measured window.
type window struct {
	pids                    []int
	start, end              time.Time
	before, after           []procTimes
	stealBefore, stealAfter cpuTimes
}

func (w *window) open() {
	w.start = time.Now()
	if w.pids != nil {
		w.before, _ = readProcTimes(w.pids)
		w.stealBefore, _ = readCPUTimes()
	}
}

func (w *window) close() {
	w.end = time.Now()
	if w.pids != nil {
		w.after, _ = readProcTimes(w.pids)
		w.stealAfter, _ = readCPUTimes()
	}
}

// recorder collects one worker's latencies and errors; workers never share one.
type recorder struct {
	lat      []time.Duration
	errors   int
	firstErr error
	last     time.Time // when the last recorded request ended
}

func (r *recorder) record(d time.Duration, err error) {
	r.last = time.Now()
	if err != nil {
		r.errors++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.lat = append(r.lat, d)
}

func merge(mode string, opts Options, recs []recorder, elapsed time.Duration) Result {
	res := Result{Mode: mode, Workers: opts.Workers, TargetRate: opts.Rate, Seconds: elapsed.Seconds()}
	var all []time.Duration
	for i := range recs {
		all = append(all, recs[i].lat...)
		res.Errors += recs[i].errors
		if res.FirstError == "" && recs[i].firstErr != nil {
			res.FirstError = recs[i].firstErr.Error()
		}
	}
	res.Requests = len(all)
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	res.Latency = Summarize(all)
	return res
}

func runClosed(ctx context.Context, opts Options, call Call, w *window) Result {
	var (
		seq       atomic.Uint64 // next request number
		sent      atomic.Uint64 // requests sent inside the window
		measuring atomic.Bool   // the window is open
		stop      atomic.Bool   // the window has closed
	)
	recs := make([]recorder, opts.Workers)
	var wg sync.WaitGroup
	for wk := range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := &recs[wk]
			for !stop.Load() && ctx.Err() == nil {
				n := seq.Add(1) - 1
				inWindow := measuring.Load()
				if opts.MaxRequests > 0 && inWindow && sent.Add(1) > opts.MaxRequests {
					return
				}
				start := time.Now()
				err := call(ctx, wk, n)
				// The window counts what completes inside it, wherever it started (the rate
				// of answers in a steady state); with a count, exactly the requests it sent.
				if measuring.Load() && !stop.Load() && (opts.MaxRequests == 0 || inWindow) {
					rec.record(time.Since(start), err)
				}
			}
		}()
	}
	sleepCtx(ctx, opts.Warmup)
	w.open()
	measuring.Store(true)
	start := time.Now()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-ctx.Done():
	case <-time.After(opts.Duration):
	case <-done: // MaxRequests reached
	}
	elapsed := time.Since(start)
	stop.Store(true)
	w.close()
	<-done
	return merge("closed", opts, recs, elapsed)
}

// job is one open-loop request: when the schedule released it, and whether it is measured.
type job struct {
	released time.Time
	measured bool
}

func runOpen(ctx context.Context, opts Options, call Call, w *window) Result {
	interval := time.Duration(float64(time.Second) / opts.Rate)
	total := opts.Warmup + opts.Duration
	queued := int(opts.Rate*total.Seconds()) + 1
	jobs := make(chan job, min(queued, 1<<22))
	recs := make([]recorder, opts.Workers)
	var (
		seq      atomic.Uint64
		deadline atomic.Int64 // unix ns after which queued jobs are abandoned
		late     atomic.Int64
	)
	deadline.Store(time.Now().Add(total + drainGrace).UnixNano())
	var wg sync.WaitGroup
	for wk := range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := &recs[wk]
			for j := range jobs {
				if ctx.Err() != nil || time.Now().UnixNano() > deadline.Load() {
					if j.measured {
						late.Add(1)
					}
					continue
				}
				err := call(ctx, wk, seq.Add(1)-1)
				if j.measured {
					rec.record(time.Since(j.released), err)
				}
			}
		}()
	}

	// The schedule is absolute (start + i*interval), so a late wake-up does not shift the
	// requests after it: they are released together, and the rate holds.
	start := time.Now()
	measureAt := start.Add(opts.Warmup)
	end := start.Add(total)
	sent := uint64(0)
	for i := 0; ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		measured := !due.Before(measureAt)
		if measured && sent == 0 {
			w.open()
		}
		if measured {
			if opts.MaxRequests > 0 && sent >= opts.MaxRequests {
				break
			}
			sent++
		}
		jobs <- job{released: time.Now(), measured: measured}
	}
	close(jobs)
	wg.Wait()
	w.close() // after the last answer, which the rate below also counts
	// The rate achieved: answers over the time from the window's start to the later of its
	// end and the last answer, so a server that fell behind and answered during the grace
	// period is not credited with the target rate.
	windowEnd := end
	if opts.MaxRequests > 0 && sent < uint64(opts.Rate*opts.Duration.Seconds()) {
		windowEnd = measureAt.Add(time.Duration(float64(sent) / opts.Rate * float64(time.Second)))
	}
	for i := range recs {
		if recs[i].last.After(windowEnd) {
			windowEnd = recs[i].last
		}
	}
	res := merge("open", opts, recs, windowEnd.Sub(measureAt))
	res.Late = int(late.Load())
	if res.Late > 0 && res.FirstError == "" {
		res.FirstError = fmt.Sprintf("%d requests still queued %v after the window", res.Late, drainGrace)
	}
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
