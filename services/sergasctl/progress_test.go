package sergasctl

import (
	"strings"
	"testing"
)

func TestProgressPlainLines(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b, "audit events", "rows", 200)
	p.Add(50) // too soon after the start for a plain line
	if b.Len() != 0 {
		t.Fatalf("a line before %s: %q", progressPlainEvery, b.String())
	}
	p.Add(150)
	p.Done()
	p.Done()
	out := b.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "audit events 100% 200/200 rows in") || strings.Contains(out, "\r") {
		t.Fatalf("final line: %q", out)
	}
	var nilp *progress
	nilp.Add(1) // a command without progress passes nil
	nilp.Done()
}
