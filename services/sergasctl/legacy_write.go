package sergasctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/internal/sqlq"
	auditstore "github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/token"
	tokenstore "github.com/sergas/core/services/token/store"
)

// legacyAuditBatch is how many events one append transaction holds: the chain head is locked for one
// batch at a time, so the audit service's own appends wait at most one batch.
const legacyAuditBatch = 500

// sealConn seals c's tokens with the keyring's primary key and checks them with the service's opener.
func sealConn(ring *keyring.Keyring, c *importConn) error {
	k := tokenstore.Key{Provider: c.Conn.Provider, ConnectionID: c.Conn.ConnectionID}
	var err error
	if c.Conn.AccessToken, c.Conn.RefreshToken, err = token.SealTokens(ring, k, c.Access, c.Refresh); err != nil {
		return err
	}
	c.Conn.KeyID = ring.Primary
	if err := token.OpenSealed(ring, &c.Conn); err != nil {
		return fmt.Errorf("a token sealed for %s/%s does not open with the token service's own code: %w", k.Provider, k.ConnectionID, err)
	}
	return nil
}

// The token store has no operation that inserts a connection with its own create time, only if absent,
// together with its history (ConnectionPut replaces and stamps one time; history rows are written only by
// refreshes). These statements do it over the store's tables in one transaction, in SQL both backends
// run (ON CONFLICT DO NOTHING, numbered placeholders rebound for SQLite), with times encoded as the
// store encodes them (Unix microseconds on SQLite, timestamptz on PostgreSQL).
const (
	legacyInsertConn = `INSERT INTO connections (provider, connection_id, key_id, access_token, refresh_token, client_id,
			client_secret, token_type, expire_time, scopes, api_domain, status, create_time, update_time,
			last_refresh_time, last_refresh_outcome, last_refresh_error)
		VALUES ($1, $2, $3, $4, $5, '', NULL, $6, $7, '[]', '', $8, $9, $10, $11, $12, $13)
		ON CONFLICT (provider, connection_id) DO NOTHING`
	legacyInsertRefresh = `INSERT INTO refresh_events (provider, connection_id, time, outcome, previous_expire_time,
			new_expire_time, error_class, rotated, replica)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)`
)

// tokenWriter writes imported connections on one token database.
type tokenWriter struct {
	cn *conn
}

func (w tokenWriter) q(stmt string) string {
	if w.cn.SQLite != nil {
		return sqlq.Rebind(stmt)
	}
	return stmt
}

func (w tokenWriter) t(t time.Time) any {
	switch {
	case t.IsZero():
		return nil
	case w.cn.SQLite != nil:
		return t.UnixMicro()
	}
	return t.UTC()
}

// exists reports whether the connection is stored already.
func (w tokenWriter) exists(ctx context.Context, c *importConn) (bool, error) {
	_, err := tokenStore(w.cn).ConnectionGet(ctx, tokenstore.Key{Provider: c.Conn.Provider, ConnectionID: c.Conn.ConnectionID})
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// insert stores the sealed connection and its history in one transaction, unless a connection with its
// key exists (an earlier import, or one made in Sergas Core): then nothing is written and it reports
// false. An interrupted run therefore leaves each connection whole or absent.
func (w tokenWriter) insert(ctx context.Context, c *importConn) (bool, error) {
	tx, err := w.cn.SQL.BeginTx(ctx, nil)
	if err != nil {
		return false, explainBusy(w.cn, "begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	k := c.Conn
	res, err := tx.ExecContext(ctx, w.q(legacyInsertConn), k.Provider, k.ConnectionID, k.KeyID, k.AccessToken, k.RefreshToken,
		k.TokenType, w.t(k.ExpireTime), int(k.Status), w.t(k.CreateTime), w.t(k.UpdateTime), w.t(k.LastRefreshTime),
		int(k.LastRefreshOutcome), k.LastRefreshError)
	if err != nil {
		return false, explainBusy(w.cn, "insert connection "+k.ConnectionID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	for _, e := range c.Events {
		if _, err := tx.ExecContext(ctx, w.q(legacyInsertRefresh), e.Provider, e.ConnectionID, w.t(e.Time), int(e.Outcome),
			w.t(e.PreviousExpireTime), w.t(e.NewExpireTime), e.ErrorClass, e.Replica); err != nil {
			return false, explainBusy(w.cn, "insert refresh history of "+k.ConnectionID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, explainBusy(w.cn, "commit connection "+k.ConnectionID, err)
	}
	return true, nil
}

// auditCounts is what appending the legacy events did.
type auditCounts struct {
	Imported  int
	Present   int      // stored by an earlier import (same id, key and content)
	Conflicts []badRow // stored by an earlier import with other content
}

// appendLegacyEvents appends es through the audit store's own append (chain, idempotency keys), a
// batch per transaction, in order. A rerun finds every event by its idempotency key and appends nothing.
func appendLegacyEvents(ctx context.Context, st auditstore.Store, es []*auditstore.Event, prog *progress) (auditCounts, error) {
	var out auditCounts
	for start := 0; start < len(es); start += legacyAuditBatch {
		batch := es[start:min(start+legacyAuditBatch, len(es))]
		ps := make([]auditstore.Pending, len(batch))
		for i, e := range batch {
			ps[i] = auditstore.Pending{Event: e, OccurGiven: true}
		}
		res, err := st.Append(ctx, ps)
		if err != nil {
			return out, fmt.Errorf("append audit events %d-%d of %d: %w", start+1, start+len(batch), len(es), err)
		}
		for i, r := range res {
			switch {
			case r.Err != nil:
				out.Conflicts = append(out.Conflicts, badRow{"audit_events", batch[i].ID,
					"imported before with other content (the legacy row or AUDIT_REDACT_KEYS changed since); the stored event stands"})
			case r.Duplicate:
				out.Present++
			default:
				out.Imported++
			}
		}
		prog.Add(int64(len(batch)))
	}
	return out, nil
}

// presentEvents counts the events stored already (for --dry-run), by id.
func presentEvents(ctx context.Context, st auditstore.Store, es []*auditstore.Event) (int, error) {
	n := 0
	for _, e := range es {
		_, err := st.EventGet(ctx, e.ID)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, errs.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}
