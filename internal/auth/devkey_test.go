package auth

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Processes starting together on one DATA_DIR all get the one development key: none reads it half
// written, none makes a second one. Goroutines stand in for the processes (the file is what they share).
func TestDevKeyMadeOnceUnderConcurrentStarts(t *testing.T) {
	for round := range 50 {
		path := filepath.Join(t.TempDir(), "data", "dev-api-key")
		const starts = 8
		keys := make([]string, starts)
		errs := make([]error, starts)
		var wg sync.WaitGroup
		for i := range starts {
			wg.Go(func() { keys[i], errs[i] = devKey(path) })
		}
		wg.Wait()
		for i := range starts {
			if errs[i] != nil {
				t.Fatalf("round %d, start %d: %v", round, i, errs[i])
			}
			if keys[i] != keys[0] {
				t.Fatalf("round %d: two keys made", round)
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil || string(raw) != keys[0]+"\n" {
			t.Fatalf("round %d: the file holds %q (%v)", round, raw, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Fatalf("round %d: %d files left in the data directory, want the key alone", round, len(entries))
		}
	}
}
