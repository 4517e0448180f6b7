package keyring

import (
	"path/filepath"
	"sync"
	"testing"
)

// Processes starting together in development mode all load the one development key: what one seals,
// every other opens.
func TestLoadDevKeyConcurrently(t *testing.T) {
	for round := range 20 {
		dev := filepath.Join(t.TempDir(), "data", "dev-key")
		const n = 8
		rings := make([]*Keyring, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { rings[i], errs[i] = Load("TEST_KEYS", "", dev) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, load %d: %v", round, i, err)
			}
		}
		sealed, err := rings[0].Seal([]byte("secret"), []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rings {
			if got, err := r.Open(sealed, []byte("aad")); err != nil || string(got) != "secret" {
				t.Fatalf("round %d: load %d cannot open what load 0 sealed: %v", round, i, err)
			}
		}
	}
}
