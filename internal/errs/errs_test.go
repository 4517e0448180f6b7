package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestIsMatchesKind(t *testing.T) {
	err := fmt.Errorf("store: %w", NotFound("connection %q not found", "x"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatal("wrapped NotFound does not match ErrNotFound")
	}
	if errors.Is(err, ErrAlreadyExists) {
		t.Fatal("NotFound matches ErrAlreadyExists")
	}
	if KindOf(err) != KindNotFound {
		t.Fatalf("KindOf = %v", KindOf(err))
	}
	if KindOf(errors.New("boom")) != KindInternal {
		t.Fatal("plain error is not internal")
	}
}

func TestWrapKeepsCauseOutOfMessage(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1: secret path /var/db")
	e := Wrap(KindUnavailable, cause, "database unavailable")
	if e.Msg != "database unavailable" || !errors.Is(e, cause) {
		t.Fatalf("unexpected %#v", e)
	}
}
