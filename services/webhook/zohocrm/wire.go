package zohocrm

import (
	"bytes"
	"encoding/json"
	"strings"
)

// watchRequest is the body of enable and update: {"watch":[{...}]}.
type watchRequest struct {
	Watch []watchItem `json:"watch"`
}

type watchItem struct {
	// ChannelID is sent as a JSON string of digits, as Zoho's own examples send it: a JSON number would
	// lose digits in any client that reads numbers as float64.
	ChannelID                 string   `json:"channel_id"`
	Events                    []string `json:"events"`
	ChannelExpiry             string   `json:"channel_expiry"`
	Token                     string   `json:"token,omitempty"`
	NotifyURL                 string   `json:"notify_url"`
	ReturnAffectedFieldValues bool     `json:"return_affected_field_values,omitempty"`
}

// answer is any of Zoho's answers to actions/watch: per-item results under "watch", or one
// whole-request error ({"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}).
type answer struct {
	Watch   []watchResult   `json:"watch"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Status  string          `json:"status"`
	Details json.RawMessage `json:"details"`
}

// watchResult is one item of Zoho's answer:
// {"code":"SUCCESS","details":{"events":[{"channel_expiry":"…","resource_name":"Deals","channel_id":"10000",…}]},
// "message":"Successfully subscribed for actions-watch of the given module","status":"success"}.
// Disable's details carry channel_id directly instead of events.
type watchResult struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Status  string        `json:"status"`
	Details resultDetails `json:"details"`
}

type resultDetails struct {
	Events    []resultEvent `json:"events"`
	ChannelID flexString    `json:"channel_id"`
	// APIName and JSONPath name the input an error is about (INVALID_DATA on "channel_id").
	APIName  string `json:"api_name"`
	JSONPath string `json:"json_path"`
}

type resultEvent struct {
	ChannelExpiry string     `json:"channel_expiry"`
	ResourceName  string     `json:"resource_name"`
	ChannelID     flexString `json:"channel_id"`
}

// UnmarshalJSON tolerates details of an unexpected shape (Zoho sends {} or, rarely, other things): the
// item's code and status still decide the outcome.
func (d *resultDetails) UnmarshalJSON(b []byte) error {
	type plain resultDetails
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		*d = resultDetails{}
		return nil
	}
	*d = resultDetails(p)
	return nil
}

// flexString is a JSON string or number kept as its text (Zoho sends ids either way).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		s = string(b)
	}
	*f = flexString(s)
	return nil
}

func (f flexString) String() string { return string(f) }

// err is nil for a successful item, else the item's refusal as an *APIError (also matching
// ErrChannelNotFound when it says Zoho does not have the channel).
func (r watchResult) err(op string, status int) error {
	if strings.EqualFold(r.Status, "success") && (r.Code == "" || strings.EqualFold(r.Code, "SUCCESS")) {
		return nil
	}
	code := r.Code
	if code == "" {
		code = codeInvalidResponse
	}
	return newAPIError(status, code, r.Message, 0, r.Details)
}
