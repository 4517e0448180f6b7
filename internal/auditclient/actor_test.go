package auditclient

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sergas/core/internal/validate"
)

// An actor always fits what the audit service accepts, so that a long JWT subject or TLS identity does
// not make every event of that caller unrecordable; distinct long ids stay distinct.
func TestActorFitsTheAuditService(t *testing.T) {
	long1, long2 := strings.Repeat("é", 200)+"a", strings.Repeat("é", 200)+"b"
	jwt := "jwt:https://idp.example/" + strings.Repeat("tenant/", 30) + "#" + strings.Repeat("s", 100)
	for _, id := range []string{"apikey:admin", long1, long2, jwt, "jwt:sub\nforged line\x1b[31m", "bad\xffutf8", "mtls:CN=a\u202eb\u2028c"} {
		got := Actor(id)
		if err := validate.Label("actor", got, MaxActorBytes, true); err != nil || !utf8.ValidString(got) {
			t.Errorf("actor for %q: %q (%v)", id, got, err)
		}
	}
	if Actor("apikey:admin") != "apikey:admin" {
		t.Error("a short id changed")
	}
	if a, b := Actor(long1), Actor(long2); a == b || !strings.HasPrefix(a, "éé") {
		t.Errorf("long ids: %q vs %q", a, b)
	}
}
