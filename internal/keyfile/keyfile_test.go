package keyfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Of several processes creating one key file at once exactly one succeeds; the others learn it exists;
// the file holds the winner's content whole, mode 0600, and no temporary file is left behind.
func TestCreateOnceConcurrently(t *testing.T) {
	for round := range 50 {
		path := filepath.Join(t.TempDir(), "data", "dev-key")
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = CreateOnce(path, fmt.Appendf(nil, "key %d\n", i)) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: two creators succeeded", round)
			case err == nil:
				winner = i
			case !errors.Is(err, os.ErrExist):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		raw, err := os.ReadFile(path)
		if winner < 0 || err != nil || string(raw) != fmt.Sprintf("key %d\n", winner) {
			t.Fatalf("round %d: winner %d, file %q (%v)", round, winner, raw, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: mode %v (%v)", round, fi.Mode(), err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Fatalf("round %d: %d files in the directory, want the key alone", round, len(entries))
		}
	}
}
