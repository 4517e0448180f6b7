package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// Retention configures how long events are kept.
type Retention struct {
	// Days: events recorded longer ago are removed (AUDIT_RETENTION_DAYS); 0 keeps everything.
	Days int
	// Every is how often retention runs (on the leader); Batch how many events one transaction removes,
	// which bounds how long appends wait on the chain head's lock.
	Every time.Duration
	Batch int64
}

// DefaultRetention is retention without configuration.
var DefaultRetention = Retention{Days: 365, Every: time.Hour, Batch: 5000}

// maxBatchesPerRun bounds one run (about an hour of batches at batchTarget); a larger backlog goes on
// at the next run.
const maxBatchesPerRun = 1 << 16

// batchTarget is how long one batch should hold the chain head (appends wait for it): each batch is
// sized from how long the last one took, between minBatch and Retention.Batch. Measured on the 2-core
// development machine, PostgreSQL deletes 5,000 events in about 20 ms, SQLite (eleven indexes and the
// anchor guard per row) in about 200 ms, so SQLite runs batches of about a thousand.
const (
	batchTarget = 50 * time.Millisecond
	minBatch    = 100
	firstBatch  = 1000
)

// retentionPrincipal writes the audit.retention events, which the service records about itself.
const retentionPrincipal = "service:sergas-audit"

// retainer removes old events as a single-replica platform worker: the prefix of the chain recorded
// more than Days ago, in batches, then records an audit.retention event and signs a RETENTION
// checkpoint whose anchor is the last removed event.
type retainer struct {
	st  store.Store
	cfg Retention
	cp  *checkpointer
	now func() time.Time
	log *slog.Logger
}

// Run runs retention at once and then every cfg.Every until ctx ends. A run that failed on the database
// fails the worker, which the platform restarts after a backoff; a run refused by the log itself (a gap:
// FAILED_PRECONDITION, logged by RunOnce) waits for the next run instead, since retrying sooner cannot
// help.
func (r *retainer) Run(ctx context.Context) error {
	r.log.Info("audit retention: removing events recorded before the retention period", "days", r.cfg.Days, "every", r.cfg.Every)
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil && errs.KindOf(err) != errs.KindFailedPrecondition {
			return err
		}
		t := time.NewTimer(r.cfg.Every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RunOnce removes what is due now and returns how many events it removed. Whenever the anchor is not
// the one the newest checkpoint signed (it moved now, or a run stopped between its cut and its
// checkpoint), it signs a RETENTION checkpoint, so that every anchor is vouched for. What a run removed
// is recorded and signed even when a later batch fails or the worker is stopped mid-run (within
// signTimeout), before the failure is returned.
func (r *retainer) RunOnce(ctx context.Context) (int64, error) {
	cutoff := r.now().Add(-time.Duration(r.cfg.Days) * 24 * time.Hour)
	var first, last store.Cut
	var removed int64
	var failed error
	// The first batch is small: the backend's speed is not known yet.
	batch := min(r.cfg.Batch, firstBatch)
	for i := 0; i < maxBatchesPerRun && ctx.Err() == nil; i++ {
		start := time.Now()
		cut, err := r.st.RetentionCut(ctx, cutoff, batch)
		batch = nextBatch(batch, time.Since(start), r.cfg.Batch)
		if err != nil {
			r.log.Error("audit retention failed", "error", err.Error(), "removed_before_failure", removed)
			failed = err
			break
		}
		if cut.Removed > 0 {
			if removed == 0 {
				first = cut
			}
			last, removed = cut, removed+cut.Removed
		}
		if !cut.More {
			break
		}
	}
	if removed == 0 && failed != nil {
		return 0, failed
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signTimeout)
	defer cancel()
	if removed > 0 {
		r.log.Info("audit retention removed events", "from_sequence", first.From+1, "through_sequence", last.Through,
			"removed", removed, "cutoff", cutoff.UTC().Format(time.RFC3339), "anchor_hash", hex.EncodeToString(last.AnchorHash))
		if err := r.record(fctx, first.From+1, last.Through, removed, cutoff); err != nil {
			return removed, errors.Join(failed, err)
		}
	}
	return removed, errors.Join(failed, r.vouch(fctx, removed > 0))
}

// record appends the audit.retention event that says what was removed.
func (r *retainer) record(ctx context.Context, from, through, removed int64, cutoff time.Time) error {
	meta, err := structpb.NewStruct(map[string]any{
		"from_sequence": from, "through_sequence": through, "removed": removed,
		"cutoff": cutoff.UTC().Format(time.RFC3339), "retention_days": r.cfg.Days,
	})
	if err != nil {
		return err
	}
	text, err := canonicalJSON(meta, newRedactor(nil))
	if err != nil {
		return err
	}
	now := r.now().UTC().Truncate(time.Microsecond)
	_, err = r.st.Append(ctx, []store.Pending{{Event: &store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OccurTime: now, RecordTime: now,
		Actor: "sergas-audit", Action: "audit.retention", Resource: "audit/events",
		Outcome: int32(auditv1.Outcome_OUTCOME_SUCCESS), Metadata: text, Principal: retentionPrincipal,
		ActorType: int32(auditv1.ActorType_ACTOR_TYPE_SERVICE), SourceService: "sergas-audit",
	}}})
	return err
}

// vouch signs a RETENTION checkpoint when this run cut, or when the newest checkpoint does not sign
// the current anchor (an earlier run stopped between its cut and its checkpoint).
func (r *retainer) vouch(ctx context.Context, cut bool) error {
	if !cut {
		st, err := r.st.ChainState(ctx)
		if err != nil || st.AnchorSeq == 0 {
			return err
		}
		last, err := r.st.CheckpointList(ctx, store.CheckpointListParams{Limit: 1})
		if err != nil || (len(last) > 0 && last[0].AnchorSeq == st.AnchorSeq) {
			return err
		}
	}
	cp, err := r.cp.Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION)
	if err != nil {
		return err
	}
	r.log.Info("audit checkpoint signed", "checkpoint", cp.ID, "kind", "retention", "sequence", cp.Sequence,
		"anchor_sequence", cp.AnchorSeq, "key_id", cp.KeyID)
	return nil
}

// nextBatch sizes the next batch so that it takes about batchTarget, given that batch took took; it
// grows at most fourfold at a time, so that one fast batch (a cold cache warmed) does not overshoot.
func nextBatch(batch int64, took time.Duration, most int64) int64 {
	next := most
	if took > 0 {
		next = min(most, 4*batch, int64(float64(batch)*float64(batchTarget)/float64(took)))
	}
	return max(min(minBatch, most), next)
}
