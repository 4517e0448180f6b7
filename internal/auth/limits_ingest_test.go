package auth

import (
	"testing"
	"time"
)

// The gateway's webhook:ingest key spends no per-credential budget (the webhook service limits each
// sender address and each source), while a write with the same key's principal still spends the write
// class's.
func TestIngestSpendsNoCredentialBudget(t *testing.T) {
	if c := ClassOf(ScopeWebhookIngest); c != ClassIngest {
		t.Fatalf("webhook:ingest is in class %q, want %q", c, ClassIngest)
	}
	l := NewLimiters(Limits{Read: Rate{PerSecond: 1, Burst: 1}, Write: Rate{PerSecond: 1, Burst: 1}, Admin: Rate{PerSecond: 1, Burst: 1},
		Failures: Rate{PerSecond: 1, Burst: 1}})
	now := time.Now()
	for i := range 5000 {
		if ok, _ := l.allow(false, ClassOf(ScopeWebhookIngest), "apikey:gateway", now); !ok {
			t.Fatalf("ingest call %d refused by a credential budget", i)
		}
	}
	if ok, _ := l.allow(false, ClassOf(ScopeAuditWrite), "apikey:gateway", now); !ok {
		t.Fatal("the first write was refused: ingests spent the write budget")
	}
	if ok, _ := l.allow(false, ClassOf(ScopeAuditWrite), "apikey:gateway", now); ok {
		t.Fatal("the write class is no longer limited")
	}
}
