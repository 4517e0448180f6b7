package retryafter

import (
	"net/http"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "  ": 0, "garbage": 0, "-5": 0, "0": 0, "7": 7 * time.Second, " 30 ": 30 * time.Second,
		"3600": time.Hour, "99999999999999999": time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		now.Add(3 * time.Hour).Format(http.TimeFormat):    time.Hour,
	} {
		if got := Parse(in, now, time.Hour); got != want {
			t.Errorf("Parse(%q) = %v, want %v", in, got, want)
		}
	}
}
