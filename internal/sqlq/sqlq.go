// Package sqlq builds WHERE clauses with numbered ($1, $2 …) placeholders, so that filter code is written
// once per query rather than once per dialect.
//
// PostgreSQL binds $N to the N-th argument. SQLite does not: to SQLite "$2" is a named parameter, and
// named parameters are numbered in order of first appearance, so "SELECT $2, $1" binds the first
// argument to $2. Queries for SQLite therefore go through Rebind, which turns $N into ?N, the form
// SQLite binds by number.
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

// Rebind rewrites the $N placeholders of query as ?N for SQLite. Text inside quotes ('…', "…", with
// doubled quotes as escapes) and comments (-- …, /* … */) is left alone: a "$1" in a string literal is
// text, not a parameter. A query without "$" is returned as is, so rebinding twice is harmless.
func Rebind(query string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query))
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+4])
			i += j + 3
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
