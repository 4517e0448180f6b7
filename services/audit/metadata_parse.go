package audit

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// parseObject reads stored metadata text straight into a Struct. It accepts exactly what
// json.Unmarshal into a map[string]any followed by structpb.NewStruct accepts, and gives the same Struct
// (numbers as float64, the last of repeated keys, invalid \u surrogates as U+FFFD): FuzzParseObject
// compares the two. It exists because every event of a ListEvents page is decoded: going through a
// map[string]any and reflection cost about a fifth of the page's server time. The caller has checked
// that text is valid UTF-8 and nests at most maxMetadataDepth levels, which bounds the recursion.
func parseObject(text string) (*structpb.Struct, bool) {
	p := metaParser{s: text}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, false
	}
	st, ok := p.object()
	if !ok {
		return nil, false
	}
	p.space()
	return st, p.i == len(p.s)
}

// literals are JSON's three words; each call makes a fresh Value (a response may change what it holds).
var literals = [...]struct {
	word  string
	value func() *structpb.Value
}{
	{"true", func() *structpb.Value { return structpb.NewBoolValue(true) }},
	{"false", func() *structpb.Value { return structpb.NewBoolValue(false) }},
	{"null", structpb.NewNullValue},
}

type metaParser struct {
	s string
	i int
}

func (p *metaParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object reads {...}; p.s[p.i] is '{'.
func (p *metaParser) object() (*structpb.Struct, bool) {
	p.i++
	fields := map[string]*structpb.Value{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return &structpb.Struct{Fields: fields}, true
	}
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, false
		}
		key, ok := p.str()
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		fields[key] = v
		p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return &structpb.Struct{Fields: fields}, true
		default:
			return nil, false
		}
	}
}

// array reads [...]; p.s[p.i] is '['.
func (p *metaParser) array() (*structpb.ListValue, bool) {
	p.i++
	list := &structpb.ListValue{Values: []*structpb.Value{}}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return list, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		list.Values = append(list.Values, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return list, true
		default:
			return nil, false
		}
	}
}

func (p *metaParser) value() (*structpb.Value, bool) {
	p.space()
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		st, ok := p.object()
		return structpb.NewStructValue(st), ok
	case c == '[':
		l, ok := p.array()
		return structpb.NewListValue(l), ok
	case c == '"':
		s, ok := p.str()
		return structpb.NewStringValue(s), ok
	case c == '-' || (c >= '0' && c <= '9'):
		f, ok := p.number()
		return structpb.NewNumberValue(f), ok
	}
	for _, lit := range literals {
		if len(p.s)-p.i >= len(lit.word) && p.s[p.i:p.i+len(lit.word)] == lit.word {
			p.i += len(lit.word)
			return lit.value(), true
		}
	}
	return nil, false
}

// number reads a JSON number (the grammar, which strconv.ParseFloat alone would not enforce) as a
// float64; one out of float64's range is refused, as json.Unmarshal refuses it.
func (p *metaParser) number() (float64, bool) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return 0, false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if !p.digits() {
			return 0, false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	return f, err == nil
}

// digits reads one or more decimal digits.
func (p *metaParser) digits() bool {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// str reads a JSON string; p.s[p.i] is '"'. Without escapes the result shares the text's memory.
func (p *metaParser) str() (string, bool) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		default:
			p.i++
		}
	}
	return "", false
}

// escaped finishes a string that holds an escape, copying it from start.
func (p *metaParser) escaped(start int) (string, bool) {
	b := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return "", false
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A surrogate pair makes one rune; a lone surrogate is U+FFFD, as encoding/json has it.
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, ok := p.hex4()
					if ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b = utf8.AppendRune(b, d)
							continue
						}
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape.
func (p *metaParser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}
