package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarises a set of latencies, in milliseconds (JSON-friendly and
// what the tables show).
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Mean float64 `json:"mean_ms"`
	Max  float64 `json:"max_ms"`
}

// Summarize computes the summary of ds (which it does not modify). An empty
// set gives a zero Latency.
func Summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{
		N:    len(s),
		P50:  ms(percentile(s, 50)),
		P95:  ms(percentile(s, 95)),
		P99:  ms(percentile(s, 99)),
		Mean: ms(sum / time.Duration(len(s))),
		Max:  ms(s[len(s)-1]),
	}
}

// percentile is the nearest-rank percentile of sorted s: the smallest value
// with at least p% of the values at or below it. Nearest rank never
// invents a value that was not measured, which matters for p99 of a few
// hundred samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

// round rounds x to the given decimals, so that the JSON does not carry
// float noise the measurement cannot support.
func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// Ratio is a/b rounded to three decimals, or 0 when b is 0 (no baseline).
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 3)
}
