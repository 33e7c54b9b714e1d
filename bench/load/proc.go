package load

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what server processes consumed during a measured window, from /proc. On a machine
// shared with other work the rate a server reaches depends on how much of its core it got;
// its CPU time per request does not, or much less, so the report shows both.
type Usage struct {
	// CPUPerRequestUS is the servers' user+system CPU time per successful request.
	CPUPerRequestUS float64 `json:"cpu_per_request_us"`
	// CPUShare is their CPU time over the window's length: 1.0 is one core busy throughout.
	CPUShare float64 `json:"cpu_share"`
	// WaitShare is the time their threads spent runnable but waiting for a CPU, over the
	// window's length: what other processes on the same core cost them.
	WaitShare float64 `json:"wait_share"`
}

// procTimes is a reading of the CPU and run-queue wait times of a set of processes.
type procTimes struct{ cpu, wait time.Duration }

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// readProcTimes sums, over pids, utime+stime from /proc/PID/stat and the run-queue wait of
// every thread from /proc/PID/task/TID/schedstat.
func readProcTimes(pids []int) (procTimes, error) {
	var t procTimes
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return t, err
		}
		// The command name is parenthesised and may hold spaces: count fields after it.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return t, fmt.Errorf("/proc/%d/stat: too few fields", pid)
		}
		for _, v := range f[11:13] { // utime, stime: fields 14 and 15 of the whole line
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return t, fmt.Errorf("/proc/%d/stat: %w", pid, err)
			}
			t.cpu += time.Duration(n) * clockTick
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, path := range tasks {
			data, err := os.ReadFile(path)
			if err != nil {
				continue // the thread ended
			}
			// "run_ns wait_ns timeslices"
			if f := strings.Fields(string(data)); len(f) >= 2 {
				if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					t.wait += time.Duration(n)
				}
			}
		}
	}
	return t, nil
}

// ParsePIDs parses a comma-separated list of process ids; "" is none.
func ParsePIDs(s string) ([]int, error) {
	var pids []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// usage turns two readings around a window into a Usage.
func usage(before, after procTimes, window time.Duration, requests int) *Usage {
	if window <= 0 {
		return nil
	}
	u := &Usage{
		CPUShare:  float64(after.cpu-before.cpu) / float64(window),
		WaitShare: float64(after.wait-before.wait) / float64(window),
	}
	if requests > 0 {
		u.CPUPerRequestUS = float64(after.cpu-before.cpu) / float64(time.Microsecond) / float64(requests)
	}
	return u
}
