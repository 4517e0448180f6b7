package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/services/audit"
)

// auditOptions are the audit suite's flags.
type auditOptions struct {
	callers, batchCallers, listCallers []int
	batch                              int
	events                             int64
	seedDir                            string
	seedOnly                           bool
	// listOnly skips RecordEvent and RecordEvents (-audit-list-only), to measure ListEvents alone.
	listOnly bool
}

// The audit suite's calls, as the table names them, and the load generator's names for them.
const (
	callRecord      = "RecordEvent"
	callRecords     = "RecordEvents"
	callAuditNoop   = "no-op (same auth and limiter)"
	callListActor   = "ListEvents by actor"
	callListSession = "ListEvents by session"
	callListAll     = "ListEvents, no filter"
)

var loadgenCall = map[string]string{callRecord: "record", callRecords: "records", callAuditNoop: "noop",
	callListActor: "list-actor", callListSession: "list-session", callListAll: "list-all"}

// listSchema is the PostgreSQL schema that keeps the seeded store between runs (on a server that lives
// longer than one run; scripts/with-postgres's throwaway server does not).
const listSchema = "bench_audit_seeded"

// runAudit measures the audit service: appends on a new store against the no-op, then ListEvents on a
// seeded store of o.audit.events events, on each backend.
func runAudit(o options) error {
	if o.audit.seedOnly {
		for _, b := range o.backends {
			if _, err := seedListStore(o, b); err != nil {
				return fmt.Errorf("%s: %w", b, err)
			}
		}
		return nil
	}
	bin, err := os.MkdirTemp("", "sergas-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := buildTools(bin); err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	rep := &auditReport{o: o}
	for _, b := range o.backends {
		if o.audit.listOnly {
			break
		}
		if err := benchAuditAppends(o, bin, b, rep); err != nil {
			return fmt.Errorf("%s appends: %w", b, err)
		}
	}
	for _, b := range o.backends {
		if err := benchAuditList(o, bin, b, rep); err != nil {
			return fmt.Errorf("%s ListEvents: %w", b, err)
		}
	}
	rep.print(os.Stdout, time.Since(started))
	return nil
}

// auditKey is one bench key with audit:write and audit:read, and the AUTH_API_KEYS that holds it.
func auditKey() (key, keys string, err error) {
	if key, err = auth.NewAPIKey("bench"); err != nil {
		return "", "", err
	}
	return key, fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["audit:write","audit:read"]}]}`, auth.HashAPIKey(key)), nil
}

// auditEnv is the bench audit server's configuration: production mode, the bench key, the limiter on at
// benchRate for writes and reads (never reached), plaintext loopback; group commit and redaction at
// their defaults. dataDir holds the SQLite file; schema names the PostgreSQL schema.
func auditEnv(backend, keys, dataDir, schema string) (map[string]string, error) {
	signingKey := filepath.Join(dataDir, "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	env := map[string]string{
		"AUDIT_SIGNING_KEY": signingKey,
		"SERGAS_ENV":        "production", "DATA_DIR": dataDir, "TLS_DISABLED": "true", "AUDIT_GRPC_ADDR": "127.0.0.1:0",
		"AUTH_API_KEYS": keys, "LOG_LEVEL": "error",
		"RATE_LIMIT_PER_SECOND": strconv.Itoa(benchRate), "RATE_LIMIT_BURST": strconv.Itoa(benchRate),
		"RATE_LIMIT_READ_PER_SECOND": strconv.Itoa(benchRate), "RATE_LIMIT_READ_BURST": strconv.Itoa(benchRate),
	}
	if backend == "postgres" {
		url := os.Getenv("TEST_DATABASE_URL")
		if url == "" {
			return nil, fmt.Errorf("TEST_DATABASE_URL is not set")
		}
		env["DATABASE_URL"] = url
		env["AUDIT_DATABASE_SCHEMA"] = schema
	}
	return env, nil
}

func dbFlags(backend string) []string {
	if backend == "postgres" {
		return []string{"-db-cpu", "postgres"}
	}
	return nil
}

// benchAuditAppends measures RecordEvent and RecordEvents against the no-op, on a new, empty store.
func benchAuditAppends(o options, bin, backend string, rep *auditReport) error {
	key, keys, err := auditKey()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sergas-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	env, err := auditEnv(backend, keys, dir, schema)
	if err != nil {
		return err
	}
	pprofAddr := ""
	if o.profileDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	s, err := startServer(bin+"/server", env, pprofAddr, "-service", "audit")
	if err != nil {
		return err
	}
	defer func() {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		if backend == "postgres" {
			dropSchema(env["DATABASE_URL"], schema)
		}
	}()
	extra := append(dbFlags(backend), "-batch", strconv.Itoa(o.audit.batch))
	if o.profileDir != "" {
		for _, call := range []string{callRecord, callRecords} {
			if err := profileRun(o, bin, backend, s, key, loadgenCall[call], call, extra...); err != nil {
				return err
			}
		}
	}
	type point struct {
		call    string
		callers []int
	}
	for _, p := range []point{{callRecord, o.audit.callers}, {callRecords, o.audit.batchCallers}} {
		for _, c := range p.callers {
			calls := []string{p.call, callAuditNoop}
			for i := range o.reps {
				for j := range calls {
					// Alternate which goes first, so that drift in the machine's load favours neither.
					call := calls[(i+j)%len(calls)]
					r, err := load(bin+"/loadgen", s, key, loadgenCall[call], c, o.d, o.warmup, extra...)
					if err != nil {
						return err
					}
					noopOf := ""
					if call == callAuditNoop {
						noopOf = p.call
					}
					rep.add(backend, call, noopOf, c, r)
					fmt.Fprintf(os.Stderr, "%s | %s%s | %d callers | run %d: %.0f calls/s (%.0f events/s), p50 %.3f ms, p99 %.3f ms, CPU µs/call: server %.0f, client %.0f, database %.0f\n",
						backend, call, map[bool]string{true: " (beside " + p.call + ")"}[noopOf != ""], c, i+1, r.PerSecond, r.PerSecond*float64(max(1, r.PerCall)),
						r.P50ms, r.P99ms, r.ServerCPU, r.ClientCPU, r.DBCPU)
				}
			}
		}
	}
	return nil
}

// benchAuditList seeds (or reuses) the store of o.audit.events events and measures ListEvents on it.
func benchAuditList(o options, bin, backend string, rep *auditReport) error {
	key, keys, err := auditKey()
	if err != nil {
		return err
	}
	info, err := seedListStore(o, backend)
	if err != nil {
		return err
	}
	rep.seeds = append(rep.seeds, seedResult{backend: backend, info: info})
	env, err := auditEnv(backend, keys, listDir(o), listSchema)
	if err != nil {
		return err
	}
	// The seeded events are kept between runs: retention must never cut them once they age.
	env["AUDIT_RETENTION_DAYS"] = "0"
	pprofAddr := ""
	if o.profileDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	s, err := startServer(bin+"/server", env, pprofAddr, "-service", "audit")
	if err != nil {
		return err
	}
	defer func() {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	extra := append(dbFlags(backend), "-store-size", strconv.FormatInt(o.audit.events, 10))
	calls := []string{callListActor, callListSession, callListAll}
	if o.profileDir != "" {
		for _, call := range calls {
			if err := profileRun(o, bin, backend, s, key, loadgenCall[call], call, extra...); err != nil {
				return err
			}
		}
	}
	for _, c := range o.audit.listCallers {
		for i := range o.reps {
			for j := range calls {
				call := calls[(i+j)%len(calls)]
				r, err := load(bin+"/loadgen", s, key, loadgenCall[call], c, o.d, o.warmup, extra...)
				if err != nil {
					return err
				}
				rep.add(backend, call, "", c, r)
				fmt.Fprintf(os.Stderr, "%s | %s | %d callers | run %d: %.0f calls/s, p50 %.3f ms, p99 %.3f ms, CPU µs/call: server %.0f, client %.0f, database %.0f\n",
					backend, call, c, i+1, r.PerSecond, r.P50ms, r.P99ms, r.ServerCPU, r.ClientCPU, r.DBCPU)
			}
		}
	}
	return nil
}

// listDir is where the seeded SQLite store of o.audit.events events lives.
func listDir(o options) string {
	return filepath.Join(o.audit.seedDir, fmt.Sprintf("audit-%d", o.audit.events))
}

// seedListStore makes sure the ListEvents store of backend holds the seeded events.
func seedListStore(o options, backend string) (seedInfo, error) {
	if err := os.MkdirAll(listDir(o), 0o700); err != nil {
		return seedInfo{}, err
	}
	env, err := auditEnv(backend, "", listDir(o), listSchema)
	if err != nil {
		return seedInfo{}, err
	}
	fmt.Fprintf(os.Stderr, "%s: making sure the ListEvents store holds %d seeded events...\n", backend, o.audit.events)
	// Bounded: seeding 10 million events takes minutes, not hours.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	info, err := seedAudit(ctx, env, o.audit.events)
	if err != nil {
		return info, fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%s: %s, %d events, seeded in %s\n", backend, info.where, info.events, info.took.Round(time.Second))
	return info, nil
}
