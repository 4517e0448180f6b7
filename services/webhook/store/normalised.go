package store

import "encoding/json"

// StringsJSON is how RecordIDs and AffectedFields are stored: a JSON array of strings, "[]" for none.
func StringsJSON(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v) // strings always marshal
	return string(b)
}

// ParseStrings reads a column written by StringsJSON; none is nil, as EventInsert was given it.
func ParseStrings(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}
