package stack_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/services/token/zohotest"
	zohocrm "github.com/sergas/core/services/webhook/zohocrm/zohotest"
)

// Through the gateway, with the real token service: a Zoho CRM channel is created with a stored
// connection's access token, enabled at the CRM stand-in with a notify URL that is the gateway; the
// stand-in's notification is verified and stored; renewing and disabling reach the stand-in. The webhook
// service asks the token service with its own key, which holds token:read and nothing else.
func TestZohoChannelEndToEnd(t *testing.T) {
	oauth := zohotest.New(t)
	crm := zohocrm.New(t)
	crm.AllowToken("1000.at.crm-now")
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	webhookSvc := authtest.NewKey(t, "webhook-svc", auth.ScopeTokenRead)
	r := start(t, map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, webhookSvc), "TEST_ADMIN_KEY": admin.Key, "AUDIT_CLIENT_API_KEY": admin.Key,
		"TOKEN_CLIENT_API_KEY": webhookSvc.Key, "WEBHOOK_ENCRYPTION_KEYS": testKeyring,
		"WEBHOOK_SOURCES": "zoho:zoho-crm", "WEBHOOK_MAX_BODY_BYTES": "65536",
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": oauth.AccountsURL(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID": oauth.ClientID,
		"TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": oauth.ClientSecret,
	})
	code, _ := r.do(t, "PUT", "/v1/connections/zoho/crm-1", `{"accessToken":"1000.at.crm-now","refreshToken":"`+oauth.IssueRefreshToken()+
		`","expiresIn":"3600s","apiDomain":"`+crm.URL+`"}`)
	if code != http.StatusOK {
		t.Fatalf("create connection: %d", code)
	}
	code, body := r.do(t, "POST", "/v1/webhook/channels", `{"source":"zoho","connectionId":"crm-1","events":["Deals.all"],"notifyUrl":"`+r.base+`/webhooks/zoho"}`)
	ch, _ := body["channel"].(map[string]any)
	id, _ := ch["channelId"].(string)
	if code != http.StatusOK || id == "" || ch["state"] != "CHANNEL_STATE_ACTIVE" {
		t.Fatalf("create channel: %d %v", code, body)
	}
	w, ok := crm.Channel(id)
	if !ok || !crm.Live(id) {
		t.Fatal("the channel is not enabled at the stand-in")
	}
	for k, v := range ch {
		if s, ok := v.(string); ok && strings.Contains(s, w.Token) {
			t.Fatalf("channel field %s shows its token", k)
		}
	}
	if n, err := crm.Notify(t.Context(), "Deals", "update", []string{"4150868000001"}, []string{"Stage"}); err != nil || n != 1 {
		t.Fatalf("notify: %d %v", n, err)
	}
	code, body = r.do(t, "GET", "/v1/webhook/events?module=Deals&operation=update", "")
	if events, _ := body["events"].([]any); code != http.StatusOK || len(events) != 1 {
		t.Fatalf("stored notifications: %d %v", code, body)
	}
	before := w.Expiry
	if code, body = r.do(t, "POST", "/v1/webhook/channels/"+id+":renew", "{}"); code != http.StatusOK {
		t.Fatalf("renew: %d %v", code, body)
	}
	if w2, _ := crm.Channel(id); w2.Expiry.Before(before) || crm.Requests()["PUT"] != 1 {
		t.Fatalf("renewal did not reach the stand-in once (%d PUTs) or moved the expiry back: %v → %v", crm.Requests()["PUT"], before, w2.Expiry)
	}
	if code, body = r.do(t, "POST", "/v1/webhook/channels/"+id+":disable", "{}"); code != http.StatusOK || crm.Live(id) {
		t.Fatalf("disable: %d %v", code, body)
	}
	// A notification still carrying the disabled channel's token is refused at the gateway.
	req, _ := http.NewRequest("POST", r.base+"/webhooks/zoho", strings.NewReader(`{"channel_id":"`+id+`","token":"`+w.Token+`","module":"Deals"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("notification of a disabled channel: %d", resp.StatusCode)
	}
}
