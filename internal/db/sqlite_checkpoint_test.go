package db_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
)

// TestSQLiteCheckpointsInTheBackground: committed pages reach the database file while the database is
// open, though the writer's own automatic checkpoint is far off (10,000 pages; 2 MB written here is about
// 500): the background checkpointer copied them, so no commit had to. Without it the file keeps its
// size until Close.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.SQLite)
	h, err := db.OpenSQLite(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Write.ExecContext(ctx, "CREATE TABLE blobs (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	const total = 2 << 20
	chunk := make([]byte, 64<<10)
	for i := 0; i < total/len(chunk); i++ {
		if _, err := h.Write.ExecContext(ctx, "INSERT INTO blobs (b) VALUES (?)", chunk); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the writes copied into the database file", func() bool {
		fi, err := os.Stat(h.Path)
		return err == nil && fi.Size() >= total
	})
}
