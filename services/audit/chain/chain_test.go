package chain

import (
	"bytes"
	"testing"
)

func TestHashCoversEveryField(t *testing.T) {
	base := Fields{Sequence: 1, ID: "id", OccurMicros: 2, RecordMicros: 3, Actor: "a", Action: "b",
		Resource: "c", Outcome: 1, Metadata: "{}", IdempotencyKey: "k"}
	h0 := Hash(Genesis, base)
	changes := []func(*Fields){
		func(f *Fields) { f.Sequence++ }, func(f *Fields) { f.ID += "x" }, func(f *Fields) { f.OccurMicros++ },
		func(f *Fields) { f.RecordMicros++ }, func(f *Fields) { f.Actor += "x" }, func(f *Fields) { f.Action += "x" },
		func(f *Fields) { f.Resource += "x" }, func(f *Fields) { f.Outcome++ }, func(f *Fields) { f.Metadata = `{"a":1}` },
		func(f *Fields) { f.IdempotencyKey = "" },
		// moving bytes between adjacent fields must change the hash too
		func(f *Fields) { f.Actor, f.Action = "ab", "" },
	}
	for i, change := range changes {
		f := base
		change(&f)
		if bytes.Equal(Hash(Genesis, f), h0) {
			t.Errorf("change %d does not change the hash", i)
		}
	}
	other := bytes.Repeat([]byte{1}, Size)
	if bytes.Equal(Hash(other, base), h0) {
		t.Error("previous hash is not covered")
	}
	if !bytes.Equal(Hash(Genesis, base), h0) {
		t.Error("hash is not deterministic")
	}
}
