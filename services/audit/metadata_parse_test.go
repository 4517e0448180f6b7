package audit

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// referenceObject is how metadata was decoded before parseObject: encoding/json into a map, then
// structpb.NewStruct. parseObject must accept and give exactly the same.
func referenceObject(text string) (*structpb.Struct, bool) {
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil || m == nil {
		return nil, false
	}
	s, err := structpb.NewStruct(m)
	return s, err == nil
}

var parseObjectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"a":2}`, `{"a":[]}`, `{"a":[1,"x",true,false,null,{"b":{}}]}`,
	`{"access_token":"[REDACTED]","amount":12500,"fields":["Stage","Amount"],"module":"Deals","sergas.redacted":true}`,
	`{"n":-0}`, `{"n":0.5e-3}`, `{"n":1E+2}`, `{"n":1e400}`, `{"n":1e-400}`, `{"n":01}`, `{"n":1.}`, `{"n":-}`,
	`{"n":.5}`, `{"n":+1}`, `{"n":0x10}`, `{"n":1_0}`, `{"n":Infinity}`, `{"n":NaN}`,
	`{"s":"a\"b\\c\/d\b\f\n\r\t"}`, `{"s":"\u00e9\u4e2d"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\ud83d"}`, `{"s":"\ude00x"}`,
	`{"s":"\ud83d\u0041"}`, `{"s":"\ud83d\uZZZZ"}`, `{"s":"\ud83d\"}`, `{"s":"\x"}`, `{"s":"\u12"}`, "{\"s\":\"a\tb\"}",
	`{"s":"é中😀"}`, `{"\u0000":1}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a" 1}`, `{a:1}`, `{"a":tru}`, `{"a":truex}`,
	`{"a":nul}`, `{"a":1}x`, `{"a":1}{}`, `[]`, `null`, `1`, `"s"`, ``, ` `, `{`, `{"a"`, `{"a":`, `{"a":[1,]}`,
	`{"a":[1 2]}`, `{"a":{"b":[{"c":[[[]]]}]}}`, "{\"a\":1}\n", "\t{\"a\" :\r\n1 }",
}

func TestParseObjectMatchesEncodingJSON(t *testing.T) {
	for _, text := range parseObjectSeeds {
		checkParseObject(t, text)
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range parseObjectSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) { checkParseObject(t, text) })
}

func checkParseObject(t *testing.T, text string) {
	t.Helper()
	// decodeMetadata checks these first; parseObject relies on them.
	if !utf8.ValidString(text) || jsonDepth(text) > maxMetadataDepth {
		return
	}
	want, wok := referenceObject(text)
	got, gok := parseObject(text)
	if wok != gok {
		t.Fatalf("%q: parseObject ok=%v, encoding/json ok=%v", text, gok, wok)
	}
	if wok && !proto.Equal(want, got) {
		t.Fatalf("%q: parseObject gave %v, encoding/json %v", text, got, want)
	}
}
