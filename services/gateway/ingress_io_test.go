package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/sergas/core/internal/clientaddr"
)

// The hand-written success answer is byte for byte what encoding/json wrote for it before.
func TestWriteIngestedMatchesEncodingJSON(t *testing.T) {
	for _, id := range []string{"0b7c1a52-9a55-4c1e-8d1c-2f1f6f3f9a10", "", "a<b>&c", `q"uote\`, "é", "tab\tnl\n", "\x7f"} {
		for _, dup := range []bool{false, true} {
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			writeJSON(want, 202, map[string]any{"eventId": id, "duplicate": dup})
			writeIngested(got, 202, id, dup)
			if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Errorf("id %q duplicate %v: %d %q %q; want %d %q %q", id, dup, got.Code, got.Header().Get("Content-Type"), got.Body,
					want.Code, want.Header().Get("Content-Type"), want.Body)
			}
		}
	}
}

// readBody returns what io.ReadAll returns, whatever Content-Length says and however the bytes arrive,
// and passes on the body limit's error.
func TestReadBody(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 1024, maxBodyPresize, maxBodyPresize + 1, 3*maxBodyPresize + 7} {
		data := bytes.Repeat([]byte("x"), n)
		for _, cl := range []int64{int64(n), -1} {
			for name, r := range map[string]func() io.Reader{
				"whole":     func() io.Reader { return bytes.NewReader(data) },
				"bytewise":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
				"eof-early": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
			} {
				got, err := readBody(r(), cl)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%d bytes, Content-Length %d, %s: %d bytes, %v", n, cl, name, len(got), err)
				}
			}
		}
	}
	rec := httptest.NewRecorder()
	_, err := readBody(http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), 10), 100)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		t.Errorf("over the limit: %v, want *http.MaxBytesError", err)
	}
	if _, err := readBody(iotest.TimeoutReader(strings.NewReader("ab")), 10); err == nil {
		t.Error("a failing read: no error")
	}
}

// A cached proof is the proof clientaddr computes for that address at that second, also when addresses
// share a slot, and a new second gets a new one.
func TestProofCacheGivesClientaddrProofs(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	c := newProofCache()
	now := time.Unix(1_800_000_000, 0)
	var addrs []string
	for i := range 3 * proofSlots {
		addrs = append(addrs, "10.0."+string(rune('0'+i%10))+"."+strings.Repeat("1", 1+i%3)+string(rune('0'+i/10%10))+string(rune('0'+i/100)))
	}
	for _, at := range []time.Time{now, now.Add(300 * time.Millisecond), now.Add(time.Second), now.Add(-time.Second)} {
		for round := range 2 { // the second round reads the cache
			for _, a := range addrs {
				if got, want := c.proof(key, a, at), clientaddr.Proof(key, a, at); got != want {
					t.Fatalf("round %d, %s at %v: %q, want %q", round, a, at, got, want)
				}
			}
		}
	}
}
