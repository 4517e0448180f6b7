package sergasctl

import (
	"slices"
	"time"
)

// benchRun is one run of one operation: its latencies in ms.
type benchRun struct {
	Count int     `json:"count"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// summarise makes a run of the latencies d (not empty).
func summarise(d []time.Duration) benchRun {
	ms := make([]float64, len(d))
	var sum float64
	for i, x := range d {
		ms[i] = float64(x) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return benchRun{Count: len(ms), Min: ms[0], P50: quantile(ms, 0.50), P99: quantile(ms, 0.99), Max: ms[len(ms)-1], Mean: sum / float64(len(ms))}
}

// quantile is the nearest-rank quantile q of sorted (not empty): the smallest value with at least q of
// the values at or below it.
func quantile(sorted []float64, q float64) float64 {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// spread is the median of a figure over the runs, with its range, as the README's tables give it.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(runs []benchRun, f func(benchRun) float64) spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{Median: m, Min: v[0], Max: v[len(v)-1]}
}
