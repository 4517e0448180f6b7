package zohotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sergas/core/services/webhook/zohocrm"
)

var (
	versionPattern = regexp.MustCompile(`^v[0-9]{1,2}(\.[0-9]{1,2})?$`)
	eventPattern   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]{0,99})\.(all|create|edit|delete)$`)
)

// serveWatch is /crm/{version}/actions/watch.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.requests) < 16 || s.requests[r.Method] > 0 {
		s.requests[r.Method]++
	}
	fail := 0
	if s.failN > 0 {
		s.failN--
		fail = s.failCode
	}
	s.mu.Unlock()

	if fail != 0 {
		if fail == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
			writeError(w, fail, "TOO_MANY_REQUESTS", "too many requests continuously")
			return
		}
		writeError(w, fail, "INTERNAL_ERROR", "Internal Server Error")
		return
	}
	version := r.PathValue("version")
	if !versionPattern.MatchString(version) {
		writeError(w, http.StatusNotFound, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
		return
	}
	if code, msg := s.authenticate(r); code != "" {
		writeError(w, http.StatusUnauthorized, code, msg)
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		s.subscribe(w, r, version)
	case http.MethodDelete:
		s.disable(w, r, version)
	case http.MethodGet:
		s.details(w, r, version)
	default:
		writeError(w, http.StatusMethodNotAllowed, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")
	}
}

// authenticate checks "Authorization: Zoho-oauthtoken <token>" against the allowed tokens.
func (s *Server) authenticate(r *http.Request) (code, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "AUTHENTICATION_FAILURE", "Authentication failed"
	}
	tok, ok := strings.CutPrefix(h, "Zoho-oauthtoken ")
	s.mu.Lock()
	allowed := ok && s.tokens[tok]
	s.mu.Unlock()
	if !allowed {
		return "INVALID_TOKEN", "invalid oauth token"
	}
	return "", ""
}

// maxExpiry is Zoho's limit for the version: one day for v2, v2.1 and v3, one week from v4.
func (s *Server) maxExpiry(version string) time.Duration {
	if s.MaxExpiry > 0 {
		return s.MaxExpiry
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err == nil && n < 4 {
		return 24 * time.Hour
	}
	return 7 * 24 * time.Hour
}

// inputItem is one element of "watch" as sent; fields stay raw so that each is checked for its type
// and reported by JSON path as Zoho does.
type inputItem struct {
	ChannelID                 json.RawMessage `json:"channel_id"`
	Events                    json.RawMessage `json:"events"`
	ChannelExpiry             json.RawMessage `json:"channel_expiry"`
	Token                     json.RawMessage `json:"token"`
	NotifyURL                 json.RawMessage `json:"notify_url"`
	ReturnAffectedFieldValues json.RawMessage `json:"return_affected_field_values"`
}

// subscribe is enable (POST: creates, or replaces a channel with the same id) and update (PUT: replaces
// the details of a channel Zoho still has; "the rest of the details would be removed").
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, version string) {
	var in struct {
		Watch []json.RawMessage `json:"watch"`
	}
	if code, msg, ok := decodeBody(w, r, &in); !ok {
		writeError(w, http.StatusBadRequest, code, msg)
		return
	}
	if len(in.Watch) == 0 {
		writeJSON(w, http.StatusBadRequest, errorItem("MANDATORY_NOT_FOUND", "required field not found", "watch", "$.watch"))
		return
	}
	if len(in.Watch) > maxItems {
		writeError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "too many watch items")
		return
	}
	now := s.now()
	results := make([]any, 0, len(in.Watch))
	failed := 0
	for i, raw := range in.Watch {
		res, ok := s.subscribeOne(r.Method == http.MethodPut, version, now, i, raw)
		if !ok {
			failed++
		}
		results = append(results, res)
	}
	status := itemsStatus(failed, len(results))
	if status == http.StatusOK && r.Method == http.MethodPost {
		status = http.StatusCreated // what Zoho answers a subscription, as integrators observe
	}
	writeJSON(w, status, map[string]any{"watch": results})
}

func (s *Server) subscribeOne(update bool, version string, now time.Time, i int, raw json.RawMessage) (any, bool) {
	path := func(f string) string { return fmt.Sprintf("$.watch[%d].%s", i, f) }
	var it inputItem
	if err := json.Unmarshal(raw, &it); err != nil {
		return errorItem("INVALID_DATA", "invalid data", "watch", fmt.Sprintf("$.watch[%d]", i)), false
	}
	id, ok := channelIDOf(it.ChannelID)
	if isAbsent(it.ChannelID) {
		return errorItem("MANDATORY_NOT_FOUND", "required field not found", "channel_id", path("channel_id")), false
	}
	if !ok {
		return errorItem("INVALID_DATA", "invalid data", "channel_id", path("channel_id")), false
	}
	if isAbsent(it.Events) {
		return errorItem("MANDATORY_NOT_FOUND", "required field not found", "events", path("events")), false
	}
	var events []string
	if json.Unmarshal(it.Events, &events) != nil || len(events) == 0 || len(events) > maxItems {
		return errorItem("INVALID_DATA", "invalid data", "events", path("events")), false
	}
	for j, e := range events {
		if !eventPattern.MatchString(e) {
			return errorItem("INVALID_DATA", "invalid data", "events", path(fmt.Sprintf("events[%d]", j))), false
		}
	}
	if isAbsent(it.NotifyURL) {
		return errorItem("MANDATORY_NOT_FOUND", "required field not found", "notify_url", path("notify_url")), false
	}
	var notify string
	if json.Unmarshal(it.NotifyURL, &notify) != nil || !validNotifyURL(notify) {
		return errorItem("INVALID_DATA", "invalid data", "notify_url", path("notify_url")), false
	}
	var token string
	if !isAbsent(it.Token) {
		if json.Unmarshal(it.Token, &token) != nil || utf8.RuneCountInString(token) > zohocrm.MaxTokenLen {
			return errorItem("INVALID_DATA", "invalid data", "token", path("token")), false
		}
	}
	var affected bool
	if !isAbsent(it.ReturnAffectedFieldValues) && json.Unmarshal(it.ReturnAffectedFieldValues, &affected) != nil {
		return errorItem("INVALID_DATA", "invalid data", "return_affected_field_values", path("return_affected_field_values")), false
	}
	def := s.DefaultExpiry
	if def <= 0 {
		def = time.Hour
	}
	expiry := now.Add(def)
	if !isAbsent(it.ChannelExpiry) {
		var es string
		t, err := time.Time{}, error(nil)
		if err = json.Unmarshal(it.ChannelExpiry, &es); err == nil {
			// Zoho wants a numeric offset ("+00:00"); it refuses the "Z" of UTC with INVALID_DATA, as
			// integrators report.
			if strings.HasSuffix(es, "Z") || strings.HasSuffix(es, "z") {
				err = errors.New("expected datetime with offset")
			} else {
				t, err = time.Parse("2006-01-02T15:04:05-07:00", es)
			}
		}
		switch {
		case err != nil || !t.After(now):
			return errorItem("INVALID_DATA", "invalid data", "channel_expiry", path("channel_expiry")), false
		case t.Sub(now) > s.maxExpiry(version):
			if s.RefuseOverMax {
				return errorItem("INVALID_DATA", "invalid data", "channel_expiry", path("channel_expiry")), false
			}
			// Zoho's documented behaviour: beyond the maximum, the default expiry applies.
		default:
			expiry = t
		}
	}
	expiry = expiry.Truncate(time.Second).UTC()

	watch := zohocrm.Watch{ChannelID: id, Events: events, Expiry: expiry, Token: token, NotifyURL: notify,
		ReturnAffectedFieldValues: affected}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.channels[id]
	if update && (!exists || !now.Before(old.watch.Expiry)) {
		return errorItem("INVALID_DATA", "the channel is not subscribed", "channel_id", path("channel_id")), false
	}
	if !exists && len(s.channels) >= maxChannels {
		s.purgeExpiredLocked(now)
		if len(s.channels) >= maxChannels {
			return errorItem("LIMIT_EXCEEDED", "too many channels", "channel_id", path("channel_id")), false
		}
	}
	s.channels[id] = &channel{watch: watch}
	evs := make([]any, 0, len(events))
	for _, m := range modules(events) {
		evs = append(evs, map[string]any{
			"channel_expiry": expiry.In(s.zone()).Format("2006-01-02T15:04:05-07:00"),
			"resource_uri":   s.URL + "/crm/v2/" + m,
			"resource_id":    resourceID(m),
			"resource_name":  m,
			"channel_id":     id,
		})
	}
	return map[string]any{
		"code":    "SUCCESS",
		"details": map[string]any{"events": evs},
		"message": "Successfully subscribed for actions-watch of the given module",
		"status":  "success",
	}, true
}

// disable is DELETE ?channel_ids=a,b: one success item per module of each channel Zoho has.
func (s *Server) disable(w http.ResponseWriter, r *http.Request, version string) {
	q := r.URL.Query().Get("channel_ids")
	if q == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"code": "MANDATORY_NOT_FOUND", "details": map[string]any{"api_name": "channel_ids"},
			"message": "required param not found", "status": "error"})
		return
	}
	ids := strings.Split(q, ",")
	if len(ids) > maxItems {
		writeError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "too many channel ids")
		return
	}
	now := s.now()
	results := make([]any, 0, len(ids))
	failed := 0
	s.mu.Lock()
	for _, id := range ids {
		c, ok := s.channels[id]
		if ok && !now.Before(c.watch.Expiry) {
			delete(s.channels, id) // Zoho forgets an expired channel
			ok = false
		}
		if !ok {
			failed++
			results = append(results, map[string]any{
				"code": "INVALID_DATA", "details": map[string]any{"api_name": "channel_ids", "channel_id": id},
				"message": "the channel is not subscribed", "status": "error"})
			continue
		}
		delete(s.channels, id)
		for _, m := range modules(c.watch.Events) {
			results = append(results, map[string]any{
				"code": "SUCCESS",
				"details": map[string]any{"resource_uri": s.URL + "/crm/" + version + "/" + m,
					"resource_id": resourceID(m), "channel_id": id},
				"message": "Successfully un-subscribed from actions-watch",
				"status":  "success",
			})
		}
	}
	s.mu.Unlock()
	writeJSON(w, itemsStatus(failed, len(results)), map[string]any{"watch": results})
}

// details is GET ?channel_id=&module=&page=&per_page=: one entry per live channel and module; 204 when
// there is none, as Zoho answers an empty list.
func (s *Server) details(w http.ResponseWriter, r *http.Request, version string) {
	q := r.URL.Query()
	wantID, wantModule := q.Get("channel_id"), q.Get("module")
	page, perPage := intParam(q.Get("page"), 1, 1, 1000), intParam(q.Get("per_page"), 200, 1, 200)
	var all []any
	for _, c := range s.liveChannels(s.now()) {
		if wantID != "" && c.ChannelID != wantID {
			continue
		}
		for _, m := range modules(c.Events) {
			if wantModule != "" && m != wantModule {
				continue
			}
			var evs []string
			for _, e := range c.Events {
				if strings.HasPrefix(e, m+".") {
					evs = append(evs, e)
				}
			}
			all = append(all, map[string]any{
				"notify_on_related_action":     true,
				"channel_expiry":               c.Expiry.In(s.zone()).Format("2006-01-02T15:04:05-07:00"),
				"return_affected_field_values": c.ReturnAffectedFieldValues,
				"resource_uri":                 s.URL + "/crm/" + version + "/" + m,
				"resource_id":                  resourceID(m),
				"notify_url":                   c.NotifyURL,
				"resource_name":                m,
				"fields":                       nil,
				"notification_condition":       nil,
				"channel_id":                   c.ChannelID,
				"events":                       evs,
				"token":                        c.Token,
			})
		}
	}
	start := (page - 1) * perPage
	if start >= len(all) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	end := min(start+perPage, len(all))
	writeJSON(w, http.StatusOK, map[string]any{
		"watch": all[start:end],
		"info":  map[string]any{"per_page": perPage, "count": end - start, "page": page, "more_records": end < len(all)},
	})
}

func (s *Server) purgeExpiredLocked(now time.Time) {
	for id, c := range s.channels {
		if !now.Before(c.watch.Expiry) {
			delete(s.channels, id)
		}
	}
}

func (s *Server) zone() *time.Location {
	if s.Zone != nil {
		return s.Zone
	}
	return time.UTC
}

// channelIDOf reads a channel_id sent as a JSON string of digits or an integer number, within a long.
func channelIDOf(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) > 0 && raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
	} else {
		s = string(raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
		return "", false
	}
	return s, true
}

func isAbsent(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func validNotifyURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// modules are the distinct module names of events, sorted.
func modules(events []string) []string {
	var out []string
	for _, e := range events {
		if m := eventPattern.FindStringSubmatch(e); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// resourceID is a stable, Zoho-looking id for a module.
func resourceID(module string) string {
	h := fnv.New64a()
	h.Write([]byte(module))
	return strconv.FormatUint(554023000000000000+h.Sum64()%1000000000, 10)
}

func intParam(s string, def, lo, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return min(max(n, lo), hi)
}

// itemsStatus is the HTTP status of a per-item answer: 200 when all succeeded, 400 when all failed,
// 207 (multi-status) when mixed.
func itemsStatus(failed, total int) int {
	switch {
	case failed == 0:
		return http.StatusOK
	case failed == total:
		return http.StatusBadRequest
	default:
		return http.StatusMultiStatus
	}
}

func errorItem(code, msg, apiName, jsonPath string) map[string]any {
	return map[string]any{"code": code, "details": map[string]any{"api_name": apiName, "json_path": jsonPath},
		"message": msg, "status": "error"}
}

// decodeBody reads a bounded JSON body.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) (code, msg string, ok bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		return "INVALID_DATA", "body is not a valid JSON", false
	}
	return "", "", true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "details": map[string]any{}, "message": msg, "status": "error"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
