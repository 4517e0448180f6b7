package main

import (
	"slices"
	"testing"
)

func TestSplitRatesTakesZeroAsSaturation(t *testing.T) {
	got, err := splitRates("250, 1000,0")
	if err != nil || !slices.Equal(got, []float64{250, 1000, 0}) {
		t.Fatalf("splitRates = %v, %v", got, err)
	}
	for _, bad := range []string{"", "-1", "x", "100,,0"} {
		if _, err := splitRates(bad); err == nil {
			t.Errorf("splitRates(%q) accepted", bad)
		}
	}
}

// The table lists fixed rates in increasing order, saturation last, and the backend further below the
// target first.
func TestDeliveryReportOrder(t *testing.T) {
	r := &deliveryReport{o: options{backends: []string{"sqlite", "postgres"}}}
	for _, p := range []struct {
		backend string
		rate    float64
		dv      float64
	}{{"sqlite", 0, 2000}, {"sqlite", 1000, 990}, {"sqlite", 250, 250}, {"postgres", 0, 1500}, {"postgres", 250, 250}} {
		r.add(p.backend, p.rate, deliveryResult{DeliveredPerSecond: p.dv})
	}
	if got := r.ratesOf("sqlite"); !slices.Equal(got, []float64{250, 1000, 0}) {
		t.Errorf("ratesOf = %v", got)
	}
	if got := r.backendsWorstFirst(); !slices.Equal(got, []string{"postgres", "sqlite"}) {
		t.Errorf("backendsWorstFirst = %v", got)
	}
}
