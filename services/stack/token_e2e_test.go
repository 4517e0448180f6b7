package stack_test

import (
	"strings"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/services/token/zohotest"
)

// Through the gateway: a token about to expire is refreshed at the Zoho stand-in, the caller gets the
// new one, and the refresh reaches the audit log through the outbox.
func TestTokenRefreshEndToEnd(t *testing.T) {
	z := zohotest.New(t)
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	r := start(t, map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin), "TEST_ADMIN_KEY": admin.Key, "AUDIT_CLIENT_API_KEY": admin.Key,
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": z.AccountsURL(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID": z.ClientID,
		"TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": z.ClientSecret,
	})
	rt := z.IssueRefreshToken()
	code, _ := r.do(t, "PUT", "/v1/connections/zoho/org-1", `{"accessToken":"1000.at.old","refreshToken":"`+rt+`","expiresIn":"60s"}`)
	if code != 200 {
		t.Fatalf("create: %d", code)
	}
	code, body := r.do(t, "GET", "/v1/connections/zoho/org-1/access-token", "")
	tok, _ := body["accessToken"].(string)
	if code != 200 || !z.Valid(tok) || tok == "1000.at.old" {
		t.Fatalf("access token: %d %v", code, body)
	}
	// The precondition of what follows: the token was really refreshed at the stand-in, once.
	if z.Refreshes() != 1 {
		t.Fatalf("%d refreshes at the provider, want 1", z.Refreshes())
	}
	code, body = r.do(t, "GET", "/v1/connections/zoho/org-1/refresh-events", "")
	if code != 200 || len(body["events"].([]any)) != 1 {
		t.Fatalf("refresh events: %d %v", code, body)
	}
	// Wait for the event itself (a condition with a deadline), then check it.
	var events []*auditv1.Event
	deadline := time.Now().Add(15 * time.Second)
	for len(events) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("token.refresh never reached the audit log")
		}
		list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "token.refresh"})
		if err != nil {
			t.Fatal(err)
		}
		if events = list.GetEvents(); len(events) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if e := events[0]; len(events) != 1 || e.GetResource() != "zoho/org-1" || e.GetOutcome() != auditv1.Outcome_OUTCOME_SUCCESS || e.GetActor() != "apikey:admin" {
		t.Fatalf("audit events %v", events)
	}
	// A REST answer never carries the refresh token.
	code, body = r.do(t, "GET", "/v1/connections/zoho/org-1", "")
	for k, v := range body["connection"].(map[string]any) {
		if s, ok := v.(string); ok && strings.Contains(s, rt) {
			t.Fatalf("field %s holds the refresh token", k)
		}
	}
	if code != 200 {
		t.Fatal(code)
	}
}
