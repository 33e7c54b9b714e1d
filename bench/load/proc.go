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
	// StealShare is the share of the whole machine's CPU time that the hypervisor gave to
	// other guests during the window (steal in /proc/stat): a VM's cores are not always its
	// own, and neither the load average nor /proc/PID shows it.
	StealShare float64 `json:"steal_share"`
	// Processes is the same for each server process, in the order of Options.ServerPIDs,
	// so that a run through Envoy can tell Envoy's share from its ext_authz server's.
	Processes []ProcessUsage `json:"processes,omitempty"`
}

// ProcessUsage is what one server process consumed during a measured window.
type ProcessUsage struct {
	PID int `json:"pid"`
	// Comm is the process's command name from /proc/PID/stat ("envoy", "jwt-authz").
	Comm            string  `json:"comm"`
	CPUPerRequestUS float64 `json:"cpu_per_request_us"`
	CPUShare        float64 `json:"cpu_share"`
	WaitShare       float64 `json:"wait_share"`
}

// procTimes is a reading of the CPU and run-queue wait times of one process.
type procTimes struct {
	comm      string
	cpu, wait time.Duration
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// readProcTimes reads, for each of pids, utime+stime from /proc/PID/stat and the run-queue
// wait of every thread from /proc/PID/task/TID/schedstat.
func readProcTimes(pids []int) ([]procTimes, error) {
	ts := make([]procTimes, len(pids))
	for i, pid := range pids {
		t := &ts[i]
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return ts, err
		}
		// The command name is parenthesised and may hold spaces: count fields after it.
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			return ts, fmt.Errorf("/proc/%d/stat: no command name", pid)
		}
		t.comm = s[open+1 : end]
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			return ts, fmt.Errorf("/proc/%d/stat: too few fields", pid)
		}
		for _, v := range f[11:13] { // utime, stime: fields 14 and 15 of the whole line
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ts, fmt.Errorf("/proc/%d/stat: %w", pid, err)
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
	return ts, nil
}

// cpuTimes is a reading of the machine's steal and total CPU time, in clock ticks.
type cpuTimes struct{ steal, total int64 }

// readCPUTimes reads the "cpu" line of /proc/stat: user nice system idle iowait irq
// softirq steal (guest time is already counted in user).
func readCPUTimes() (cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTimes
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t, nil
}

// share is the steal share of the CPU time between before and t; 0 when unknown.
func (t cpuTimes) share(before cpuTimes) float64 {
	if d := t.total - before.total; d > 0 && before.total > 0 {
		return float64(t.steal-before.steal) / float64(d)
	}
	return 0
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

// usage turns two readings of pids around a window into a Usage: their sum, and each apart.
// A process whose reading failed at either edge counts for nothing.
func usage(pids []int, before, after []procTimes, window time.Duration, requests int) *Usage {
	if window <= 0 {
		return nil
	}
	u := &Usage{}
	var cpu, wait time.Duration
	for i, pid := range pids {
		var b, a procTimes
		if i < len(before) && i < len(after) {
			b, a = before[i], after[i]
		}
		p := ProcessUsage{PID: pid, Comm: a.comm}
		p.CPUShare, p.WaitShare, p.CPUPerRequestUS = shares(a.cpu-b.cpu, a.wait-b.wait, window, requests)
		u.Processes = append(u.Processes, p)
		cpu += a.cpu - b.cpu
		wait += a.wait - b.wait
	}
	u.CPUShare, u.WaitShare, u.CPUPerRequestUS = shares(cpu, wait, window, requests)
	return u
}

// shares is CPU and wait time over the window's length, and CPU µs per request (0 without
// requests).
func shares(cpu, wait, window time.Duration, requests int) (cpuShare, waitShare, perRequestUS float64) {
	cpuShare = float64(cpu) / float64(window)
	waitShare = float64(wait) / float64(window)
	if requests > 0 {
		perRequestUS = float64(cpu) / float64(time.Microsecond) / float64(requests)
	}
	return cpuShare, waitShare, perRequestUS
}
