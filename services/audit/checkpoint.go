package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/store"
)

// CheckpointFormat is the first line of every signed checkpoint text.
const CheckpointFormat = "sergas-audit-checkpoint v1"

// checkpointTimeLayout is RFC 3339 in UTC with exactly six fractional digits (microseconds, the
// precision the log stores).
const checkpointTimeLayout = "2006-01-02T15:04:05.000000Z"

// kindNames are the words the signed text uses for auditv1.CheckpointKind.
var kindNames = map[auditv1.CheckpointKind]string{
	auditv1.CheckpointKind_CHECKPOINT_KIND_SCHEDULED: "scheduled",
	auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND: "on-demand",
	auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION: "retention",
}

// SignedText is the text a checkpoint signs: UTF-8, one "name: value" line per field in this order,
// each ending in "\n" (the last one too), nothing else:
//
//	sergas-audit-checkpoint v1
//	sequence: 1234
//	hash: <64 lower-case hex digits>
//	time: 2026-11-26T09:30:00.123456Z
//	kind: scheduled | on-demand | retention
//	anchor-sequence: 0
//	anchor-hash: <64 lower-case hex digits>
//	key-id: <16 lower-case hex digits>
//
// It says: "the key key-id states that at time the audit log's chain, starting after the event
// anchor-sequence whose hash is anchor-hash (0 and 32 zero bytes: the start of the log), reached event
// sequence with hash hash". The signature is Ed25519 over exactly these bytes (no pre-hash), which
// `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in text -sigfile sig` and crypto/ed25519 check.
func SignedText(c *store.Checkpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nsequence: %d\nhash: %x\ntime: %s\nkind: %s\nanchor-sequence: %d\nanchor-hash: %x\nkey-id: %s\n",
		CheckpointFormat, c.Sequence, c.Hash, c.Time.UTC().Format(checkpointTimeLayout),
		kindNames[auditv1.CheckpointKind(c.Kind)], c.AnchorSeq, c.AnchorHash, c.KeyID)
	return b.String()
}

// VerifyCheckpoint checks a stored checkpoint on its own: its signed text is the one its fields give,
// its key id names its public key, and the signature verifies. It says nothing about whether the chain
// still matches (VerifyChain compares that).
func VerifyCheckpoint(c *store.Checkpoint) error {
	switch {
	case len(c.PublicKey) != ed25519.PublicKeySize:
		return errors.New("the public key is not a 32-byte Ed25519 key")
	case c.KeyID != KeyID(c.PublicKey):
		return errors.New("the key id does not name the public key")
	case c.SignedText != SignedText(c):
		return errors.New("the signed text does not hold the checkpoint's fields")
	case !ed25519.Verify(c.PublicKey, []byte(c.SignedText), c.Signature):
		return errors.New("the signature does not verify")
	}
	return nil
}

// ParseSignedText reads a signed text back into a checkpoint's fields (ID, PublicKey and Signature are
// not in it), refusing anything SignedText would not have written: a third party's reader in Go.
func ParseSignedText(text string) (*store.Checkpoint, error) {
	lines := strings.Split(text, "\n")
	names := []string{"sequence", "hash", "time", "kind", "anchor-sequence", "anchor-hash", "key-id"}
	if len(lines) != len(names)+2 || lines[0] != CheckpointFormat || lines[len(lines)-1] != "" {
		return nil, errors.New("not a " + CheckpointFormat + " text")
	}
	v := map[string]string{}
	for i, name := range names {
		val, ok := strings.CutPrefix(lines[i+1], name+": ")
		if !ok {
			return nil, fmt.Errorf("line %d is not %q", i+2, name)
		}
		v[name] = val
	}
	c := &store.Checkpoint{KeyID: v["key-id"], SignedText: text}
	var err error
	if c.Sequence, err = strconv.ParseInt(v["sequence"], 10, 64); err != nil {
		return nil, errors.New("bad sequence")
	}
	if c.AnchorSeq, err = strconv.ParseInt(v["anchor-sequence"], 10, 64); err != nil {
		return nil, errors.New("bad anchor-sequence")
	}
	if c.Hash, err = hex.DecodeString(v["hash"]); err != nil {
		return nil, errors.New("bad hash")
	}
	if c.AnchorHash, err = hex.DecodeString(v["anchor-hash"]); err != nil {
		return nil, errors.New("bad anchor-hash")
	}
	if c.Time, err = time.Parse(checkpointTimeLayout, v["time"]); err != nil {
		return nil, errors.New("bad time")
	}
	for k, name := range kindNames {
		if name == v["kind"] {
			c.Kind = int32(k)
		}
	}
	if c.Kind == 0 {
		return nil, errors.New("bad kind")
	}
	if !bytes.Equal([]byte(SignedText(c)), []byte(text)) {
		return nil, errors.New("not in canonical form")
	}
	return c, nil
}

// checkpointToProto converts a stored checkpoint for a response.
func checkpointToProto(c *store.Checkpoint) *auditv1.Checkpoint {
	return &auditv1.Checkpoint{
		Id: c.ID, Sequence: c.Sequence, Hash: c.Hash, Time: timestamp(c.Time), Kind: auditv1.CheckpointKind(c.Kind),
		AnchorSequence: c.AnchorSeq, AnchorHash: c.AnchorHash, KeyId: c.KeyID,
		SignedText: c.SignedText, Signature: c.Signature,
	}
}
