package webhook

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// An event id finds the event in any letter case on both backends (SQLite compared ids as text and
// missed the upper-case form that PostgreSQL found), and the sender's address comes back with it.
func TestGetEventIDsAndSenderAddress(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{})
		resp, err := h.client.Ingest(from(t, "2001:db8::42"), delivery(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{resp.GetEventId(), strings.ToUpper(resp.GetEventId())} {
			got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: id})
			if err != nil || got.GetEvent().GetId() != resp.GetEventId() || got.GetEvent().GetSenderAddress() != "2001:db8::42" {
				t.Fatalf("GetEvent(%s): %v %v", id, got, err)
			}
		}
		list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: "zoho"})
		if err != nil || len(list.GetEvents()) != 1 || list.GetEvents()[0].GetSenderAddress() != "2001:db8::42" {
			t.Fatalf("ListEvents: %v %v", list, err)
		}
		// Other spellings a UUID parser accepts would find nothing on SQLite: they are refused alike.
		for _, id := range []string{"{" + resp.GetEventId() + "}", "urn:uuid:" + resp.GetEventId(), strings.ReplaceAll(resp.GetEventId(), "-", ""), "x\x00"} {
			if _, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: id}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("GetEvent(%q): %v, want InvalidArgument", id, err)
			}
		}
	})
}

// Strings the service filters by or stores are refused alike on both backends when a backend could not
// store or compare them.
func TestUnstorableStringsAreRefusedAlike(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{})
		for _, src := range []string{"zoho\x00", "Zoho", "zoho/x", ""} {
			if _, err := h.client.Ingest(t.Context(), &webhookv1.IngestRequest{Source: src, Body: []byte("x")}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("Ingest source %q: %v", src, err)
			}
			if src == "" {
				continue // no filter
			}
			if _, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: src}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("ListEvents source %q: %v", src, err)
			}
		}
		for _, tok := range []string{"\x00", "garbage", "djEAMQ\x00"} {
			if _, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{PageToken: tok}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("ListEvents page token %q: %v", tok, err)
			}
		}
		if _, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Status: 99}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListEvents unknown status: %v", err)
		}
	})
}
