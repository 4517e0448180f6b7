package sergasctl

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/audit"
	auditstore "github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/token/provider"
	tokenstore "github.com/sergas/core/services/token/store"
)

// How legacy rows become Sergas Core rows (the README's "Moving from the original system" documents it):
//
//   - zoho_tokens row → connection (provider "zoho", connection_id = token_type unchanged), tokens sealed
//     with the token service's keyring; expire/create/update times kept; status active unless the access
//     token has expired and there is no refresh token (needs re-authorisation).
//   - token_refresh_audit row → that connection's refresh history (outcome success or failure; the
//     message is reduced to the token service's error classes, replica "legacy-import").
//   - audit_events row → audit event, appended to the chain in (timestamp, table position) order, with its
//     event_id (a UUID; any other id is replaced by a UUID derived from it and kept in metadata) and its
//     idempotency key "legacy-import:<id>" under the principal "sergasctl:import-legacy".
const (
	legacyProvider   = "zoho"
	legacyPrincipal  = "sergasctl:import-legacy"
	legacyKeyPrefix  = "legacy-import:"
	legacyReplica    = "legacy-import"
	legacySourceSvc  = "legacy"
	legacyUnknown    = "unknown"
	legacyTypeKey    = "legacy_event_type"
	legacyIDKey      = "legacy_event_id"
	legacyMaxBadList = 100
)

// legacyNamespace derives event ids from legacy ids that are not UUIDs (uuid.NewSHA1), so that a rerun
// derives the same id.
var legacyNamespace = uuid.MustParse("6f1c2a4e-3b5d-4c8e-9a7f-0d2e4b6a8c1f")

// Field limits: the audit service's contract (services/audit/request.go) and the token service's.
const (
	legacyMaxActor    = 256
	legacyMaxAction   = 128
	legacyMaxResource = 512
	legacyMaxContext  = 128
	legacyMaxConnID   = 128
)

// badRow is a legacy row that cannot be imported as it is.
type badRow struct {
	Table   string `json:"table"`
	ID      string `json:"id"`
	Problem string `json:"problem"`
}

// importConn is one connection to import, with its history.
type importConn struct {
	SourceID string
	Conn     tokenstore.Connection
	Access   string // plaintext until sealed
	Refresh  string
	Events   []tokenstore.RefreshEvent
}

// legacyPlan is what the import will write.
type legacyPlan struct {
	Conns    []*importConn
	Events   []*auditstore.Event
	Bad      []badRow
	Orphaned int // refresh rows whose token is not imported
}

// planLegacy checks every row and maps it; nothing is written. now is the import's time (record time of
// the events, and what "expired" is measured against).
func planLegacy(src *legacySource, now time.Time, redactKeys []string) *legacyPlan {
	p := &legacyPlan{}
	byID, byType := map[string]*importConn{}, map[string]*importConn{}
	for _, r := range src.Tokens {
		c, err := mapToken(r, now)
		if err != nil {
			p.Bad = append(p.Bad, badRow{"zoho_tokens", r.ID, err.Error()})
			continue
		}
		p.Conns = append(p.Conns, c)
		byID[r.ID], byType[r.TokenType] = c, c
	}
	for _, r := range src.Refresh {
		ev, err := mapRefresh(r)
		if err != nil {
			p.Bad = append(p.Bad, badRow{"token_refresh_audit", r.ID, err.Error()})
			continue
		}
		c := byID[r.TokenID]
		if c == nil || (r.TokenType != "" && c.Conn.ConnectionID != r.TokenType) {
			c = byType[r.TokenType]
		}
		if c == nil {
			p.Orphaned++
			continue
		}
		ev.Provider, ev.ConnectionID = c.Conn.Provider, c.Conn.ConnectionID
		c.Events = append(c.Events, ev)
	}
	for _, c := range p.Conns {
		sort.SliceStable(c.Events, func(i, j int) bool { return c.Events[i].Time.Before(c.Events[j].Time) })
		if n := len(c.Events); n > 0 {
			last := c.Events[n-1]
			c.Conn.LastRefreshTime, c.Conn.LastRefreshOutcome, c.Conn.LastRefreshError = last.Time, last.Outcome, last.ErrorClass
		}
	}
	type sortable struct {
		e   *auditstore.Event
		pos int
	}
	var evs []sortable
	seen := map[string]string{}
	for _, r := range src.Events {
		e, err := mapEvent(r, now, redactKeys)
		if err == nil {
			if first, dup := seen[e.ID]; dup {
				err = fmt.Errorf("event_id is the same as that of event %q", first)
			}
		}
		if err != nil {
			p.Bad = append(p.Bad, badRow{"audit_events", r.EventID, err.Error()})
			continue
		}
		seen[e.ID] = r.EventID
		evs = append(evs, sortable{e, r.Position})
	}
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if !a.e.OccurTime.Equal(b.e.OccurTime) {
			return a.e.OccurTime.Before(b.e.OccurTime)
		}
		return a.pos < b.pos
	})
	for _, s := range evs {
		p.Events = append(p.Events, s.e)
	}
	return p
}

