package main

import (
	"slices"
	"strings"
	"testing"
	"time"
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

func TestSplitSinksTakesPullAndPushOnce(t *testing.T) {
	got, err := splitSinks("pull, push")
	if err != nil || !slices.Equal(got, []string{"pull", "push"}) {
		t.Fatalf("splitSinks = %v, %v", got, err)
	}
	for _, bad := range []string{"", "pull,pull", "push,", "webhook"} {
		if _, err := splitSinks(bad); err == nil {
			t.Errorf("splitSinks(%q) accepted", bad)
		}
	}
}

// The table lists fixed rates in increasing order, saturation last, per sink in the order asked, and the
// backend further below the target (at its slowest sink) first.
func TestDeliveryReportOrder(t *testing.T) {
	r := &deliveryReport{o: options{backends: []string{"sqlite", "postgres"}, delivery: deliveryOptions{sinks: []string{"pull", "push"}}}}
	for _, p := range []struct {
		backend, sink string
		rate, dv      float64
	}{{"sqlite", "pull", 0, 2000}, {"sqlite", "pull", 1000, 990}, {"sqlite", "pull", 250, 250}, {"sqlite", "push", 0, 900},
		{"postgres", "pull", 0, 1500}, {"postgres", "pull", 250, 250}, {"postgres", "push", 0, 1200}} {
		r.add(p.backend, p.sink, p.rate, deliveryResult{DeliveredPerSecond: p.dv})
	}
	if got := r.ratesOf("sqlite", "pull"); !slices.Equal(got, []float64{250, 1000, 0}) {
		t.Errorf("ratesOf = %v", got)
	}
	if got := r.backendsWorstFirst(); !slices.Equal(got, []string{"sqlite", "postgres"}) {
		t.Errorf("backendsWorstFirst = %v (sqlite's push is the slowest)", got)
	}
	var b strings.Builder
	r.print(&b, time.Second)
	var rows []string
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Split(l, " | "); len(f) > 3 && (f[0] == "| sqlite" || f[0] == "| postgres") {
			rows = append(rows, strings.TrimPrefix(f[0], "| ")+" "+f[1]+" "+f[2])
		}
	}
	want := []string{"sqlite pull 250/s", "sqlite pull 1000/s", "sqlite pull saturation", "sqlite push saturation",
		"postgres pull 250/s", "postgres pull saturation", "postgres push saturation"}
	if !slices.Equal(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}

// A push row has no deliveries per Ack (one delivery per request) but its duplicates; a pull row has both.
func TestDeliveryRowsShowDuplicatesAndPerAckForPullOnly(t *testing.T) {
	r := &deliveryReport{o: options{backends: []string{"sqlite"}, delivery: deliveryOptions{sinks: []string{"pull", "push"}}}}
	r.add("sqlite", "pull", 250, deliveryResult{PerAck: 2.5})
	r.add("sqlite", "push", 250, deliveryResult{Duplicates: 3})
	pull, push := strings.Split(r.row("sqlite", "pull", 250), " | "), strings.Split(r.row("sqlite", "push", 250), " | ")
	if pull[10] != "2.5 (2.5–2.5)" || pull[11] != "0 (0–0)" {
		t.Errorf("pull row %q: per Ack %q, duplicates %q", pull, pull[10], pull[11])
	}
	if push[10] != "—" || push[11] != "3 (3–3)" {
		t.Errorf("push row %q: per Ack %q, duplicates %q", push, push[10], push[11])
	}
}
