package config

import (
	"strings"
	"testing"
	"time"
)

func TestEnvReportsEveryBadVariableAtOnce(t *testing.T) {
	e := FromMap(map[string]string{
		"A_INT": "abc", "A_BOOL": "maybe", "A_DUR": "soon", "A_ONE": "purple", "OK_INT": " 42 ", "OK_DUR": "1.5",
		"SECRETISH": "hunter2-value",
	})
	if got := e.Int("OK_INT", 0, 0, 100); got != 42 {
		t.Errorf("OK_INT = %d", got)
	}
	if got := e.Duration("OK_DUR", 0, 0, time.Hour); got != 1500*time.Millisecond {
		t.Errorf("bare seconds = %v", got)
	}
	e.Int("A_INT", 1, 0, 10)
	e.Bool("A_BOOL", false)
	e.Duration("A_DUR", time.Second, 0, time.Hour)
	e.OneOf("A_ONE", "json", "json", "text")
	e.Int("SECRETISH", 0, 0, 1)
	err := e.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"A_INT", "A_BOOL", "A_DUR", "A_ONE", "SECRETISH"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error repeats a value: %v", err)
	}
}

func TestEnvDefaultsAndRanges(t *testing.T) {
	e := FromMap(map[string]string{"BIG": "1000", "EMPTY": "  ", "LIST": "a, b,,c "})
	if e.Int("MISSING", 7, 0, 10) != 7 || e.String("EMPTY", "d") != "d" {
		t.Error("defaults not applied")
	}
	e.Int("BIG", 1, 0, 10)
	if got := e.List("LIST", nil); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("list = %v", got)
	}
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "BIG must be an integer from 0 to 10") {
		t.Errorf("range not enforced: %v", err)
	}
}
