package load

import (
	"math"
	"slices"
	"time"
)

// Summary describes a set of latencies. Durations are in microseconds so that the JSON the
// load generators print reads without unit conversions.
type Summary struct {
	Count  int     `json:"count"`
	MinUS  float64 `json:"min_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	MaxUS  float64 `json:"max_us"`
}

// Summarize sorts ds in place and summarises it. An empty slice gives a zero Summary.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Summary{
		Count:  len(ds),
		MinUS:  us(ds[0]),
		MeanUS: us(sum / time.Duration(len(ds))),
		P50US:  us(Percentile(ds, 50)),
		P90US:  us(Percentile(ds, 90)),
		P99US:  us(Percentile(ds, 99)),
		MaxUS:  us(ds[len(ds)-1]),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank
// method: the smallest value such that at least p% of the values are at or below it. It
// never interpolates, so the answer is always a latency that was actually observed.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Median returns the median of xs (the mean of the two middle values for an even count),
// without modifying xs. It is how rounds are combined: one slow round moves it less than
// it moves a mean.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
