package token_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/token"
)

// The actor of a token event always fits what the audit service accepts, so that a long JWT subject
// does not make every event of that caller unrecordable; distinct long ids stay distinct.
func TestAuditActorFitsTheAuditService(t *testing.T) {
	long1, long2 := strings.Repeat("é", 200)+"a", strings.Repeat("é", 200)+"b"
	for _, id := range []string{"apikey:admin", long1, long2, "jwt:sub\nforged line\x1b[31m", "bad\xffutf8"} {
		got := token.AuditActor(id)
		if err := validate.Label("actor", got, 256, true); err != nil || !utf8.ValidString(got) {
			t.Errorf("actor for %q: %q (%v)", id, got, err)
		}
	}
	if token.AuditActor("apikey:admin") != "apikey:admin" {
		t.Error("a short id changed")
	}
	if a, b := token.AuditActor(long1), token.AuditActor(long2); a == b || !strings.HasPrefix(a, "éé") {
		t.Errorf("long ids: %q vs %q", a, b)
	}
}
