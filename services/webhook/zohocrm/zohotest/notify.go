package zohotest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/sergas/core/services/webhook/zohocrm"
)

// operationEvent maps a notification's operation to the event operation a channel subscribes to.
var operationEvent = map[string]string{"insert": "create", "update": "edit", "delete": "delete"}

// Notify posts one notification, the way Zoho does, to the notify_url of every channel that has not
// expired and whose events match (module.all or module.<create|edit|delete> for operation
// insert/update/delete). It returns how many were sent; it stops at, and fails on, the first answer
// that is not 2xx or a post that cannot be made. Expired channels get nothing.
//
// The body is Zoho's: {"server_time":<ms>,"query_params":{…},"module":…,"resource_uri":…,"ids":[…],
// "affected_fields":[…],"operation":…,"channel_id":"…","token":"…"}. For an update with affectedFields,
// affected_fields is [{"<record id>":[fields…]}] per record as Zoho sends it, and when the channel asked
// for return_affected_field_values, affected_values carries placeholder values for those fields.
func (s *Server) Notify(ctx context.Context, module, operation string, ids []string, affectedFields []string) (int, error) {
	evOp, ok := operationEvent[operation]
	if !ok {
		return 0, fmt.Errorf("zohotest: operation %q is not insert, update or delete", operation)
	}
	now := s.now()
	hc := s.NotifyClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	sent := 0
	for _, c := range s.liveChannels(now) {
		if ctxDone(ctx) {
			return sent, ctx.Err()
		}
		if !slices.Contains(c.Events, module+".all") && !slices.Contains(c.Events, module+"."+evOp) {
			continue
		}
		body, err := json.Marshal(s.notification(c, now, module, operation, ids, affectedFields))
		if err != nil {
			return sent, err
		}
		if err := post(ctx, hc, c.NotifyURL, body); err != nil {
			return sent, fmt.Errorf("zohotest: channel %s: %w", c.ChannelID, err)
		}
		sent++
	}
	return sent, nil
}

func (s *Server) notification(c zohocrm.Watch, now time.Time, module, operation string, ids, fields []string) map[string]any {
	queryParams := map[string]string{}
	if u, err := url.Parse(c.NotifyURL); err == nil {
		for k, v := range u.Query() {
			if len(v) > 0 {
				queryParams[k] = v[0]
			}
		}
	}
	affected := []any{}
	var values []any
	if operation == "update" && len(fields) > 0 {
		for _, id := range ids {
			affected = append(affected, map[string][]string{id: fields})
			vals := map[string]string{}
			for _, f := range fields {
				vals[f] = "new " + f
			}
			values = append(values, map[string]any{"record_id": id, "values": vals})
		}
	}
	n := map[string]any{
		"server_time":     now.UnixMilli(),
		"query_params":    queryParams,
		"module":          module,
		"resource_uri":    s.URL + "/crm/v2/" + module,
		"ids":             append([]string{}, ids...),
		"affected_fields": affected,
		"operation":       operation,
		"channel_id":      c.ChannelID,
		"token":           c.Token,
	}
	if c.ReturnAffectedFieldValues && values != nil {
		n["affected_values"] = values
	}
	return n
}

// post sends one notification and reads (a bounded part of) the answer.
func post(ctx context.Context, hc *http.Client, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxNotifyBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("notify URL answered " + resp.Status)
	}
	return nil
}
