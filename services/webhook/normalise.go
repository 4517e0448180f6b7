package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sergas/core/services/webhook/store"
)

// Bounds on what normalisation keeps, so that a body within its limit cannot blow up the index columns:
// a value over its bound is left out (the raw body still holds it).
const (
	maxNormalisedText = 256  // module, operation, event type, one record id or field name
	maxNormalisedList = 1000 // record ids, affected fields
)

// normaliser reads what an event is about from its verified body, beside the raw bytes, which stay as
// received. It never refuses a delivery: a notification that verified must not be lost because a field
// has an unexpected shape, so whatever cannot be read, or is not text both backends store alike (NUL,
// over its bound), is left empty.
type normaliser struct {
	zoho bool // the body is a Zoho CRM notification
	// eventType is the source's event_type_pointer, split into reference tokens; nil for none.
	eventType []string
}

// zohoNotificationBody is the part of a Zoho CRM notification that says what it is about. Zoho sends, besides
// channel_id and token: {"server_time": 1700000000000, "module": "Deals", "resource_uri": "…",
// "ids": ["4150868000001"], "affected_fields": […], "operation": "update", "query_params": {…}}.
// affected_fields is a list of field names, or (with several records) a list of {record id: [names]}.
type zohoNotificationBody struct {
	// Strings decode directly (a value of another type is skipped, leaving ""): cheaper than a raw
	// message decoded again.
	Module         string            `json:"module"`
	Operation      string            `json:"operation"`
	IDs            []json.RawMessage `json:"ids"`
	AffectedFields []json.RawMessage `json:"affected_fields"`
	ServerTime     json.RawMessage   `json:"server_time"`
}

// normalise returns what body is about.
func (n normaliser) normalise(body []byte) store.Normalised {
	var out store.Normalised
	if n.zoho {
		var z zohoNotificationBody
		// The error is ignored on purpose: a field of the wrong type (ids as an object) is skipped and the
		// others are still decoded; a body that is not JSON decodes nothing (the verifier refused it anyway).
		_ = json.Unmarshal(body, &z)
		out.Module = storableText(z.Module)
		out.Operation = storableText(z.Operation)
		for _, raw := range z.IDs {
			if id := storableScalar(raw); id != "" && len(out.RecordIDs) < maxNormalisedList {
				out.RecordIDs = append(out.RecordIDs, id)
			}
		}
		out.AffectedFields = affectedFields(z.AffectedFields)
		out.ServerTime = zohoServerTime(z.ServerTime)
	}
	if n.eventType != nil {
		out.EventType = storableScalar(pointerValue(body, n.eventType))
	}
	return out
}

// affectedFields flattens Zoho's affected_fields (names, or objects of record id to names) to the names,
// each once, in the order first sent.
func affectedFields(raws []json.RawMessage) []string {
	var out []string
	seen := map[string]bool{}
	add := func(raw json.RawMessage) {
		if f := storableScalar(raw); f != "" && !seen[f] && len(out) < maxNormalisedList {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, raw := range raws {
		var byRecord map[string][]json.RawMessage
		if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
			if json.Unmarshal(raw, &byRecord) != nil {
				continue
			}
			// Map order is random: take the records in the order of their ids so that the result is stable.
			ids := make([]string, 0, len(byRecord))
			for id := range byRecord {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				for _, f := range byRecord[id] {
					add(f)
				}
			}
			continue
		}
		add(raw)
	}
	return out
}

// zohoServerTime reads server_time, milliseconds since the epoch as a number or a string of digits; the
// zero time when absent or anything else.
func zohoServerTime(raw json.RawMessage) time.Time {
	s, ok := jsonScalar(raw)
	if !ok || !serverTimePattern.MatchString(s) {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 || ms > 253402300799999 { // after 9999-12-31 no database stores it alike
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// storableScalar is a JSON string's text or a number as written, when it is text both backends store
// alike and within maxNormalisedText; "" otherwise.
func storableScalar(raw json.RawMessage) string {
	s, ok := jsonScalar(raw)
	if !ok {
		return ""
	}
	return storableText(s)
}

// storableText is s when it is text both backends store alike and within maxNormalisedText, else "".
func storableText(s string) string {
	if len(s) > maxNormalisedText || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return ""
	}
	return s
}

// parsePointer checks an RFC 6901 JSON pointer and splits it into its reference tokens, unescaped ("~1"
// is "/", "~0" is "~"). The empty pointer (the whole document) names no event type and is refused.
func parsePointer(p string) ([]string, error) {
	if p == "" || p[0] != '/' {
		return nil, errors.New(`event_type_pointer must be a JSON pointer (RFC 6901) starting with "/", for example "/type"`)
	}
	if len(p) > 1024 || !utf8.ValidString(p) {
		return nil, errors.New("event_type_pointer must be at most 1024 bytes of UTF-8")
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, errors.New(`event_type_pointer: "~" must be followed by 0 or 1 (RFC 6901)`)
			}
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// pointerValue returns the JSON value at tokens in body, or nil when there is none. Each step decodes one
// level into raw messages, so the body is never decoded into values beyond the path.
func pointerValue(body []byte, tokens []string) json.RawMessage {
	cur := json.RawMessage(body)
	for _, tok := range tokens {
		t := bytes.TrimSpace(cur)
		if len(t) == 0 {
			return nil
		}
		switch t[0] {
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(t, &obj) != nil {
				return nil
			}
			v, ok := obj[tok]
			if !ok {
				return nil
			}
			cur = v
		case '[':
			// RFC 6901 array index: "0" or digits without a leading zero.
			if tok == "" || (len(tok) > 1 && tok[0] == '0') || strings.Trim(tok, "0123456789") != "" {
				return nil
			}
			i, err := strconv.Atoi(tok)
			var arr []json.RawMessage
			if err != nil || json.Unmarshal(t, &arr) != nil || i >= len(arr) {
				return nil
			}
			cur = arr[i]
		default:
			return nil
		}
	}
	return cur
}
