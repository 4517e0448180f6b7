package audit

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sergas/core/internal/errs"
)

// MetadataFromJSON is the metadata text RecordEvent stores for a JSON object given as text (empty or
// null: no metadata), with add's keys added and the values of redactKeys' keys redacted: for importers
// (sergasctl import-legacy) that append through the store and must store exactly what the service
// would. The same checks apply (UTF-8 without NUL, depth, size, reserved keys); a key of add that the
// document already has is refused.
func MetadataFromJSON(text string, add map[string]string, redactKeys []string) (string, error) {
	if !utf8.ValidString(text) {
		return "", errs.Invalid("metadata is not valid UTF-8")
	}
	doc := map[string]any{}
	if t := strings.TrimSpace(text); t != "" && t != "null" {
		if jsonDepth(t) > maxMetadataDepth {
			return "", errs.Invalid("metadata nests more than %d levels", maxMetadataDepth)
		}
		var v any
		if err := json.Unmarshal([]byte(t), &v); err != nil {
			return "", errs.Invalid("metadata is not valid JSON")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return "", errs.Invalid("metadata is JSON but not an object")
		}
		doc = m
	}
	for k, v := range add {
		if _, ok := doc[k]; ok {
			return "", errs.Invalid("metadata already has the key %q, which the import adds", k)
		}
		doc[k] = v
	}
	s, err := structpb.NewStruct(doc)
	if err != nil {
		return "", errs.Invalid("metadata cannot be held: %v", err)
	}
	return canonicalJSON(s, newRedactor(redactKeys))
}
