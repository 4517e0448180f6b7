package storecopy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// canonical turns a value read from a database into the canonical value of kind k: nil, int64, string
// or []byte. It accepts what the drivers return (int64, string, []byte, bool, time.Time, [16]byte).
func canonical(k Kind, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch k {
	case KindInt:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case KindTime:
		switch x := v.(type) {
		case int64:
			return x, nil
		case time.Time:
			return x.UnixMicro(), nil
		}
	case KindBool:
		switch x := v.(type) {
		case int64:
			if x == 0 || x == 1 {
				return x, nil
			}
			return nil, fmt.Errorf("boolean column holds %d", x)
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case KindText:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case KindBytes:
		switch x := v.(type) {
		case []byte:
			return bytes.Clone(x), nil // drivers reuse their buffers
		case string:
			return []byte(x), nil
		}
	case KindJSON:
		switch x := v.(type) {
		case string:
			return canonicalJSON(x)
		case []byte:
			return canonicalJSON(string(x))
		}
	case KindUUID:
		switch x := v.(type) {
		case string:
			u, err := uuid.Parse(x)
			if err != nil {
				return nil, fmt.Errorf("not a UUID: %q", truncate(x))
			}
			return u.String(), nil
		case [16]byte:
			return uuid.UUID(x).String(), nil
		}
	}
	return nil, fmt.Errorf("%s column holds a %T", k, v)
}

// canonicalJSON re-encodes a JSON document compactly with object keys sorted, the form both PostgreSQL's
// jsonb (which reorders keys and adds spaces) and SQLite's text end up in. Numbers keep their text.
func canonicalJSON(s string) (string, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return "", fmt.Errorf("not a JSON document: %q", truncate(s))
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil { // maps encode with sorted keys
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func truncate(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// PGValue is the value COPY sends for canonical value v of kind k.
func PGValue(k Kind, v any) any {
	if v == nil {
		return nil
	}
	switch k {
	case KindTime:
		return time.UnixMicro(v.(int64)).UTC()
	case KindBool:
		return v.(int64) != 0
	case KindJSON:
		return json.RawMessage(v.(string))
	}
	return v
}

// rowHash hashes canonical rows. Each value is tagged with its type and length-prefixed, so that no two
// different rows hash alike by shifting bytes between columns.
type rowHash struct {
	h   hash.Hash
	buf []byte
	n   int64
}

func newRowHash() *rowHash { return &rowHash{h: sha256.New()} }

func (r *rowHash) add(row []any) {
	b := r.buf[:0]
	for _, v := range row {
		switch x := v.(type) {
		case nil:
			b = append(b, 0)
		case int64:
			b = append(b, 1)
			b = binary.BigEndian.AppendUint64(b, uint64(x))
		case string:
			b = append(b, 2)
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		case []byte:
			b = append(b, 3)
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		default:
			panic(fmt.Sprintf("storecopy: %T is not a canonical value", v))
		}
	}
	b = append(b, 0xff) // end of row
	r.h.Write(b)
	r.buf = b
	r.n++
}

func (r *rowHash) sum() string { return fmt.Sprintf("%x", r.h.Sum(nil)) }
