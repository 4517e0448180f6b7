// Command auditverify checks an audit export (ExportEvents) without trusting the service that produced
// it: it recomputes every event's hash from the canonical encoding documented in the README, checks that
// each event links to the one before it, and checks each signed checkpoint's Ed25519 signature with the
// public key given, and that the exported event at the checkpoint's sequence has the signed hash.
//
//	go run ./tools/auditverify -key signing-key.pem < export.ndjson
//
// It reads the REST export (one JSON object per line, {"result": {"event": ...}} or
// {"result": {"checkpoint": ...}}) or the gRPC stream's messages as JSON ({"event": ...}, as grpcurl
// prints them), prints what it proved, and exits non-zero on any failure. It uses the Go standard
// library only and none of the service's code, so that it is an independent implementation.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run verifies the export read from in and returns the exit code.
func run(args []string, in io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("auditverify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keyFiles []string
	fs.Func("key", "the signing public key: a PEM file, or the JSON of GET /v1/audit/signing-key (repeat for several keys)",
		func(s string) error { keyFiles = append(keyFiles, s); return nil })
	start := fs.Int64("start", 0, "fail unless the export starts at this sequence")
	end := fs.Int64("end", 0, "fail unless the export ends at this sequence (tells a complete export from a cut one)")
	unsigned := fs.Bool("unsigned-ok", false, "succeed even when no signed checkpoint covers the events")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var keys []ed25519.PublicKey
	for _, f := range keyFiles {
		k, err := readKey(f)
		if err != nil {
			fmt.Fprintf(stderr, "auditverify: key %s: %v\n", f, err)
			return 2
		}
		keys = append(keys, k)
	}
	v := &verifier{keys: keys}
	v.read(in)
	v.finish(*start, *end, *unsigned)
	for _, line := range v.proved {
		fmt.Fprintln(stdout, line)
	}
	for _, f := range v.failures {
		fmt.Fprintln(stdout, "FAIL:", f)
	}
	if len(v.failures) > 0 {
		return 1
	}
	return 0
}

// event is an exported event: the fields the hash covers, as exported.
type event struct {
	Version                             int64
	Sequence                            int64
	ID                                  string
	OccurMicros, RecordMicros           int64
	Actor, Action, Resource             string
	Outcome                             int64
	Metadata                            string
	IdempotencyKey, Principal           string
	ActorType                           int64
	SessionID, RequestID, SourceService string
	PreviousHash, Hash                  []byte
	shownMetadata                       json.RawMessage // the metadata object shown beside metadata_json
	redacted                            bool
}

// checkpoint is an exported checkpoint; only what the signature covers is believed.
type checkpoint struct {
	ID         int64
	SignedText string
	Signature  []byte
	// What the checkpoint's fields say, to be compared with what its signed text says.
	Sequence int64
	Hash     []byte
}

type verifier struct {
	keys []ed25519.PublicKey
	// Of the events only what the checks after them need is kept, so that memory grows by 40 bytes an
	// event: the first event's link, the last event, and every sequence with its hash.
	first, last *event
	hashes      []seqHash
	checkpoints []*checkpoint
	proved      []string
	failures    []string
	cut         string // the export's error line, if any
}

func (v *verifier) fail(format string, args ...any) {
	if len(v.failures) < 50 {
		v.failures = append(v.failures, fmt.Sprintf(format, args...))
	} else if len(v.failures) == 50 {
		v.failures = append(v.failures, "more failures not shown")
	}
}

// where names the position after the last event read, for errors that have no sequence of their own.
func (v *verifier) where() string {
	if v.last == nil {
		return "before the first event"
	}
	return fmt.Sprintf("after sequence %d", v.last.Sequence)
}

// seqHash is an event's sequence and hash.
type seqHash struct {
	seq  int64
	hash [sha256.Size]byte
}

// hashAt returns the hash of the event exported at seq, nil when the export holds none.
func (v *verifier) hashAt(seq int64) []byte {
	// Sequences rise (checkEvent fails the export otherwise): search.
	i, j := 0, len(v.hashes)
	for i < j {
		if h := i + (j-i)/2; v.hashes[h].seq < seq {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < len(v.hashes) && v.hashes[i].seq == seq {
		return v.hashes[i].hash[:]
	}
	return nil
}

// read decodes every JSON value of the export: NDJSON lines or messages printed one after another.
func (v *verifier) read(in io.Reader) {
	dec := json.NewDecoder(in)
	dec.UseNumber()
	for n := 1; ; n++ {
		var item map[string]json.RawMessage
		if err := dec.Decode(&item); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			v.fail("item %d (%s) is not a JSON object: %v", n, v.where(), err)
			return
		}
		if r, ok := item["result"]; ok {
			item = nil
			if err := json.Unmarshal(r, &item); err != nil {
				v.fail("item %d (%s): result is not an object", n, v.where())
				continue
			}
		}
		switch {
		case item["error"] != nil:
			v.cut = string(item["error"])
			v.fail("the export ended with an error %s, %s: it is incomplete", v.cut, v.where())
		case item["event"] != nil:
			e, err := parseEvent(item["event"])
			if err != nil {
				v.fail("item %d (%s): %v", n, v.where(), err)
				continue
			}
			v.checkEvent(e)
			if v.first == nil {
				v.first = e
			}
			v.last = e
			sh := seqHash{seq: e.Sequence}
			copy(sh.hash[:], e.Hash)
			v.hashes = append(v.hashes, sh)
		case item["checkpoint"] != nil:
			c, err := parseCheckpoint(item["checkpoint"])
			if err != nil {
				v.fail("item %d (%s): %v", n, v.where(), err)
				continue
			}
			v.checkpoints = append(v.checkpoints, c)
		default:
			v.fail("item %d (%s) is neither an event, a checkpoint nor an error", n, v.where())
		}
	}
}

// checkEvent recomputes e's hash and checks that it follows the previous event.
func (v *verifier) checkEvent(e *event) {
	if len(v.checkpoints) > 0 {
		v.fail("sequence %d: an event after the checkpoints (events come first)", e.Sequence)
	}
	if got := hashEvent(e); got == nil {
		v.fail("sequence %d: unknown hash_version %d", e.Sequence, e.Version)
	} else if !bytes.Equal(got, e.Hash) {
		v.fail("sequence %d: its fields do not give its hash (the event was changed)", e.Sequence)
	}
	if err := sameMetadata(e); err != nil {
		v.fail("sequence %d: %v", e.Sequence, err)
	}
	if v.last == nil {
		if e.Sequence == 1 && !bytes.Equal(e.PreviousHash, make([]byte, sha256.Size)) {
			v.fail("sequence 1: previous_hash is not 32 zero bytes")
		}
		return
	}
	prev := v.last
	switch {
	case e.Sequence != prev.Sequence+1:
		v.fail("sequence %d follows sequence %d: the export is not one unbroken run (sequence %d missing or moved)",
			e.Sequence, prev.Sequence, prev.Sequence+1)
	case !bytes.Equal(e.PreviousHash, prev.Hash):
		v.fail("sequence %d: previous_hash is not the hash of sequence %d (an event was changed, inserted or removed)",
			e.Sequence, prev.Sequence)
	}
}

// sameMetadata checks that the metadata shown as an object is the metadata_json that the hash covers, so
// that a reader of the object reads what was hashed.
func sameMetadata(e *event) error {
	var hashed, shown map[string]any
	if err := json.Unmarshal([]byte(e.Metadata), &hashed); err != nil {
		return errors.New("metadata_json is not a JSON object")
	}
	if len(e.shownMetadata) == 0 || string(e.shownMetadata) == "null" {
		return nil // the shown form is optional; the hash covers metadata_json
	}
	if err := json.Unmarshal(e.shownMetadata, &shown); err != nil {
		return errors.New("metadata is not a JSON object")
	}
	if s, ok := shown["sergas.unreadable_metadata"].(string); ok && len(shown) == 1 && s == e.Metadata {
		return nil // the service shows stored text it cannot decode as one string
	}
	if !reflect.DeepEqual(hashed, shown) {
		return errors.New("metadata differs from metadata_json (what the hash covers)")
	}
	if red, _ := hashed["sergas.redacted"].(bool); red != e.redacted {
		return errors.New("redacted disagrees with the metadata's sergas.redacted")
	}
	return nil
}

// hashEvent is the canonical encoding (README, "Audit export"): SHA-256 over the version's tag, then the
// fields in a fixed order; integers are 8-byte big-endian (two's complement), byte strings are their
// length as such an integer followed by their bytes. nil for an unknown version.
func hashEvent(e *event) []byte {
	if e.Version < 1 || e.Version > 3 {
		return nil
	}
	h := sha256.New()
	h.Write([]byte("sergas.audit.v" + strconv.FormatInt(e.Version, 10) + "\x00"))
	num := func(n int64) { h.Write(binary.BigEndian.AppendUint64(nil, uint64(n))) }
	str := func(b []byte) { num(int64(len(b))); h.Write(b) }
	str(e.PreviousHash)
	num(e.Sequence)
	str([]byte(e.ID))
	num(e.OccurMicros)
	num(e.RecordMicros)
	str([]byte(e.Actor))
	str([]byte(e.Action))
	str([]byte(e.Resource))
	num(e.Outcome)
	str([]byte(e.Metadata))
	str([]byte(e.IdempotencyKey))
	if e.Version >= 2 {
		str([]byte(e.Principal))
	}
	if e.Version >= 3 {
		num(e.ActorType)
		str([]byte(e.SessionID))
		str([]byte(e.RequestID))
		str([]byte(e.SourceService))
	}
	return h.Sum(nil)
}

// finish checks the checkpoints against the events and states what was proved.
func (v *verifier) finish(start, end int64, unsignedOK bool) {
	if v.last == nil {
		v.fail("the export holds no event")
		return
	}
	first, last := v.first.Sequence, v.last.Sequence
	if start != 0 && first != start {
		v.fail("the export starts at sequence %d, not %d", first, start)
	}
	if end != 0 && last != end {
		v.fail("the export ends at sequence %d, not %d: it was cut short or is another range", last, end)
	}
	var covered int64 // the highest sequence a valid checkpoint signs
	var coveredBy string
	for _, c := range v.checkpoints {
		s, err := v.checkCheckpoint(c)
		if err != nil {
			v.fail("checkpoint #%d: %v", c.ID, err)
			continue
		}
		v.proved = append(v.proved, fmt.Sprintf("checkpoint #%d: signature valid (%s); the exported event at sequence %d has the signed hash",
			c.ID, s.describe(), s.Sequence))
		if s.AnchorSequence == first-1 && len(s.AnchorHash) > 0 {
			if !bytes.Equal(v.first.PreviousHash, s.AnchorHash) {
				v.fail("sequence %d: previous_hash is not the anchor hash signed in checkpoint #%d", first, c.ID)
			} else if first > 1 {
				v.proved = append(v.proved, fmt.Sprintf("sequence %d links to the retention anchor (sequence %d) signed in checkpoint #%d", first, first-1, c.ID))
			}
		}
		if s.Sequence > covered {
			covered, coveredBy = s.Sequence, fmt.Sprintf("checkpoint #%d (%s)", c.ID, s.describe())
		}
	}
	if len(v.failures) > 0 {
		return
	}
	v.proved = append(v.proved, fmt.Sprintf("events %d..%d chain-verified: %d events, every hash recomputed from its fields, every link checked",
		first, last, len(v.hashes)))
	switch {
	case covered > 0:
		v.proved = append(v.proved, fmt.Sprintf("events %d..%d covered by %s: none of them can have changed since it was signed", first, covered, coveredBy))
		if covered < last {
			v.proved = append(v.proved, fmt.Sprintf("events %d..%d are chained but signed by no checkpoint in this export", covered+1, last))
		}
	case unsignedOK:
		v.proved = append(v.proved, "no signed checkpoint covers these events: they are consistent, not proved unchanged")
	default:
		v.fail("no signed checkpoint in the export covers events %d..%d: export a range that ends at or after a checkpoint, or pass -unsigned-ok", first, last)
	}
}

// checkCheckpoint verifies c's signature and that the event it signs was exported with the signed hash.
func (v *verifier) checkCheckpoint(c *checkpoint) (*signed, error) {
	if len(v.keys) == 0 {
		return nil, errors.New("no public key given (-key) to check its signature")
	}
	var by ed25519.PublicKey
	for _, k := range v.keys {
		if ed25519.Verify(k, []byte(c.SignedText), c.Signature) {
			by = k
		}
	}
	if by == nil {
		return nil, errors.New("the signature of signed_text does not verify with the key given")
	}
	s, err := parseSigned(c.SignedText)
	if err != nil {
		return nil, err
	}
	if s.KeyID != keyID(by) {
		return nil, fmt.Errorf("signed by key %s, but its text names key %s", keyID(by), s.KeyID)
	}
	if s.Sequence != c.Sequence || !bytes.Equal(s.Hash, c.Hash) {
		return nil, errors.New("its sequence or hash fields differ from its signed text")
	}
	h := v.hashAt(s.Sequence)
	if h == nil {
		return nil, fmt.Errorf("signs sequence %d, which the export does not hold", s.Sequence)
	}
	if !bytes.Equal(h, s.Hash) {
		return nil, fmt.Errorf("sequence %d: the exported event's hash is not the signed one (the chain was rewritten)", s.Sequence)
	}
	return s, nil
}

// readKey reads an Ed25519 public key from a PEM "PUBLIC KEY" block or from the JSON that
// GET /v1/audit/signing-key answers (its public_key_pem).
func readKey(path string) (ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var resp map[string]json.RawMessage
		if err := json.Unmarshal(t, &resp); err != nil {
			return nil, err
		}
		var p string
		if err := json.Unmarshal(field(resp, "publicKeyPem", "public_key_pem"), &p); err != nil {
			return nil, errors.New("no public_key_pem in the JSON")
		}
		raw = []byte(p)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New(`not a PEM "PUBLIC KEY" block`)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return pub, nil
}

// field returns the value under the JSON name (REST, grpcurl) or the proto name.
func field(m map[string]json.RawMessage, jsonName, protoName string) json.RawMessage {
	if v, ok := m[jsonName]; ok {
		return v
	}
	return m[protoName]
}

// fields decodes a JSON object's values by name, with errors naming the field.
type fields struct {
	m   map[string]json.RawMessage
	err error
}

func (f *fields) str(jsonName, protoName string) string {
	raw := field(f.m, jsonName, protoName)
	var s string
	if len(raw) > 0 && string(raw) != "null" && json.Unmarshal(raw, &s) != nil && f.err == nil {
		f.err = fmt.Errorf("%s is not a string", protoName)
	}
	return s
}

// int reads an integer written as a JSON number or, as protobuf's JSON writes 64-bit integers, a string.
func (f *fields) int(jsonName, protoName string) int64 {
	s := strings.Trim(string(field(f.m, jsonName, protoName)), `"`)
	if s == "" || s == "null" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s is not an integer", protoName)
	}
	return n
}

// enum reads an enum by name (prefix_NAME, as protobuf's JSON writes it) or by number.
func (f *fields) enum(jsonName, protoName string, names []string) int64 {
	s := f.str(jsonName, protoName)
	if f.err != nil { // a number, not a string
		f.err = nil
		return f.int(jsonName, protoName)
	}
	for i, n := range names {
		if s == n {
			return int64(i)
		}
	}
	if s != "" && f.err == nil {
		f.err = fmt.Errorf("%s has an unknown value %q", protoName, s)
	}
	return 0
}

// bytes reads base64 (standard or URL alphabet, padded or not, as protobuf's JSON readers accept).
func (f *fields) bytes(jsonName, protoName string) []byte {
	s := strings.TrimRight(strings.NewReplacer("-", "+", "_", "/").Replace(f.str(jsonName, protoName)), "=")
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s is not base64", protoName)
	}
	return b
}

