package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// The verifier is meant to be read and run by a third party without the project: every package it
// imports (test files aside) is from Go's standard library.
func TestImportsAreStandardLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			// Standard library paths have no dot in their first element; module paths do.
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s, which is not in the standard library", name, path)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no source file checked")
	}
}

// The verifier's own encoding gives the hash the service computes (chain.Hash), for every version and
// for values that stress the encoding: empty, unicode, negative times, long text.
func TestHashMatchesTheService(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	text := func() string {
		parts := []string{"", "a", "é", "日本語", "\x00", strings.Repeat("x", 300), `{"k":1e+21}`}
		return parts[r.IntN(len(parts))] + parts[r.IntN(len(parts))]
	}
	for i := range 500 {
		f := chain.Fields{Version: int32(1 + i%3), Sequence: r.Int64N(1 << 40), ID: text(), OccurMicros: r.Int64() - r.Int64(),
			RecordMicros: r.Int64N(1 << 52), Actor: text(), Action: text(), Resource: text(), Outcome: int32(r.IntN(4)),
			Metadata: text(), IdempotencyKey: text(), Principal: text(), ActorType: int32(r.IntN(4)), SessionID: text(),
			RequestID: text(), SourceService: text()}
		prev := make([]byte, 32)
		for j := range prev {
			prev[j] = byte(r.IntN(256))
		}
		e := &event{Version: int64(f.Version), Sequence: f.Sequence, ID: f.ID, OccurMicros: f.OccurMicros, RecordMicros: f.RecordMicros,
			Actor: f.Actor, Action: f.Action, Resource: f.Resource, Outcome: int64(f.Outcome), Metadata: f.Metadata,
			IdempotencyKey: f.IdempotencyKey, Principal: f.Principal, ActorType: int64(f.ActorType), SessionID: f.SessionID,
			RequestID: f.RequestID, SourceService: f.SourceService, PreviousHash: prev}
		if got, want := hashEvent(e), chain.Hash(prev, f); !bytes.Equal(got, want) {
			t.Fatalf("version %d: verifier %x, service %x", f.Version, got, want)
		}
	}
}

// export builds an export of n events the way the service writes it (protobuf JSON, camelCase, 64-bit
// integers as strings, enums by name), with a checkpoint signed by priv at sequence signAt.
func export(t *testing.T, n, signAt int, priv ed25519.PrivateKey) []string {
	t.Helper()
	var lines []string
	prev := chain.Genesis
	base := time.Date(2026, 11, 26, 9, 0, 0, 123456000, time.UTC)
	var hashes [][]byte
	for i := 1; i <= n; i++ {
		meta := fmt.Sprintf(`{"n":%d,"note":"naïve 日本","big":1e+21,"small":0.1}`, i)
		f := chain.Fields{Version: chain.V3, Sequence: int64(i), ID: fmt.Sprintf("0193-%04d", i),
			OccurMicros: base.UnixMicro() - 5, RecordMicros: base.Add(time.Duration(i) * time.Millisecond).UnixMicro(),
			Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: 1, Metadata: meta,
			Principal: "key-1", ActorType: 1, SessionID: "s-1"}
		h := chain.Hash(prev, f)
		ev := map[string]any{
			"id": f.ID, "sequence": strconv.Itoa(i), "occurTime": time.UnixMicro(f.OccurMicros).UTC().Format(time.RFC3339Nano),
			"recordTime": time.UnixMicro(f.RecordMicros).UTC().Format(time.RFC3339Nano), "actor": f.Actor, "action": f.Action,
			"resource": f.Resource, "outcome": "OUTCOME_SUCCESS", "metadata": json.RawMessage(meta), "idempotencyKey": "",
			"previousHash": base64.StdEncoding.EncodeToString(prev), "hash": base64.StdEncoding.EncodeToString(h),
			"principal": f.Principal, "redacted": false, "actorType": "ACTOR_TYPE_AGENT", "sessionId": "s-1", "requestId": "",
			"sourceService": "", "hashVersion": 3, "metadataJson": meta,
		}
		lines = append(lines, line(t, map[string]any{"result": map[string]any{"event": ev}}))
		prev = h
		hashes = append(hashes, h)
	}
	if signAt > 0 {
		text := signedText(int64(signAt), hashes[signAt-1], priv.Public().(ed25519.PublicKey))
		lines = append(lines, line(t, map[string]any{"result": map[string]any{"checkpoint": map[string]any{
			"id": "7", "sequence": strconv.Itoa(signAt), "hash": base64.StdEncoding.EncodeToString(hashes[signAt-1]),
			"signedText": text, "signature": base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(text))),
		}}}))
	}
	return lines
}

