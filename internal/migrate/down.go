package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// LoadDown reads the NNNN_name.down.sql files of fsys by version. Operators run them (sergasctl migrate
// down); a version without one cannot be rolled back.
func LoadDown(fsys fs.FS) (map[int]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	downs := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".down.sql") {
			continue
		}
		num, _, ok := strings.Cut(strings.TrimSuffix(name, ".down.sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.down.sql", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		downs[v] = string(body)
	}
	return downs, nil
}

// Applied is one row of schema_migrations.
type Applied struct {
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at"`
}

// AppliedList reads schema_migrations in version order without creating it (the caller checks that it
// exists): a read that changes nothing, for status reports.
func AppliedList(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]Applied, error) {
	rows, err := q.QueryContext(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Applied
	for rows.Next() {
		var a Applied
		var micros int64
		if err := rows.Scan(&a.Version, &a.Name, &micros); err != nil {
			return nil, err
		}
		a.AppliedAt = time.UnixMicro(micros).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// DownPlan returns the versions Down(n) would roll back, newest first, or an error naming the first of
// them without a down migration (nothing is then run). cur is the applied version.
func DownPlan(cur, n int, known int, downs map[int]string) ([]int, error) {
	if cur > known {
		return nil, newerError(cur, known)
	}
	if n > cur {
		n = cur
	}
	var vs []int
	for v := cur; v > cur-n; v-- {
		if _, ok := downs[v]; !ok {
			return nil, fmt.Errorf("migration %04d has no down migration: it cannot be rolled back (restore a backup instead)", v)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// Down rolls back the newest n applied migrations, newest first, each in its own transaction with its
// schema_migrations row, and returns how many it rolled back. It checks first that every one of them has
// a down migration and runs none otherwise. A version another process rolled back meanwhile is not rolled
// back twice: each transaction re-reads the version under the lock.
func Down(ctx context.Context, db *sql.DB, d Dialect, ms []Migration, downs map[int]string, n int) (int, error) {
	cur, err := Version(ctx, db, d)
	if err != nil {
		return 0, err
	}
	plan, err := DownPlan(cur, n, len(ms), downs)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, v := range plan {
		err := inTx(ctx, db, d, func(tx *sql.Tx) error {
			var now int
			if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&now); err != nil {
				return err
			}
			if now != v {
				return fmt.Errorf("schema moved to version %d while rolling back %04d: run status again", now, v)
			}
			if _, err := tx.ExecContext(ctx, downs[v]); err != nil {
				return fmt.Errorf("down migration %04d: %w", v, err)
			}
			_, err := tx.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = $1", v)
			return err
		})
		if err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}