func mapToken(r legacyToken, now time.Time) (*importConn, error) {
	if err := validate.ID("token_type (the connection id)", r.TokenType, legacyMaxConnID); err != nil {
		return nil, err
	}
	if err := validate.First(validate.Text("access_token", r.AccessToken, provider.MaxTokenBytes, true),
		validate.Text("refresh_token", r.RefreshToken, provider.MaxTokenBytes, false)); err != nil {
		return nil, err
	}
	expire, expNull, err := legacyTime(r.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("expires_at: %w", err)
	}
	created, crNull, err := legacyTime(r.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("created_at: %w", err)
	}
	updated, upNull, err := legacyTime(r.Updated)
	if err != nil {
		return nil, fmt.Errorf("updated_at: %w", err)
	}
	// Missing times: created and updated stand in for each other, then the import's time; an unknown
	// expiry is taken as already expired (the service refreshes, or asks for re-authorisation).
	switch {
	case crNull && upNull:
		created, updated = now, now
	case crNull:
		created = updated
	case upNull:
		updated = created
	}
	if expNull {
		expire = updated
	}
	status := tokenstore.StatusActive
	if r.RefreshToken == "" && !expire.After(now) {
		status = tokenstore.StatusNeedsReauthorization
	}
	return &importConn{SourceID: r.ID, Access: r.AccessToken, Refresh: r.RefreshToken, Conn: tokenstore.Connection{
		Provider: legacyProvider, ConnectionID: r.TokenType, TokenType: "Bearer", ExpireTime: expire,
		Status: status, CreateTime: created, UpdateTime: updated, Scopes: []string{},
	}}, nil
}

func mapRefresh(r legacyRefresh) (tokenstore.RefreshEvent, error) {
	var ev tokenstore.RefreshEvent
	at, null, err := legacyTime(r.RefreshedAt)
	if err == nil && null {
		err = errors.New("is empty")
	}
	if err != nil {
		return ev, fmt.Errorf("refreshed_at: %w", err)
	}
	prev, null, err := legacyTime(r.PreviousAt)
	if err != nil {
		return ev, fmt.Errorf("previous_expires_at: %w", err)
	}
	if null {
		prev = at // unknown: it had expired by then at the latest
	}
	next, _, err := legacyTime(r.NewAt)
	if err != nil {
		return ev, fmt.Errorf("new_expires_at: %w", err)
	}
	ok, err := legacyBool(r.Success)
	if err != nil {
		return ev, fmt.Errorf("success: %w", err)
	}
	ev = tokenstore.RefreshEvent{Time: at, PreviousExpireTime: prev, NewExpireTime: next, Replica: legacyReplica, Outcome: tokenstore.OutcomeSuccess}
	if !ok {
		// The token service records error classes, not provider messages (which may quote request
		// details); the message is reduced to the class it names.
		ev.Outcome, ev.NewExpireTime, ev.ErrorClass = tokenstore.OutcomeFailure, time.Time{}, "legacy"
		for _, class := range []string{"invalid_grant", "invalid_client"} {
			if strings.Contains(r.ErrorMessage, class) {
				ev.ErrorClass = class
			}
		}
	}
	return ev, nil
}

// legacyBool reads a boolean column: SQLite's 0/1, PostgreSQL's boolean, or text.
func legacyBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	case string, []byte:
		switch strings.ToLower(strings.TrimSpace(anyText(x))) {
		case "1", "t", "true", "yes", "y":
			return true, nil
		case "0", "f", "false", "no", "n":
			return false, nil
		}
	case nil:
		return false, errors.New("is empty")
	}
	return false, fmt.Errorf("%q is neither true nor false", truncate(anyText(v), 20))
}

func mapEvent(r legacyEvent, now time.Time, redactKeys []string) (*auditstore.Event, error) {
	extra := map[string]string{}
	id, err := validate.UUID("event_id", r.EventID)
	if err != nil {
		if err := validate.Label("event_id", r.EventID, legacyMaxContext, true); err != nil {
			return nil, err
		}
		id, extra[legacyIDKey] = uuid.NewSHA1(legacyNamespace, []byte(r.EventID)).String(), r.EventID
	}
	occur, null, err := legacyTime(r.Timestamp)
	if err == nil && null {
		err = errors.New("is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("timestamp: %w", err)
	}
	action, actor := r.Action, r.Actor
	if action == "" {
		action = r.EventType
	}
	if actor == "" {
		actor = legacyUnknown
	}
	if err := validate.First(
		validate.Label("actor", actor, legacyMaxActor, true),
		validate.Label("action (or event_type when action is empty)", action, legacyMaxAction, true),
		validate.Label("event_type", r.EventType, legacyMaxAction, false),
		validate.Label("resource", r.Resource, legacyMaxResource, false),
		validate.Label("session_id", r.SessionID, legacyMaxContext, false),
	); err != nil {
		return nil, err
	}
	if r.EventType != "" {
		extra[legacyTypeKey] = r.EventType
	}
	meta, err := legacyMetadata(r.Metadata, r.MetadataNull, redactKeys, extra)
	if err != nil {
		return nil, err
	}
	return &auditstore.Event{ID: id, OccurTime: occur, RecordTime: now, Actor: actor, Action: action, Resource: r.Resource,
		Metadata: meta, IdempotencyKey: legacyKeyPrefix + id, Principal: legacyPrincipal, SessionID: r.SessionID,
		SourceService: legacySourceSvc}, nil
}

// legacyMetadata is the metadata text the audit service stores for the legacy row's JSON (NULL: none)
// with extra's keys added: audit.MetadataFromJSON, the service's own rules (checks, redaction by
// AUDIT_REDACT_KEYS, canonical form).
func legacyMetadata(text string, null bool, redactKeys []string, extra map[string]string) (string, error) {
	if null {
		text = ""
	}
	return audit.MetadataFromJSON(text, extra, redactKeys)
}
