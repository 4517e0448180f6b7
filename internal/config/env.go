// Package config reads settings from the environment and reports every bad variable at once.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Env reads typed variables from a lookup function, collecting one error per bad variable so that a
// misconfigured process names all its mistakes in a single message.
type Env struct {
	lookup func(string) (string, bool)
	errs   map[string]string
}

// FromOS reads the process environment.
func FromOS() *Env { return NewEnv(os.LookupEnv) }

// FromMap reads a fixed set of variables (tests).
func FromMap(m map[string]string) *Env {
	return NewEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// NewEnv reads variables through lookup.
func NewEnv(lookup func(string) (string, bool)) *Env {
	return &Env{lookup: lookup, errs: map[string]string{}}
}

// Lookup returns the trimmed value of name and whether it is set to something non-empty.
func (e *Env) Lookup(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns name's value, or def when unset.
func (e *Env) String(name, def string) string {
	if v, ok := e.Lookup(name); ok {
		return v
	}
	return def
}

// Int returns name's value as an integer within [min, max], or def when unset.
func (e *Env) Int(name string, def, min, max int) int {
	v, ok := e.Lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		e.Fail(name, fmt.Sprintf("must be an integer from %d to %d", min, max))
		return def
	}
	return n
}

// Bool returns name's value as a boolean, or def when unset.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.Lookup(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(name, "must be true or false")
		return def
	}
	return b
}

// Duration returns name's value as a duration within [min, max], or def when unset. A bare number is
// read in seconds.
func (e *Env) Duration(name string, def, min, max time.Duration) time.Duration {
	v, ok := e.Lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil {
			e.Fail(name, "must be a duration such as 30s or 5m, or a number of seconds")
			return def
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < min || d > max {
		e.Fail(name, fmt.Sprintf("must be from %s to %s", min, max))
		return def
	}
	return d
}

// OneOf returns name's value when it is one of allowed, or def when unset.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v, ok := e.Lookup(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	e.Fail(name, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// List returns name's comma-separated values, trimmed and without empties, or def when unset.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.Lookup(name)
	if !ok {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Fail records a problem with name. The reason must not repeat the value: it may be a secret.
func (e *Env) Fail(name, reason string) {
	if _, dup := e.errs[name]; !dup {
		e.errs[name] = reason
	}
}

// Err returns one error naming every bad variable, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	names := make([]string, 0, len(e.errs))
	for n := range e.errs {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + e.errs[n]
	}
	return errors.New("invalid configuration: " + strings.Join(parts, "; "))
}
