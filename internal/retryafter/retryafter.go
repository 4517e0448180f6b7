// Package retryafter reads an HTTP Retry-After header, for the clients of providers' HTTP APIs (Zoho's
// OAuth and CRM endpoints).
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads v in either form RFC 9110 allows (delay-seconds or an HTTP-date, measured from now),
// capped at limit; 0 when absent, malformed or in the past.
func Parse(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = limit
		if n < int64(limit/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), limit)
}
