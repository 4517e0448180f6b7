// Package filewatch keeps a value loaded from files and reloads it when the files change, so that
// rotated certificates, API keys and JWT keys take effect without a restart.
package filewatch

import (
	"os"
	"sync"
	"time"
)

// Cached holds the value loaded from paths, checking the files' modification times at most once per
// interval. A reload that fails keeps the previous value and reports the error to onError.
type Cached[T any] struct {
	paths    []string
	load     func() (T, error)
	interval time.Duration
	onError  func(error)

	mu      sync.Mutex
	value   T
	stamp   string
	checked time.Time
}

// New loads the value once (failing when that fails) and returns the cache.
func New[T any](paths []string, interval time.Duration, load func() (T, error), onError func(error)) (*Cached[T], error) {
	c := &Cached[T]{paths: paths, load: load, interval: interval, onError: onError}
	v, err := load()
	if err != nil {
		return nil, err
	}
	c.value, c.stamp, c.checked = v, c.fingerprint(), time.Now()
	return c, nil
}

// Get returns the current value, reloading first when the files changed since the last check.
func (c *Cached[T]) Get() T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) < c.interval {
		return c.value
	}
	c.checked = time.Now()
	if stamp := c.fingerprint(); stamp != c.stamp {
		v, err := c.load()
		if err != nil {
			if c.onError != nil {
				c.onError(err)
			}
			return c.value
		}
		c.value, c.stamp = v, stamp
	}
	return c.value
}

func (c *Cached[T]) fingerprint() string {
	var s []byte
	for _, p := range c.paths {
		fi, err := os.Stat(p)
		if err != nil {
			s = append(s, "missing;"...)
			continue
		}
		s = fi.ModTime().AppendFormat(s, time.RFC3339Nano)
		s = append(s, byte(fi.Size()), byte(fi.Size()>>8), byte(fi.Size()>>16), ';')
	}
	return string(s)
}