// signedText is a checkpoint's signed text in the service's format (services/audit/checkpoint.go).
func signedText(seq int64, hash []byte, pub ed25519.PublicKey) string {
	return fmt.Sprintf("sergas-audit-checkpoint v1\nsequence: %d\nhash: %x\ntime: 2026-11-26T09:00:00.000000Z\nkind: on-demand\nanchor-sequence: 0\nanchor-hash: %x\nkey-id: %s\n",
		seq, hash, chain.Genesis, keyID(pub))
}

func line(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func keyFile(t *testing.T, pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func verify(lines []string, args ...string) (int, string) {
	var out bytes.Buffer
	code := run(args, strings.NewReader(strings.Join(lines, "\n")+"\n"), &out, &out)
	return code, out.String()
}

func TestVerifier(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	key := keyFile(t, pub)
	good := export(t, 5, 4, priv)

	code, out := verify(good, "-key", key, "-start", "1", "-end", "5")
	if code != 0 || !strings.Contains(out, "events 1..5 chain-verified") || !strings.Contains(out, "events 1..4 covered by checkpoint #7") ||
		!strings.Contains(out, "events 5..5 are chained but signed by no checkpoint") {
		t.Fatalf("a good export: exit %d\n%s", code, out)
	}

	// grpcurl prints the stream's messages as indented JSON without the "result" wrapper.
	var grpcurl []string
	for _, l := range good {
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(l), &m)
		var buf bytes.Buffer
		_ = json.Indent(&buf, m["result"], "", "  ")
		grpcurl = append(grpcurl, buf.String())
	}
	if code, out := verify(grpcurl, "-key", key); code != 0 {
		t.Fatalf("grpcurl's output: exit %d\n%s", code, out)
	}

	edit := func(i int, from, to string) []string {
		ls := append([]string(nil), good...)
		if !strings.Contains(ls[i], from) {
			t.Fatalf("line %d has no %q", i, from)
		}
		ls[i] = strings.Replace(ls[i], from, to, 1)
		return ls
	}
	without := func(i int) []string { return append(append([]string(nil), good[:i]...), good[i+1:]...) }
	swapped := append([]string(nil), good...)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	for name, c := range map[string]struct {
		lines []string
		args  []string
		want  string
	}{
		"changed actor":        {edit(2, `"agent-7"`, `"agent-8"`), nil, "sequence 3: its fields do not give its hash"},
		"changed metadata":     {edit(1, `\"big\":1e+21`, `\"big\":2e+21`), nil, "sequence 2: its fields do not give its hash"},
		"shown metadata":       {edit(1, `,"big":1e+21`, `,"big":3`), nil, "sequence 2: metadata differs from metadata_json"},
		"changed time":         {edit(3, `.123`, `.124`), nil, "sequence 4: its fields do not give its hash"},
		"outcome":              {edit(0, `OUTCOME_SUCCESS`, `OUTCOME_DENIED`), nil, "sequence 1: its fields do not give its hash"},
		"removed":              {without(2), nil, "sequence 4 follows sequence 2"},
		"reordered":            {swapped, nil, "sequence 3 follows sequence 1"},
		"cut":                  {good[:3], []string{"-end", "5"}, "ends at sequence 3, not 5"},
		"error line":           {append(good[:3:3], `{"error":{"code":14,"message":"unavailable"}}`), nil, "ended with an error"},
		"not JSON":             {edit(2, `{"result"`, `{"result`), nil, "not a JSON object"},
		"wrong key":            {good, []string{"-key", keyFile(t, other.Public().(ed25519.PublicKey))}, "checkpoint #7: the signature of signed_text does not verify"},
		"no checkpoint":        {good[:5], nil, "no signed checkpoint in the export covers events 1..5"},
		"checkpoint's hash":    {edit(5, `"hash":"`, `"hash":"A`), nil, "checkpoint #7"},
		"signed event changed": {rehash(t, good, 3), nil, "sequence 5: previous_hash is not the hash of sequence 4"},
		"other key id":         {resign(t, good, 5, priv, "key-id: ", "key-id: 00"), nil, "but its text names key 00"},
		"other format":         {resign(t, good, 5, priv, "checkpoint v1", "checkpoint v2"), nil, "is not a \"sergas-audit-checkpoint v1\" text"},
	} {
		t.Run(name, func(t *testing.T) {
			args := c.args
			if len(args) == 0 || args[0] != "-key" {
				args = append([]string{"-key", key}, args...)
			}
			code, out := verify(c.lines, args...)
			if code != 1 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want 1 and %q:\n%s", code, c.want, out)
			}
		})
	}
	if code, out := verify(good[:5], "-key", key, "-unsigned-ok"); code != 0 || !strings.Contains(out, "not proved unchanged") {
		t.Fatalf("-unsigned-ok: exit %d\n%s", code, out)
	}
}

