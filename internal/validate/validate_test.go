package validate

import (
	"strings"
	"testing"
)

func TestTextRefusesWhatABackendCannotStore(t *testing.T) {
	for _, v := range []string{"a\x00b", "\xff", strings.Repeat("x", 11)} {
		if Text("f", v, 10, false) == nil {
			t.Errorf("Text(%q) accepted", v)
		}
	}
	if err := Text("f", "line\nbreak\tok", 20, true); err != nil {
		t.Errorf("free text with a line break refused: %v", err)
	}
}

func TestLabelRefusesControlCharacters(t *testing.T) {
	for _, v := range []string{"agent\n7", "agent\x1b[31m", "a\u0085b", "a\x7fb"} {
		if Label("actor", v, 100, true) == nil {
			t.Errorf("Label(%q) accepted", v)
		}
	}
	if err := Label("actor", "agent-7 (Zoho) ünïcode", 100, true); err != nil {
		t.Errorf("plain label refused: %v", err)
	}
}

// The reviewer's P3: line and paragraph separators forge line breaks, bidirectional formatting
// characters reorder what a terminal shows ("admin" stored as "nimda" with an RLO).
func TestLabelRefusesLineSeparatorsAndBidiControls(t *testing.T) {
	for _, r := range []rune{0x2028, 0x2029, 0x200e, 0x200f, 0x061c, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069} {
		if v := "agent" + string(r) + "7"; Label("actor", v, 100, true) == nil {
			t.Errorf("Label accepted U+%04X", r)
		}
	}
	// Right-to-left text itself is fine; only the invisible formatting characters are refused.
	if err := Label("actor", "סוכן-7 وكيل", 100, true); err != nil {
		t.Errorf("plain label refused: %v", err)
	}
}

func TestUUIDIsCanonical(t *testing.T) {
	got, err := UUID("id", "0190A6E2-7F3C-7B1E-9C4D-2F5E6A7B8C9D")
	if err != nil || got != "0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, v := range []string{"", "x", "{0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d}", "urn:uuid:0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d", "0190a6e27f3c7b1e9c4d2f5e6a7b8c9d"} {
		if _, err := UUID("id", v); err == nil {
			t.Errorf("UUID(%q) accepted", v)
		}
	}
}