// micros reads a protobuf JSON timestamp (RFC 3339, UTC) as microseconds since 1970, the unit the
// encoding hashes; the service stores whole microseconds, so finer digits mean a changed value.
func (f *fields) micros(jsonName, protoName string) int64 {
	s := f.str(jsonName, protoName)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Nanosecond()%1000 != 0 {
		if f.err == nil {
			f.err = fmt.Errorf("%s is not a timestamp in whole microseconds", protoName)
		}
		return 0
	}
	return t.UnixMicro()
}

var (
	outcomes   = []string{"OUTCOME_UNSPECIFIED", "OUTCOME_SUCCESS", "OUTCOME_FAILURE", "OUTCOME_DENIED"}
	actorTypes = []string{"ACTOR_TYPE_UNSPECIFIED", "ACTOR_TYPE_AGENT", "ACTOR_TYPE_USER", "ACTOR_TYPE_SERVICE"}
)

func parseEvent(raw json.RawMessage) (*event, error) {
	f := &fields{}
	if err := json.Unmarshal(raw, &f.m); err != nil {
		return nil, errors.New("event is not a JSON object")
	}
	e := &event{
		Version: f.int("hashVersion", "hash_version"), Sequence: f.int("sequence", "sequence"), ID: f.str("id", "id"),
		OccurMicros: f.micros("occurTime", "occur_time"), RecordMicros: f.micros("recordTime", "record_time"),
		Actor: f.str("actor", "actor"), Action: f.str("action", "action"), Resource: f.str("resource", "resource"),
		Outcome: f.enum("outcome", "outcome", outcomes), Metadata: f.str("metadataJson", "metadata_json"),
		IdempotencyKey: f.str("idempotencyKey", "idempotency_key"), Principal: f.str("principal", "principal"),
		ActorType: f.enum("actorType", "actor_type", actorTypes), SessionID: f.str("sessionId", "session_id"),
		RequestID: f.str("requestId", "request_id"), SourceService: f.str("sourceService", "source_service"),
		PreviousHash: f.bytes("previousHash", "previous_hash"), Hash: f.bytes("hash", "hash"),
		shownMetadata: field(f.m, "metadata", "metadata"),
	}
	e.redacted = string(field(f.m, "redacted", "redacted")) == "true"
	if f.err != nil {
		if e.Sequence != 0 {
			return nil, fmt.Errorf("sequence %d: %v", e.Sequence, f.err)
		}
		return nil, f.err
	}
	return e, nil
}

