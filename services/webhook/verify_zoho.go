package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
)

// channelTokens finds the token a Zoho CRM notification channel was enabled with: channels enabled by
// hand come from the source's configuration (fileChannels), channels the service manages from its store
// (channels, in channels.go).
type channelTokens interface {
	// channelToken returns the channel's token and whether the channel is known to source; err is for
	// a lookup that failed (the delivery is then refused as unavailable, never as forged).
	channelToken(ctx context.Context, source, channelID string) (token []byte, found bool, err error)
}

// fileChannels are the channel tokens of one source, from its configuration.
type fileChannels map[string][]byte

func (f fileChannels) channelToken(_ context.Context, _, channelID string) ([]byte, bool, error) {
	t, ok := f[channelID]
	return t, ok, nil
}

// chainedChannels asks each in turn (the configured tokens, then stored channels).
type chainedChannels []channelTokens

func (c chainedChannels) channelToken(ctx context.Context, source, id string) ([]byte, bool, error) {
	for _, t := range c {
		tok, ok, err := t.channelToken(ctx, source, id)
		if err != nil || ok {
			return tok, ok, err
		}
	}
	return nil, false, nil
}

// zohoVerifier checks a Zoho CRM notification: Zoho echoes, in the JSON body, the channel_id and the
// token given when the channel was enabled.
type zohoVerifier struct {
	tokens channelTokens
}

// channelIDPattern: Zoho channel ids are numbers (sent as JSON numbers or strings); anything else is
// not a channel we could have enabled.
var channelIDPattern = regexp.MustCompile(`^[0-9]{1,32}$`)

// serverTimePattern is Zoho's server_time, milliseconds since the epoch.
var serverTimePattern = regexp.MustCompile(`^[0-9]{1,20}$`)

func newZohoVerifier(o *ZohoCRMOptions, resolve func(string) ([]byte, error)) (*zohoVerifier, fileChannels, error) {
	chans := fileChannels{}
	if o != nil {
		for id, ref := range o.Channels {
			if !channelIDPattern.MatchString(id) {
				return nil, nil, errors.New("zoho_crm.channels keys must be channel ids (digits)")
			}
			tok, err := resolve(ref)
			if err != nil {
				return nil, nil, errors.New("zoho_crm.channels[" + id + "]: " + err.Error())
			}
			if len(tok) > maxZohoToken {
				return nil, nil, errors.New("zoho_crm.channels[" + id + "]: a channel token is at most 50 characters")
			}
			chans[id] = tok
		}
	}
	return &zohoVerifier{tokens: chans}, chans, nil
}

// zohoNotification is the part of a notification the check needs.
type zohoNotification struct {
	ChannelID  json.RawMessage `json:"channel_id"`
	Token      *string         `json:"token"`
	ServerTime json.RawMessage `json:"server_time"`
}

func (v *zohoVerifier) verify(ctx context.Context, d *incoming) (string, error) {
	var n zohoNotification
	if err := json.Unmarshal(d.body, &n); err != nil {
		return "", refuse(reasonMalformedBody, "a Zoho CRM notification must be a JSON object")
	}
	id, ok := jsonScalar(n.ChannelID)
	if !ok || n.Token == nil {
		return "", refuse(reasonMissingSignature, "notification has no channel_id or token")
	}
	if !channelIDPattern.MatchString(id) {
		return "", refuse(reasonUnknownChannel, channelRefusal)
	}
	var tokens channelTokens = v.tokens
	if d.stored != nil {
		tokens = chainedChannels{v.tokens, d.stored}
	}
	want, found, err := tokens.channelToken(ctx, d.source, id)
	if err != nil {
		return "", err
	}
	if !found {
		return "", refuse(reasonUnknownChannel, channelRefusal)
	}
	// Compared as SHA-256 digests so that neither the content nor the length of the token shows in the
	// time taken.
	got, exp := sha256.Sum256([]byte(*n.Token)), sha256.Sum256(want)
	if subtle.ConstantTimeCompare(got[:], exp[:]) != 1 {
		return "", refuse(reasonBadSignature, channelRefusal)
	}
	// Zoho retries a notification with the same body; the channel and Zoho's server time say which
	// notification it is even if two carry the same change.
	// Only digits go into the key: it is stored as text, and a JSON string could carry NUL, which
	// PostgreSQL cannot store (the body's hash covers whatever else was sent).
	serverTime, _ := jsonScalar(n.ServerTime)
	if !serverTimePattern.MatchString(serverTime) {
		serverTime = ""
	}
	return "zoho:" + id + ":" + serverTime + ":" + bodyHash(d.body), nil
}

// jsonScalar returns a JSON string's text or a JSON number as written; ok is false for anything else.
func jsonScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var num json.Number
	if json.Unmarshal(raw, &num) != nil {
		return "", false
	}
	return strings.TrimSpace(num.String()), true
}

// channelRefusal is what a sender is told of an unknown channel and of a wrong token alike, so that
// channel ids cannot be found by trying them; metrics and the audit log keep the two reasons apart.
const channelRefusal = "channel_id and token do not match a notification channel"
