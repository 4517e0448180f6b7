package sergasctl

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows how far a long piece of work has come, on stderr (never stdout, which --json owns).
// On a terminal it redraws one line with a bar, at most every 100 ms; elsewhere (a cron job's log, a
// test) it prints one plain line every progressPlainEvery and the last one, so a log is not flooded.
// It is safe for concurrent Add calls.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	label    string
	unit     string
	total    int64 // 0 when unknown
	done     int64
	start    time.Time
	last     time.Time
	finished bool
}

const (
	progressTTYEvery   = 100 * time.Millisecond
	progressPlainEvery = 5 * time.Second
	progressBarWidth   = 30
)

// newProgress starts a progress line for label, counting unit ("rows", "bytes"), out of total (0 when
// unknown). w nil shows nothing.
func newProgress(w io.Writer, label, unit string, total int64) *progress {
	now := time.Now()
	return &progress{w: w, tty: isTerminal(w), label: label, unit: unit, total: total, start: now, last: now}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Add counts n more units done and redraws when it is time to.
func (p *progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	every := progressPlainEvery
	if p.tty {
		every = progressTTYEvery
	}
	if now := time.Now(); p.w != nil && !p.finished && now.Sub(p.last) >= every {
		p.last = now
		p.draw(now, false)
	}
}

// Done draws the final line (a newline after the bar on a terminal). It may be called more than once.
func (p *progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished || p.w == nil {
		return
	}
	p.finished = true
	p.draw(time.Now(), true)
}

// draw writes the current state; p.mu is held.
func (p *progress) draw(now time.Time, final bool) {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	var b strings.Builder
	if p.tty {
		b.WriteString("\r\x1b[K") // back to the start of the line and clear it
	}
	b.WriteString(p.label)
	b.WriteByte(' ')
	if p.total > 0 {
		frac := min(float64(p.done)/float64(p.total), 1)
		if p.tty {
			filled := int(frac * progressBarWidth)
			b.WriteString("[" + strings.Repeat("#", filled) + strings.Repeat(".", progressBarWidth-filled) + "] ")
		}
		fmt.Fprintf(&b, "%3.0f%% %s/%s %s", frac*100, p.amount(p.done), p.amount(p.total), p.unit)
		if !final && rate > 0 && p.done < p.total {
			fmt.Fprintf(&b, ", %s left", (time.Duration(float64(p.total-p.done) / rate * float64(time.Second))).Round(time.Second))
		}
	} else {
		fmt.Fprintf(&b, "%s %s", p.amount(p.done), p.unit)
	}
	fmt.Fprintf(&b, " in %s (%s %s/s)", elapsed.Round(100*time.Millisecond), p.amount(int64(rate)), p.unit)
	if final || !p.tty {
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(p.w, b.String())
}

// amount formats n: bytes in binary units, anything else as a plain count.
func (p *progress) amount(n int64) string {
	if p.unit == "bytes" {
		return bytes(n)
	}
	return fmt.Sprint(n)
}