func parseCheckpoint(raw json.RawMessage) (*checkpoint, error) {
	f := &fields{}
	if err := json.Unmarshal(raw, &f.m); err != nil {
		return nil, errors.New("checkpoint is not a JSON object")
	}
	c := &checkpoint{ID: f.int("id", "id"), SignedText: f.str("signedText", "signed_text"), Signature: f.bytes("signature", "signature"),
		Sequence: f.int("sequence", "sequence"), Hash: f.bytes("hash", "hash")}
	if f.err != nil {
		return nil, fmt.Errorf("checkpoint #%d: %v", c.ID, f.err)
	}
	return c, nil
}

// hexBytes decodes a hash written in lower-case hex.
func hexBytes(s string) ([]byte, error) {
	if s != strings.ToLower(s) {
		return nil, errors.New("not lower-case hex")
	}
	return hex.DecodeString(s)
}

// signed is what a checkpoint's signed text states.
type signed struct {
	Sequence       int64
	Hash           []byte
	AnchorSequence int64
	AnchorHash     []byte
	Time, KeyID    string
}

func (s *signed) describe() string {
	d := "sequence " + strconv.FormatInt(s.Sequence, 10)
	if s.Time != "" {
		d += ", signed " + s.Time
	}
	if s.KeyID != "" {
		d += " by key " + s.KeyID
	}
	return d
}

