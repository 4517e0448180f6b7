package audit

import (
	"testing"

	"github.com/sergas/core/internal/config"
)

// TestVerificationTrustsOnlyItsKeys: a checkpoint that checks on its own is accepted when the service's
// signing key or a key listed in AUDIT_PREVIOUS_SIGNING_KEY_IDS signed it, and refused when any other key
// did (whoever can write the database can store a key of their own beside a checkpoint they re-signed).
func TestVerificationTrustsOnlyItsKeys(t *testing.T) {
	current, previous, stranger := newTestKey(t), newTestKey(t), newTestKey(t)
	s := &Server{trustedKeys: trustedKeyIDs(current, []string{previous.keyID})}
	for _, c := range []struct {
		name string
		key  *signingKey
		ok   bool
	}{{"current key", current, true}, {"previous key", previous, true}, {"unknown key", stranger, false}} {
		if err := s.checkCheckpoint(sampleCheckpoint(c.key)); (err == nil) != c.ok {
			t.Errorf("%s: %v, want accepted %v", c.name, err, c.ok)
		}
	}
	env := config.FromMap(map[string]string{"AUDIT_SIGNING_KEY": "/k.pem", "AUDIT_PREVIOUS_SIGNING_KEY_IDS": previous.keyID + ",NOT-AN-ID"})
	if loadSigning(env); env.Err() == nil {
		t.Fatal("a malformed previous key id was accepted")
	}
	env = config.FromMap(map[string]string{"AUDIT_SIGNING_KEY": "/k.pem", "AUDIT_PREVIOUS_SIGNING_KEY_IDS": previous.keyID})
	if sg := loadSigning(env); env.Err() != nil || len(sg.PreviousKeyIDs) != 1 {
		t.Fatalf("previous key ids %v: %v", sg.PreviousKeyIDs, env.Err())
	}
}
