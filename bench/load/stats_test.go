package load

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Microsecond // 1..100 µs
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Microsecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Microsecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Microsecond},
		{"p100 is the max", hundred, 100, 100 * time.Microsecond},
		{"tiny p is the min", hundred, 0.001, 1 * time.Microsecond},
		{"nearest rank rounds up", []time.Duration{1, 2, 3}, 50, 2},
		{"never interpolates", []time.Duration{10, 20}, 75, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one slow round", []float64{100, 98, 20}, 98},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.xs...)
			if got := Median(tt.xs); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", in, got, tt.want)
			}
			if diff := cmp.Diff(in, tt.xs); diff != "" {
				t.Errorf("Median modified its input (-before +after):\n%s", diff)
			}
		})
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	ds := []time.Duration{5 * time.Microsecond, 1 * time.Microsecond, 3 * time.Microsecond, 2 * time.Microsecond, 4 * time.Microsecond}
	want := Summary{Count: 5, MinUS: 1, MeanUS: 3, P50US: 3, P90US: 5, P99US: 5, MaxUS: 5}
	if diff := cmp.Diff(want, Summarize(ds)); diff != "" {
		t.Errorf("Summarize(1..5 µs) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Summary{}, Summarize(nil)); diff != "" {
		t.Errorf("Summarize(nil) mismatch (-want +got):\n%s", diff)
	}
}

func TestUsage(t *testing.T) {
	before := []procTimes{{comm: "jwt-authz", cpu: 1 * time.Second, wait: 100 * time.Millisecond}}
	after := []procTimes{{comm: "jwt-authz", cpu: 1500 * time.Millisecond, wait: 350 * time.Millisecond}}
	got := usage([]int{10}, before, after, time.Second, 10000)
	want := &Usage{CPUPerRequestUS: 50, CPUShare: 0.5, WaitShare: 0.25,
		Processes: []ProcessUsage{{PID: 10, Comm: "jwt-authz", CPUPerRequestUS: 50, CPUShare: 0.5, WaitShare: 0.25}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage(1s cpu -> 1.5s, 10000 requests in 1s) mismatch (-want +got):\n%s", diff)
	}
}

func TestUsageSplitsProcesses(t *testing.T) {
	before := []procTimes{{comm: "envoy", cpu: 1 * time.Second}, {comm: "jwt-authz", cpu: 2 * time.Second}}
	after := []procTimes{
		{comm: "envoy", cpu: 1300 * time.Millisecond, wait: 100 * time.Millisecond},
		{comm: "jwt-authz", cpu: 2100 * time.Millisecond},
	}
	got := usage([]int{10, 20}, before, after, time.Second, 1000)
	want := &Usage{
		CPUPerRequestUS: 400, CPUShare: 0.4, WaitShare: 0.1,
		Processes: []ProcessUsage{
			{PID: 10, Comm: "envoy", CPUPerRequestUS: 300, CPUShare: 0.3, WaitShare: 0.1},
			{PID: 20, Comm: "jwt-authz", CPUPerRequestUS: 100, CPUShare: 0.1},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("usage(envoy +300ms, jwt-authz +100ms, 1000 requests in 1s) mismatch (-want +got):\n%s", diff)
	}
}

func TestReadProcTimesSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pt, err := readProcTimes([]int{os.Getpid()})
	if err != nil {
		t.Fatalf("readProcTimes(self): %v", err)
	}
	if len(pt) != 1 || pt[0].cpu < 0 || pt[0].wait < 0 || pt[0].comm == "" {
		t.Errorf("readProcTimes(self) = %+v, want one reading with a command name and non-negative times", pt)
	}
}

func TestReadCPUTimes(t *testing.T) {
	a, err := readCPUTimes()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	b, err := readCPUTimes()
	if err != nil {
		t.Fatal(err)
	}
	if a.total <= 0 || a.steal < 0 || a.steal > a.total || b.total < a.total {
		t.Fatalf("readings %+v then %+v", a, b)
	}
	if s := b.share(a); s < 0 || s > 1 {
		t.Fatalf("steal share %v", s)
	}
	if s := b.share(cpuTimes{}); s != 0 {
		t.Fatalf("share against no reading = %v, want 0", s)
	}
}
