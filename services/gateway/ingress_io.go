package gateway

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// maxBodyPresize caps the buffer readBody sizes from Content-Length before any byte has arrived: a
// sender announcing WEBHOOK_MAX_BODY_BYTES and sending nothing must not make the gateway hold that much
// per connection. Larger bodies grow as their bytes arrive, as with io.ReadAll.
const maxBodyPresize = 64 << 10

// readBody reads all of r into one buffer sized from the request's Content-Length (contentLength, -1 when
// unknown), so that a typical delivery is read without io.ReadAll's growing and copying from 512 bytes.
// r is the MaxBytesReader that enforces the limit; its errors are returned as they are.
func readBody(r io.Reader, contentLength int64) ([]byte, error) {
	size := int64(512)
	if contentLength >= 0 {
		size = min(contentLength, maxBodyPresize) + 1 // +1: the read that meets EOF needs no growth
	}
	buf := make([]byte, 0, size)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow as io.ReadAll does
		}
	}
}

// writeIngested writes ingest's success answer, {"duplicate":…,"eventId":"…"} and a newline, byte for
// byte what encoding/json writes for it, without the reflection and the map. An event id that would need
// escaping (the service sends UUIDs; this is only a guard) goes through encoding/json.
func writeIngested(w http.ResponseWriter, code int, eventID string, duplicate bool) {
	if !plainJSON(eventID) {
		writeJSON(w, code, map[string]any{"eventId": eventID, "duplicate": duplicate})
		return
	}
	b := make([]byte, 0, 48+len(eventID))
	b = append(b, `{"duplicate":`...)
	b = strconv.AppendBool(b, duplicate)
	b = append(b, `,"eventId":"`...)
	b = append(b, eventID...)
	b = append(b, "\"}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// plainJSON reports whether encoding/json writes s inside its quotes unchanged: printable ASCII without
// the characters it escapes (quote, backslash, and <, >, & as HTML-safe escapes).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// bearer caches "Bearer <key>" for the gateway's own credential, rebuilt only when the key changes (a
// re-read key file).
type bearer struct{ last atomic.Pointer[[2]string] } // key, header value

func (b *bearer) value(key string) string {
	if p := b.last.Load(); p != nil && p[0] == key {
		return p[1]
	}
	v := "Bearer " + key
	b.last.Store(&[2]string{key, v})
	return v
}
