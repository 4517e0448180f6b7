package webhook

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sergas/core/internal/errs"
)

const testSubID = "0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d"

func TestAckIDRoundTrip(t *testing.T) {
	for _, c := range []struct{ id, lease int64 }{{1, 1}, {127, 128}, {1 << 40, 3}, {1<<63 - 1, 1<<63 - 1}} {
		s := encodeAckID(testSubID, c.id, c.lease)
		if len(s) > maxAckIDLen || strings.ContainsAny(s, "+/=") {
			t.Fatalf("%v: ack id %q is not short unpadded base64url", c, s)
		}
		ref, err := decodeAckID(s)
		if err != nil || ref != (ackRef{subscriptionID: testSubID, deliveryID: c.id, lease: c.lease}) {
			t.Fatalf("%v: decoded %+v, %v", c, ref, err)
		}
	}
}

// Anything that is not an ack id this service made is InvalidArgument: garbage, other versions,
// padding, overlong or trailing varints, zero ids, NUL and invalid UTF-8.
func TestAckIDRefusesWhatItDidNotMake(t *testing.T) {
	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	sub := make([]byte, 16)
	withSub := func(rest ...byte) string { return raw(append(append([]byte{ackIDVersion}, sub...), rest...)...) }
	good := encodeAckID(testSubID, 5, 2)
	for name, s := range map[string]string{
		"empty":            "",
		"garbage":          "not an ack id!",
		"too long":         strings.Repeat("A", maxAckIDLen+1),
		"padded":           good + "=",
		"std alphabet":     strings.NewReplacer("-", "+", "_", "/").Replace(withSub(0xff, 0x01, 1)),
		"other version":    raw(append(append([]byte{2}, sub...), 5, 2)...),
		"no lease":         withSub(5),
		"zero id":          withSub(0, 2),
		"zero lease":       withSub(5, 0),
		"trailing byte":    withSub(5, 2, 7),
		"overlong varint":  withSub(0x85, 0x00, 2),
		"id beyond int64":  withSub(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2),
		"truncated varint": withSub(0x85),
		"NUL":              good[:10] + "\x00" + good[11:],
		"invalid UTF-8":    good[:10] + "\xff" + good[11:],
		"short":            raw(ackIDVersion, 1, 2),
		"CR inside":        good[:10] + "\r" + good[10:],
		"LF at the end":    good + "\n",
	} {
		if _, err := decodeAckID(s); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("%s (%q): %v, want InvalidArgument", name, s, err)
		}
	}
}

func FuzzDecodeAckID(f *testing.F) {
	f.Add(encodeAckID(testSubID, 1, 1))
	f.Add(encodeAckID(testSubID, 1<<62, 99))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := decodeAckID(s)
		if err != nil {
			if errs.KindOf(err) != errs.KindInvalid {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		// What decodes names one lease, and is the one spelling of it.
		if ref.deliveryID <= 0 || ref.lease <= 0 || encodeAckID(ref.subscriptionID, ref.deliveryID, ref.lease) != s {
			t.Fatalf("%q decoded to %+v", s, ref)
		}
	})
}

func TestConsumerName(t *testing.T) {
	a, err1 := consumerName("")
	b, err2 := consumerName("")
	if err1 != nil || err2 != nil || a == b || !strings.HasPrefix(a, "consumer-") {
		t.Fatalf("random names %q %q (%v %v)", a, b, err1, err2)
	}
	if n, err := consumerName("agent 7 (eu-west)"); err != nil || n != "agent 7 (eu-west)" {
		t.Fatalf("%q %v", n, err)
	}
	for _, bad := range []string{strings.Repeat("a", maxConsumerName+1), "a\x00b", "tab\there", "é", "\xff", "line\n"} {
		if _, err := consumerName(bad); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("%q: %v, want InvalidArgument", bad, err)
		}
	}
}
