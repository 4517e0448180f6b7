package audit

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/validate"
)

const (
	// maxMetadataBytes bounds the stored JSON text of one event's metadata.
	maxMetadataBytes = 64 << 10
	// maxMetadataDepth bounds how deeply metadata nests objects and arrays (the metadata object itself is
	// level 1). Every reader must decode every stored event: protobuf's decoders (the gRPC codec on both
	// sides, protojson in the gateway) stop at protowire.DefaultRecursionLimit = 10,000 nested messages,
	// and a JSON level costs three of them (Struct, its map entry, Value), so a ListEventsResponse stops
	// decoding at 3,332 levels; encoding/json stops at 10,000. 3,333 levels were once stored and then
	// broke every page that held the event. 64 is far below all of them, and far above what details of an
	// action need; TestMetadataDepthLimitFitsTheReaders keeps it below the readers' limits.
	maxMetadataDepth = 64
	// unreadableKey holds the stored text of metadata that cannot be shown as a Struct (see toProto);
	// callers may not use it, so that it always means that.
	unreadableKey = "sergas.unreadable_metadata"
)

// canonicalJSON checks metadata, redacts the values of secret keys (r; the top-level key redactedKey
// then says so) and encodes it with sorted keys and no spaces, so the stored text (which the hash covers)
// does not depend on how the caller's client serialised it. Every string in it, keys included, is valid
// UTF-8 without NUL, like every other field, and it nests at most maxMetadataDepth levels; the depth is
// checked before anything recurses further.
func canonicalJSON(m *structpb.Struct, r *redactor) (string, error) {
	text, _, err := encodeMetadata(m, r)
	return text, err
}

// encodeMetadata is canonicalJSON that also returns the metadata RecordEvent answers with: the redacted
// copy the text was encoded from, which is what decodeMetadata makes of that text (so the answer equals
// GetEvent's without parsing the JSON just encoded, which was about 7.5 % of the server's CPU per
// append). The JSON round trip changes nothing a Struct can hold once the checks have passed: strings are
// valid UTF-8, numbers finite float64 (Go encodes the shortest text that parses back to the same bits, -0
// included), and an unset Value is JSON null, so the copy makes it NullValue too. A fresh copy, never the
// request's messages, so that unknown fields in the request are not echoed, and redaction never touches
// the caller's request.
func encodeMetadata(m *structpb.Struct, r *redactor) (string, *structpb.Struct, error) {
	if m == nil {
		return "{}", &structpb.Struct{Fields: map[string]*structpb.Value{}}, nil
	}
	for _, k := range []string{unreadableKey, redactedKey} {
		if _, ok := m.GetFields()[k]; ok {
			return "", nil, errs.Invalid("metadata must not use the reserved key %q", k)
		}
	}
	if err := checkStruct(m, 1); err != nil {
		return "", nil, err
	}
	answer, redacted := r.copyStruct(m)
	if redacted {
		answer.Fields[redactedKey] = structpb.NewBoolValue(true)
	}
	doc := answer.AsMap()
	b, err := json.Marshal(doc)
	if err != nil {
		return "", nil, errs.Invalid("metadata cannot be encoded as JSON (numbers must be finite)")
	}
	if len(b) > maxMetadataBytes {
		return "", nil, errs.Invalid("metadata must be at most %d bytes as JSON", maxMetadataBytes)
	}
	return string(b), answer, nil
}

func checkStruct(s *structpb.Struct, depth int) error {
	if depth > maxMetadataDepth {
		return errs.Invalid("metadata must nest at most %d levels of objects and arrays", maxMetadataDepth)
	}
	for k, v := range s.GetFields() {
		if err := checkString("metadata key", k); err != nil {
			return err
		}
		if err := checkValue(v, depth); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v *structpb.Value, depth int) error {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return checkString("metadata value", k.StringValue)
	case *structpb.Value_StructValue:
		return checkStruct(k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if depth+1 > maxMetadataDepth {
			return errs.Invalid("metadata must nest at most %d levels of objects and arrays", maxMetadataDepth)
		}
		for _, e := range k.ListValue.GetValues() {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkString applies the rule of every other text field; the length is bounded by the whole document.
func checkString(what, s string) error {
	return validate.Text(what, s, maxMetadataBytes, false)
}

// decodeMetadata turns stored metadata text into a Struct for a response, or reports ok=false when the
// text is not a JSON object that every reader can decode (deeper than maxMetadataDepth, not JSON, not
// valid UTF-8): rows written before these checks existed may hold such text.
func decodeMetadata(text string) (*structpb.Struct, bool) {
	if !utf8.ValidString(text) || jsonDepth(text) > maxMetadataDepth {
		return nil, false
	}
	return parseObject(text)
}

// unreadableMetadata is what a response shows instead of metadata decodeMetadata refused: the stored
// text as one string, so that nothing is hidden and the hash can still be checked against it.
func unreadableMetadata(text string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		unreadableKey: structpb.NewStringValue(strings.ToValidUTF8(text, "\uFFFD")),
	}}
}

// jsonDepth returns the deepest nesting of objects and arrays in JSON text, without recursion, so that
// measuring a hostile document costs one pass over it.
func jsonDepth(text string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped character cannot end the string
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// copyStruct copies s, replacing with redactedMarker the value of every secret key at any depth (objects
// inside arrays included), and reports whether it replaced any. s has passed checkStruct, so its depth is
// bounded.
func (r *redactor) copyStruct(s *structpb.Struct) (*structpb.Struct, bool) {
	fields := s.GetFields()
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(fields)+1)}
	found := false
	for k, v := range fields {
		if len(r.suffixes) > 0 && r.secret(k) {
			out.Fields[k] = structpb.NewStringValue(redactedMarker)
			found = true
			continue
		}
		c, f := r.copyValue(v)
		out.Fields[k] = c
		found = found || f
	}
	return out, found
}

func (r *redactor) copyValue(v *structpb.Value) (*structpb.Value, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return structpb.NewNumberValue(k.NumberValue), false
	case *structpb.Value_StringValue:
		return structpb.NewStringValue(k.StringValue), false
	case *structpb.Value_BoolValue:
		return structpb.NewBoolValue(k.BoolValue), false
	case *structpb.Value_StructValue:
		s, f := r.copyStruct(k.StructValue)
		return structpb.NewStructValue(s), f
	case *structpb.Value_ListValue:
		vs := k.ListValue.GetValues()
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(vs))}
		found := false
		for i, e := range vs {
			c, f := r.copyValue(e)
			l.Values[i] = c
			found = found || f
		}
		return structpb.NewListValue(l), found
	default: // NullValue, or a Value with nothing set: JSON null either way
		return structpb.NewNullValue(), false
	}
}
