package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/postgres"
	"github.com/sergas/core/services/token/store/sqlite"
)

// bare is the latency of the store read GetAccessToken makes, called directly (no RPC, no cache, no
// decryption) by one caller: the like-for-like counterpart of the original system's token lookup.
type bare struct {
	calls          int
	p50, p99, mean time.Duration
	// version names the database server ("SQLite 3.50.4", "PostgreSQL 15.18").
	version string
}

type bareResult struct {
	backend string
	r       bare
}

// bareRead opens the bench server's database (the same file or schema, from this process) and times
// AccessTokenGet of the bench connection for d.
func bareRead(backend string, env map[string]string, d time.Duration) (bare, error) {
	ctx := context.Background()
	h, err := db.Open(ctx, db.LoadConfig(config.FromMap(env), "token"), "token", false)
	if err != nil {
		return bare{}, err
	}
	var st store.Store
	var version string
	if h.SQLite != nil {
		st = sqlite.New(h.SQLite)
		err = h.SQLite.Read.QueryRowContext(ctx, "SELECT 'SQLite ' || sqlite_version()").Scan(&version)
	} else {
		st = postgres.New(h.Postgres)
		err = h.Postgres.Pool.QueryRow(ctx, "SELECT 'PostgreSQL ' || current_setting('server_version')").Scan(&version)
	}
	defer st.Close()
	if err != nil {
		return bare{}, err
	}
	k := store.Key{Provider: "zoho", ConnectionID: "bench"}
	for range 100 { // warm the pool and the statement caches
		if _, err := st.AccessTokenGet(ctx, k); err != nil {
			return bare{}, err
		}
	}
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < d {
		t := time.Now()
		if _, err := st.AccessTokenGet(ctx, k); err != nil {
			return bare{}, err
		}
		lat = append(lat, time.Since(t))
	}
	total := time.Since(start)
	slices.Sort(lat)
	version, _, _ = strings.Cut(version, " (") // PostgreSQL appends its build: "15.18 (Debian …)"
	return bare{version: version, calls: len(lat), p50: lat[len(lat)/2], p99: lat[min(len(lat)-1, len(lat)*99/100)], mean: total / time.Duration(len(lat))}, nil
}