// checkpointFormat is the first line of the signed text of the checkpoints this program reads.
const checkpointFormat = "sergas-audit-checkpoint v1"

// parseSigned reads the lines of a checkpoint's signed text that this check needs (README, "Checkpoint
// format"): after the format line, one "name: value" line per field; the lines not named here are covered
// by the signature and not interpreted.
func parseSigned(text string) (*signed, error) {
	lines := strings.Split(text, "\n")
	if lines[0] != checkpointFormat {
		return nil, fmt.Errorf("signed text is not a %q text", checkpointFormat)
	}
	s := &signed{}
	seen := map[string]bool{}
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		var err error
		switch name {
		case "sequence":
			s.Sequence, err = strconv.ParseInt(value, 10, 64)
		case "hash":
			s.Hash, err = hexBytes(value)
		case "anchor-sequence":
			s.AnchorSequence, err = strconv.ParseInt(value, 10, 64)
		case "anchor-hash":
			s.AnchorHash, err = hexBytes(value)
		case "time":
			s.Time = value
		case "key-id":
			s.KeyID = value
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("signed text: %s: %v", name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("signed text: %s given twice", name)
		}
		seen[name] = true
	}
	if !seen["sequence"] || !seen["hash"] || !seen["key-id"] {
		return nil, errors.New("signed text lacks its sequence, hash or key-id line")
	}
	return s, nil
}

// keyID is the id the service gives an Ed25519 public key: the first 8 bytes of the SHA-256 of its 32
// raw bytes, in lower-case hex.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
