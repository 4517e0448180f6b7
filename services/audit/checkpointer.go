package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/services/audit/store"
)

// DefaultCheckpointInterval is how often the chain head is signed without AUDIT_CHECKPOINT_INTERVAL.
// Whoever can write to the database can rewrite, and re-hash, the events after the last checkpoint
// without VerifyChain noticing; the interval bounds that window. A quarter of an hour keeps it short
// while costing at most 96 small rows a day, and none while nothing is appended.
const DefaultCheckpointInterval = 15 * time.Minute

// signTimeout bounds one checkpoint transaction.
const signTimeout = 30 * time.Second

// checkpointer signs the chain head: on demand (Sign, from any replica) and, as a single-replica
// platform worker (Run), every interval when the head moved since the last checkpoint.
type checkpointer struct {
	st       store.Store
	key      *signingKey
	interval time.Duration // 0: no schedule
	now      func() time.Time
	log      *slog.Logger
}

func newCheckpointer(st store.Store, key *signingKey, interval time.Duration, log *slog.Logger) *checkpointer {
	return &checkpointer{st: st, key: key, interval: interval, now: time.Now, log: log}
}

// Sign signs the chain head and anchor as they stand, stores the checkpoint and returns it. Head and
// anchor come from one read inside the checkpoint's transaction, so the statement signed is one the
// chain was in.
func (c *checkpointer) Sign(ctx context.Context, kind auditv1.CheckpointKind) (*store.Checkpoint, error) {
	return c.st.CheckpointAppend(ctx, func(st store.ChainState) (*store.Checkpoint, error) {
		cp := &store.Checkpoint{
			Sequence: st.HeadSeq, Hash: st.HeadHash, Time: c.now().UTC().Truncate(time.Microsecond), Kind: int32(kind),
			AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash, KeyID: c.key.keyID, PublicKey: c.key.pub,
		}
		cp.SignedText = SignedText(cp)
		cp.Signature = ed25519.Sign(c.key.priv, []byte(cp.SignedText))
		return cp, nil
	})
}

// Run signs a SCHEDULED checkpoint whenever interval has passed since the last checkpoint (of any kind,
// by any replica, before a restart too) and the head has moved since it. It returns when ctx ends; a
// database error fails the run, and the platform restarts it after a backoff.
func (c *checkpointer) Run(ctx context.Context) error {
	c.log.Info("audit checkpoints: signing the chain head on schedule", "interval", c.interval, "key_id", c.key.keyID)
	for {
		wait, err := c.tick(ctx)
		if err != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// tick signs when a checkpoint is due and returns how long to wait before the next one may be.
func (c *checkpointer) tick(ctx context.Context) (time.Duration, error) {
	ctx, span := tracing.StartJob(ctx, "audit checkpoint")
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, signTimeout)
	defer cancel()
	last, err := c.st.CheckpointList(ctx, store.CheckpointListParams{Limit: 1})
	if err != nil {
		return 0, err
	}
	now := c.now()
	if len(last) > 0 {
		// A checkpoint signed with a clock ahead of this one's waits at most one interval.
		if due := last[0].Time.Add(c.interval); now.Before(due) {
			return min(due.Sub(now), c.interval), nil
		}
	}
	st, err := c.st.ChainState(ctx)
	if err != nil {
		return 0, err
	}
	if st.HeadSeq == 0 || (len(last) > 0 && last[0].Sequence == st.HeadSeq && last[0].AnchorSeq == st.AnchorSeq) {
		return c.interval, nil // nothing new to sign
	}
	cp, err := c.Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_SCHEDULED)
	if err != nil {
		return 0, err
	}
	c.log.Info("audit checkpoint signed", "checkpoint", cp.ID, "kind", "scheduled", "sequence", cp.Sequence, "key_id", cp.KeyID)
	return c.interval, nil
}

// logSigningKey reports the public key at start, so that whoever verifies checkpoints can pin it.
func logSigningKey(log *slog.Logger, k *signingKey, source string) {
	log.Info("audit checkpoint signing key", "key_id", k.keyID, "public_key", base64.StdEncoding.EncodeToString(k.pub), "source", source)
}

// errNoSigningKey answers checkpoint requests in a process configured without a key (only possible
// when a Config is built by hand: LoadConfig requires one outside development mode).
var errNoSigningKey = errs.New(errs.KindFailedPrecondition, "checkpoints are not signed here: the audit service has no signing key (AUDIT_SIGNING_KEY)")