// rehash changes event i (0-based) and recomputes its hash, as an attacker with the database would:
// its own hash verifies, and the break shows at the next link.
func rehash(t *testing.T, lines []string, i int) []string {
	var item struct {
		Result struct {
			Event map[string]any `json:"event"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[i]), &item); err != nil {
		t.Fatal(err)
	}
	e := item.Result.Event
	e["actor"] = "someone-else"
	prev, _ := base64.StdEncoding.DecodeString(e["previousHash"].(string))
	seq, _ := strconv.ParseInt(e["sequence"].(string), 10, 64)
	occur, _ := time.Parse(time.RFC3339Nano, e["occurTime"].(string))
	record, _ := time.Parse(time.RFC3339Nano, e["recordTime"].(string))
	h := chain.Hash(prev, chain.Fields{Version: 3, Sequence: seq, ID: e["id"].(string), OccurMicros: occur.UnixMicro(),
		RecordMicros: record.UnixMicro(), Actor: "someone-else", Action: e["action"].(string), Resource: e["resource"].(string),
		Outcome: 1, Metadata: e["metadataJson"].(string), Principal: e["principal"].(string), ActorType: 1, SessionID: "s-1"})
	e["hash"] = base64.StdEncoding.EncodeToString(h)
	out := append([]string(nil), lines...)
	out[i] = line(t, map[string]any{"result": map[string]any{"event": e}})
	return out
}

// resign edits the signed text of the checkpoint on line i and signs it again with priv.
func resign(t *testing.T, lines []string, i int, priv ed25519.PrivateKey, from, to string) []string {
	var item struct {
		Result struct {
			Checkpoint map[string]any `json:"checkpoint"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[i]), &item); err != nil {
		t.Fatal(err)
	}
	c := item.Result.Checkpoint
	text := strings.Replace(c["signedText"].(string), from, to, 1)
	c["signedText"], c["signature"] = text, base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(text)))
	out := append([]string(nil), lines...)
	out[i] = line(t, map[string]any{"result": map[string]any{"checkpoint": c}})
	return out
}

// The verifier reads the service's signed text (audit.SignedText) and names keys as the service does
// (audit.KeyID): two implementations of one documented format.
func TestSignedTextOfTheService(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	hash, anchor := bytes.Repeat([]byte{0xab}, 32), bytes.Repeat([]byte{0x01}, 32)
	c := &store.Checkpoint{Sequence: 1234, Hash: hash, Time: time.Date(2026, 11, 26, 9, 30, 0, 123456000, time.UTC),
		Kind: 3, AnchorSeq: 99, AnchorHash: anchor, KeyID: audit.KeyID(pub)}
	s, err := parseSigned(audit.SignedText(c))
	if err != nil {
		t.Fatal(err)
	}
	if s.Sequence != 1234 || !bytes.Equal(s.Hash, hash) || s.AnchorSequence != 99 || !bytes.Equal(s.AnchorHash, anchor) ||
		s.Time != "2026-11-26T09:30:00.123456Z" || s.KeyID != keyID(pub) || keyID(pub) != audit.KeyID(pub) {
		t.Fatalf("read %+v from\n%s", s, audit.SignedText(c))
	}
}

// The worked example of the README's canonical encoding.
func TestDocumentedExample(t *testing.T) {
	e := &event{Version: 3, Sequence: 1, ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", OccurMicros: 1795685400123456,
		RecordMicros: 1795685400123456, Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: 1,
		Metadata: `{"amount":0.1,"note":"Zoë"}`, Principal: "apikey:ops", ActorType: 1, SessionID: "s-1", PreviousHash: make([]byte, 32)}
	if got := fmt.Sprintf("%x", hashEvent(e)); got != "7b3fb1b3c05e66c97f876654596796468b04c6dd59979df48be3ffcc67bb60d9" {
		t.Fatalf("hash %s", got)
	}
}
