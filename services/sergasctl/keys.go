package sergasctl

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/sergas/core/internal/keyring"
	auditstore "github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// maxKeyCheckPages bounds how many pages of channels or subscriptions the key check reads.
const maxKeyCheckPages = 200

func checkKeys(ctx context.Context, r *report, cn *conn) {
	switch cn.t.Name {
	case "token":
		checkTokenKeys(ctx, r, cn)
	case "webhook":
		checkWebhookKeys(ctx, r, cn)
	case "audit":
		checkAuditKey(ctx, r, cn)
	}
}

// devKeyMissing reports a development key file that is not there yet. The service makes it at start;
// that is harmless while nothing is sealed, and means every sealed value is lost otherwise.
func devKeyMissing(r *report, svc, file string, sealed int) bool {
	if file == "" || fileExists(file) {
		return false
	}
	if sealed > 0 {
		r.fail(svc, "keys", fmt.Sprintf("development key %s is missing but %d stored secret(s) were sealed with it", file, sealed),
			"restore the file from a backup of DATA_DIR; without it those secrets cannot be opened (re-create the connections)")
	} else {
		r.warn(svc, "keys", "development key "+file+" does not exist yet (nothing is sealed)", "sergasctl setup makes it (the service would at start)")
	}
	return true
}

func checkTokenKeys(ctx context.Context, r *report, cn *conn) {
	st := tokenStore(cn)
	counts, err := st.KeyIDs(ctx)
	if err != nil {
		r.fail("token", "keys", "count connections by key: "+err.Error(), "")
		return
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if devKeyMissing(r, "token", cn.t.Token.DevKeyFile, total) {
		return
	}
	ring, err := token.LoadKeyring(*cn.t.Token)
	if err != nil {
		r.fail("token", "keys", err.Error(), "TOKEN_ENCRYPTION_KEYS is id:base64key[,id:base64key…] with 32-byte keys")
		return
	}
	var problems, opened []string
	for _, id := range sortedKeys(counts) {
		n := counts[id]
		if !ring.Has(id) {
			problems = append(problems, fmt.Sprintf("%d connection(s) sealed with key %q, which the keyring lacks", n, id))
			continue
		}
		c, err := st.ConnectionSealedWith(ctx, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("read a connection sealed with %q: %v", id, err))
			continue
		}
		if err := token.OpenSealed(ring, c); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		opened = append(opened, fmt.Sprintf("%s: %d", id, n))
	}
	if len(problems) > 0 {
		r.fail("token", "keys", strings.Join(problems, "; "),
			"put every key id that sealed a connection in TOKEN_ENCRYPTION_KEYS (the first seals, all open); once sergas-token reseal has moved them all to the first, the others may go")
		return
	}
	detail := fmt.Sprintf("keyring %v opens a sealed connection of every key id (%s)", ring.IDs(), strings.Join(opened, ", "))
	if total == 0 {
		detail = fmt.Sprintf("keyring %v loads; no connection is stored yet", ring.IDs())
	}
	if old := total - counts[ring.Primary]; old > 0 {
		r.warn("token", "keys", detail+fmt.Sprintf("; %d connection(s) are sealed with a key other than the first (%s)", old, ring.Primary),
			"run sergas-token reseal to seal them with the first key before removing older ones")
		return
	}
	r.ok("token", "keys", detail)
}

// sealedSet counts sealed values by key id and opens every one of them (values are small and opening
// costs about a microsecond), keeping the first failure per key id.
type sealedSet struct {
	counts   map[string]int
	failures map[string]string
}

func (s *sealedSet) add(sealed []byte, what string, open func() error) {
	id, err := keyring.KeyID(sealed)
	if err != nil {
		id = "(unreadable)"
	}
	s.counts[id]++
	if _, seen := s.failures[id]; seen {
		return
	}
	if err == nil {
		err = open()
	}
	if err != nil {
		s.failures[id] = what + ": " + err.Error()
	}
}

