// Package pagetoken encodes opaque paging cursors and checks page sizes.
package pagetoken

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/sergas/core/internal/errs"
)

// Default and Max bound page_size in every List RPC.
const (
	Default = 100
	Max     = 1000
)

// Size returns the page size to use for a requested size, or an InvalidArgument error.
func Size(requested int32) (int, error) {
	switch {
	case requested == 0:
		return Default, nil
	case requested < 0 || requested > Max:
		return 0, errs.Invalid("page_size must be between 0 and %d", Max)
	}
	return int(requested), nil
}

// Encode turns a cursor (the key of the last item returned) into an opaque token.
func Encode(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1\x00" + strings.Join(parts, "\x00")))
}

// Decode returns the n parts of a token made by Encode, or an InvalidArgument error.
func Decode(token string, n int) ([]string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != n+1 || parts[0] != "v1" {
		return nil, errs.Invalid("page_token is not valid")
	}
	return parts[1:], nil
}

// EncodeInt encodes an integer cursor.
func EncodeInt(v int64) string { return Encode(strconv.FormatInt(v, 10)) }

// DecodeInt decodes an integer cursor; an empty token gives ok=false.
func DecodeInt(token string) (v int64, ok bool, err error) {
	if token == "" {
		return 0, false, nil
	}
	parts, err := Decode(token, 1)
	if err != nil {
		return 0, false, err
	}
	v, err = strconv.ParseInt(parts[0], 10, 64)
	if err != nil || v < 0 {
		return 0, false, errs.Invalid("page_token is not valid")
	}
	return v, true, nil
}

// Page trims items, fetched with a limit of size+1, to one page; when there was more, it returns the
// token of the page's last item, made by next.
func Page[T any](items []T, size int, next func(last T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, next(items[size-1])
}
