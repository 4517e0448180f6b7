package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
)

func storedNames(t *testing.T, h *harness, id string) map[string][]string {
	t.Helper()
	got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, hd := range got.GetEvent().GetHeaders() {
		out[hd.GetName()] = hd.GetValues()
	}
	return out
}

// Credential headers are never stored, whatever their case, and the deny list is configurable without
// letting HTTP's own credential headers in.
func TestCredentialHeadersAreNotStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		credentials := []string{"authorization", "Bearer a", "PROXY-AUTHORIZATION", "Basic b", "cookie", "c=d",
			"X-Api-Key", "e", "x-auth-token", "f", "X-Amz-Security-Token", "g",
			"X-Gitlab-Token", "h", "X-Authorization", "i", "private-token", "j", "X-Api-Token", "k"}
		h := startService(t, d, map[string]string{})
		resp, err := h.client.Ingest(t.Context(), delivery(`{}`, append(credentials, "content-type", "application/json", "X-Zoho-Signature", "s")...))
		if err != nil {
			t.Fatal(err)
		}
		stored := storedNames(t, h, resp.GetEventId())
		for i := 0; i < len(credentials); i += 2 {
			for name := range stored {
				if strings.EqualFold(name, credentials[i]) {
					t.Errorf("%s was stored", name)
				}
			}
		}
		if stored["Content-Type"] == nil || stored["X-Zoho-Signature"] == nil {
			t.Errorf("ordinary headers not stored: %v", stored)
		}

		custom := startService(t, d, map[string]string{"WEBHOOK_HEADER_DENYLIST": "x-tenant-secret, X-API-KEY"})
		resp, err = custom.client.Ingest(t.Context(), delivery(`{}`, "X-Tenant-Secret", "t", "X-Api-Key", "k",
			"Authorization", "Bearer a", "X-Auth-Token", "listed only by default"))
		if err != nil {
			t.Fatal(err)
		}
		stored = storedNames(t, custom, resp.GetEventId())
		for _, name := range []string{"X-Tenant-Secret", "X-Api-Key", "Authorization"} {
			if stored[name] != nil {
				t.Errorf("configured list: %s was stored", name)
			}
		}
		if stored["X-Auth-Token"] == nil {
			t.Errorf("the configured list replaces the default one, yet X-Auth-Token was not stored: %v", stored)
		}
	})
}

// Header names that are not HTTP tokens are refused: "Authorization " or "Authorization\x00" would
// otherwise slip past the deny list. Values that a backend cannot store, or that forge header lines, are
// refused the same way on both backends (PostgreSQL used to fail with 500 on NUL).
func TestMalformedHeadersAreRefusedAlike(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0"})
		cases := map[string][]string{
			"trailing space":     {"Authorization ", "Bearer a"},
			"NUL in name":        {"Authorization\x00", "Bearer a"},
			"space inside":       {"X Api Key", "k"},
			"empty name":         {"", "v"},
			"non-ASCII name":     {"Authörization", "Bearer a"},
			"colon":              {"Authorization:", "Bearer a"},
			"name too long":      {strings.Repeat("x", 257), "v"},
			"NUL in value":       {"X-Note", "a\x00b"},
			"line break":         {"X-Note", "a\r\nAuthorization: Bearer a"},
			"escape sequence":    {"X-Note", "\x1b[31mred"},
			"value over 64 KiB":  {"X-Note", strings.Repeat("v", 64<<10+1)},
			"DEL in value":       {"X-Note", "a\x7fb"},
			"NUL in dedupe id":   {"Webhook-Id", "id\x00"},
			"NUL in contenttype": {"Content-Type", "application/json\x00"},
		}
		for name, hd := range cases {
			_, err := h.client.Ingest(t.Context(), delivery(`{"case":"`+name+`"}`, hd...))
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{})
		if err != nil || len(list.GetEvents()) != 0 {
			t.Fatalf("refused deliveries were stored: %v %v", list, err)
		}
		// A tab is allowed in a value, as HTTP allows it.
		if _, err := h.client.Ingest(t.Context(), delivery(`{}`, "X-Note", "a\tb")); err != nil {
			t.Fatalf("tab in a value: %v", err)
		}
		// gRPC cannot carry invalid UTF-8 in a string, so only an in-process caller can send it; it is
		// refused before the database as well.
		_, err = h.srv.Ingest(context.Background(), delivery(`{}`, "X-Note", "caf\xe9"))
		if !errors.Is(err, errs.ErrInvalid) {
			t.Fatalf("invalid UTF-8 value in process: %v", err)
		}
	})
}

// A header added to the deny list after events were stored with it is no longer shown with them.
func TestDenyListAppliesToEventsStoredBefore(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		st := newStore(t, d)
		before := startServiceOn(t, st, map[string]string{})
		resp, err := before.client.Ingest(t.Context(), delivery(`{}`, "X-Tenant-Secret", "s", "X-Note", "n"))
		if err != nil {
			t.Fatal(err)
		}
		if stored := storedNames(t, before, resp.GetEventId()); stored["X-Tenant-Secret"] == nil {
			t.Fatalf("precondition: the header is stored under the default list: %v", stored)
		}
		after := startServiceOn(t, st, map[string]string{"WEBHOOK_HEADER_DENYLIST": "x-tenant-secret"})
		if stored := storedNames(t, after, resp.GetEventId()); stored["X-Tenant-Secret"] != nil || stored["X-Note"] == nil {
			t.Fatalf("after the list changed: %v", stored)
		}
	})
}