func checkWebhookKeys(ctx context.Context, r *report, cn *conn) {
	st := webhookStore(cn)
	set := &sealedSet{counts: map[string]int{}, failures: map[string]string{}}
	var ring *keyring.Keyring
	var chans, secrets int
	var channels []*webhookstore.Channel
	after := ""
	for range maxKeyCheckPages {
		page, err := st.ChannelList(ctx, webhookstore.ChannelListParams{AfterID: after, Limit: 500})
		if err != nil {
			r.fail("webhook", "keys", "list channels: "+err.Error(), "")
			return
		}
		channels = append(channels, page...)
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	var subs []*webhookstore.Subscription
	after = ""
	for range maxKeyCheckPages {
		page, err := st.SubscriptionList(ctx, webhookstore.SubscriptionListParams{AfterID: after, Limit: 500})
		if err != nil {
			r.fail("webhook", "keys", "list subscriptions: "+err.Error(), "")
			return
		}
		for _, s := range page {
			if s.Push != nil {
				subs = append(subs, s)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	if devKeyMissing(r, "webhook", cn.t.Webhook.Channels.DevKeyFile, len(channels)+len(subs)) {
		return
	}
	ring, err := webhook.LoadKeyring(*cn.t.Webhook)
	if err != nil {
		r.fail("webhook", "keys", err.Error(), "WEBHOOK_ENCRYPTION_KEYS is id:base64key[,id:base64key…] with 32-byte keys")
		return
	}
	if ring == nil {
		if len(channels)+len(subs) > 0 {
			r.fail("webhook", "keys", fmt.Sprintf("WEBHOOK_ENCRYPTION_KEYS is not set, but %d channel(s) and %d push subscription(s) are stored sealed", len(channels), len(subs)),
				"set WEBHOOK_ENCRYPTION_KEYS to the keys that sealed them")
			return
		}
		r.ok("webhook", "keys", "WEBHOOK_ENCRYPTION_KEYS not set and nothing sealed is stored (Zoho channels and push subscriptions are off)")
		return
	}
	for _, c := range channels {
		chans++
		set.add(c.SealedToken, "channel "+c.ID+" token", func() error { return webhook.OpenChannelToken(ring, c) })
	}
	for _, s := range subs {
		secrets++
		set.add(s.Push.Secret, "push subscription "+s.ID+" signing secret", func() error { return webhook.OpenPushSecrets(ring, s) })
	}
	if len(set.failures) > 0 {
		var ps []string
		for _, id := range sortedKeys(set.failures) {
			ps = append(ps, fmt.Sprintf("key %q (%d sealed): %s", id, set.counts[id], set.failures[id]))
		}
		r.fail("webhook", "keys", strings.Join(ps, "; "), "put every key id that sealed a channel token or push secret in WEBHOOK_ENCRYPTION_KEYS (the first seals, all open)")
		return
	}
	var by []string
	for _, id := range sortedKeys(set.counts) {
		by = append(by, fmt.Sprintf("%s: %d", id, set.counts[id]))
	}
	detail := fmt.Sprintf("keyring %v opens all %d channel token(s) and %d push signing secret(s)", ring.IDs(), chans, secrets)
	if len(by) > 0 {
		detail += " (by key id " + strings.Join(by, ", ") + ")"
	}
	r.ok("webhook", "keys", detail)
}

func checkAuditKey(ctx context.Context, r *report, cn *conn) {
	sig := cn.t.Audit.Signing
	last, err := auditStore(cn).CheckpointList(ctx, auditstore.CheckpointListParams{Limit: 1})
	if err != nil {
		r.fail("audit", "keys", "read the newest checkpoint: "+err.Error(), "")
		return
	}
	if devKeyMissing(r, "audit", sig.DevKeyFile, 0) {
		if len(last) > 0 {
			r.warn("audit", "keys", "checkpoints stored were signed by "+last[0].KeyID+"; a new development key will sign the next ones", "keep DATA_DIR/dev-audit-signing-key with the database")
		}
		return
	}
	id, err := sig.SigningKeyID(quiet)
	if err != nil {
		r.unreachable = true
		r.fail("audit", "keys", err.Error(), "AUDIT_SIGNING_KEY is the path of a PEM PKCS #8 Ed25519 private key, readable by this user")
		return
	}
	if id == "" {
		r.warn("audit", "keys", "no checkpoint signing key: checkpoints are off", "set AUDIT_SIGNING_KEY")
		return
	}
	if len(last) == 0 {
		r.ok("audit", "keys", "signing key "+id+" loads; no checkpoint stored yet")
		return
	}
	if k := last[0].KeyID; k != id && !slices.Contains(sig.PreviousKeyIDs, k) {
		r.fail("audit", "keys", fmt.Sprintf("the newest checkpoint (%d) was signed by key %s, which is neither AUDIT_SIGNING_KEY (%s) nor in AUDIT_PREVIOUS_SIGNING_KEY_IDS: verification refuses its checkpoints", last[0].ID, k, id),
			"restore the key that signed it, or add "+k+" to AUDIT_PREVIOUS_SIGNING_KEY_IDS if it was rotated away on purpose")
		return
	}
	r.ok("audit", "keys", fmt.Sprintf("signing key %s loads; the newest checkpoint (%d, sequence %d) was signed by %s", id, last[0].ID, last[0].Sequence, last[0].KeyID))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// quiet takes the services' informational log lines (a key loaded) that a check has no use for.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
