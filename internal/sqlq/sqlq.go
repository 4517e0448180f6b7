// Package sqlq builds WHERE clauses with numbered ($1, $2 …) placeholders, which both PostgreSQL and
// SQLite accept, so that filter code is written once per query rather than once per dialect.
package sqlq

import (
	"strconv"
	"strings"
)

// Where collects conditions joined by AND and their arguments.
type Where struct {
	conds []string
	Args  []any
}

// Arg adds an argument and returns its placeholder.
func (w *Where) Arg(v any) string {
	w.Args = append(w.Args, v)
	return "$" + strconv.Itoa(len(w.Args))
}

// Add appends a condition; each "?" in cond is replaced by the placeholder of the next value.
func (w *Where) Add(cond string, values ...any) {
	var b strings.Builder
	for _, v := range values {
		i := strings.IndexByte(cond, '?')
		b.WriteString(cond[:i])
		b.WriteString(w.Arg(v))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	w.conds = append(w.conds, b.String())
}

// AddIf appends the condition only when ok.
func (w *Where) AddIf(ok bool, cond string, values ...any) {
	if ok {
		w.Add(cond, values...)
	}
}

// String is " WHERE a AND b", or "" without conditions.
func (w *Where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
