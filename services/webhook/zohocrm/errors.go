package zohocrm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/retryafter"
)

// ErrChannelNotFound is returned (wrapped, beside the *APIError) by Update and Disable when Zoho no
// longer has the channel: never enabled, expired or disabled already.
var ErrChannelNotFound = errors.New("zohocrm: Zoho has no such notification channel")

// APIError is Zoho's refusal of a call, or a failure to reach Zoho (Status 0). Code and Message are
// Zoho's, cleaned and bounded to a few hundred bytes; they never hold the access token, the channel
// token or the request.
type APIError struct {
	Status     int    // HTTP status; 0 when no answer came (network)
	Code       string // Zoho's code: INVALID_TOKEN, INVALID_DATA, TOO_MANY_REQUESTS, …
	Message    string
	RetryAfter time.Duration // from Retry-After, bounded; 0 when absent

	cause error // a network error, for errors.Is/As; never part of Error()
}

// Error describes the refusal for logs and callers.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("zohocrm: ")
	if e.Status == 0 {
		b.WriteString("cannot reach Zoho")
	} else {
		b.WriteString("Zoho answered ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the network error behind a Status 0 APIError.
func (e *APIError) Unwrap() error { return e.cause }

// Temporary reports whether the same call may succeed later: rate limits (429), timeouts (408), Zoho's
// server errors (5xx) and network failures. Everything else (bad token, invalid data) needs a change first.
func (e *APIError) Temporary() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500 ||
		strings.EqualFold(e.Code, "TOO_MANY_REQUESTS")
}

// Bounds on what an APIError keeps of Zoho's answer.
const (
	maxCodeLen    = 64
	maxMessageLen = 300
	maxRetryAfter = time.Hour
)

// codeInvalidResponse marks an answer that is not what Zoho sends (garbage, too large, wrong channel).
const codeInvalidResponse = "INVALID_RESPONSE"

// apiError builds the error for Zoho's refusal, its fields cleaned and bounded; when the refusal says
// the channel is unknown, the result also matches ErrChannelNotFound (errors.As still finds the
// *APIError).
func apiError(status int, code, msg string, retryAfter time.Duration, details json.RawMessage) error {
	var d resultDetails
	if len(details) > 0 {
		_ = json.Unmarshal(details, &d) // best effort: details only refine the outcome
	}
	return newAPIError(status, code, msg, retryAfter, d)
}

func newAPIError(status int, code, msg string, retryAfter time.Duration, d resultDetails) error {
	e := &APIError{Status: status, Code: cleanCode(code), Message: cleanText(msg, maxMessageLen), RetryAfter: retryAfter}
	if channelMissing(e.Code, d) {
		return notFoundError{e}
	}
	return e
}

// notFoundError is an *APIError that also matches ErrChannelNotFound.
type notFoundError struct{ *APIError }

func (e notFoundError) Is(target error) bool { return target == ErrChannelNotFound }
func (e notFoundError) Unwrap() error        { return e.APIError }

// channelMissing recognises Zoho saying it has no such channel. Zoho's documentation does not spell
// this answer out; what it sends is an error item whose code is RESOURCE_NOT_FOUND / NOT_SUBSCRIBED, or
// INVALID_DATA whose details point at channel_id. The channel id itself was checked to be digits before
// sending, so INVALID_DATA on it can only mean Zoho does not know it.
func channelMissing(code string, d resultDetails) bool {
	switch strings.ToUpper(code) {
	case "RESOURCE_NOT_FOUND", "NOT_SUBSCRIBED", "NO_CONTENT", "CHANNEL_NOT_FOUND":
		return true
	case "INVALID_DATA":
		return strings.EqualFold(d.APIName, "channel_id") || strings.EqualFold(d.APIName, "channel_ids") ||
			strings.HasSuffix(d.JSONPath, ".channel_id") || strings.HasSuffix(d.JSONPath, ".channel_ids")
	}
	return false
}

// cleanCode keeps a code only when it looks like one of Zoho's (upper case, digits, underscores).
func cleanCode(s string) string {
	if s == "" || len(s) > maxCodeLen {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return ""
		}
	}
	return strings.ToUpper(s)
}

// cleanText drops control characters and invalid UTF-8 and cuts s to at most n bytes, so that whatever
// Zoho (or an impostor) sends cannot forge log lines or grow without bound.
func cleanText(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// invalidResponse is an answer that is not what Zoho sends for this call.
func invalidResponse(op string, status int, why string) error {
	return &APIError{Status: status, Code: codeInvalidResponse, Message: op + ": " + why}
}

// networkError is a failure to get an answer. The *url.Error's URL (api domain and channel ids, no
// secret) is dropped anyway: only the cause's kind is kept.
func networkError(op string, err error) error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	msg := op + ": network error"
	var ne net.Error
	if errors.As(cause, &ne) && ne.Timeout() {
		msg = op + ": timed out"
	}
	return &APIError{Message: msg, cause: cause}
}

// invalid is a call refused before anything was sent, because the caller's input cannot be right.
func invalid(op, why string) error {
	return &errs.Error{Kind: errs.KindInvalid, Msg: fmt.Sprintf("zohocrm: %s: %s", op, why)}
}

// parseRetryAfter reads Retry-After (seconds or an HTTP date), bounded to maxRetryAfter; 0 when absent
// or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	return retryafter.Parse(v, now, maxRetryAfter)
}

// scrub removes the secrets from an *APIError's code and message: Zoho's messages quote inputs at
// times, and an answer that is not Zoho's may echo anything it was sent.
func scrub(err error, secrets ...string) error {
	var e *APIError
	if !errors.As(err, &e) {
		return err
	}
	for _, s := range secrets {
		if len(s) < 4 {
			continue // too short to find without mangling ordinary words; not a credential anyway
		}
		if strings.Contains(e.Code, s) || strings.Contains(strings.ToUpper(e.Code), strings.ToUpper(s)) {
			e.Code = ""
		}
		e.Message = strings.ReplaceAll(e.Message, s, "[redacted]")
		// cleanText may have cut the message inside a secret: drop a cut-off start of one at the end.
		if body, cut := strings.CutSuffix(e.Message, "…"); cut {
			for k := len(s) - 1; k >= 4; k-- {
				if strings.HasSuffix(body, s[:k]) {
					e.Message = body[:len(body)-k] + "[redacted]…"
					break
				}
			}
		}
	}
	return err
}
