// Package storetest is the token store's conformance suite. Every backend's tests call Run, so that
// SQLite and PostgreSQL behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/token/store"
)

// Run runs the suite; newStore returns an empty, migrated store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("PutGet", func(t *testing.T) { t.Parallel(); testPutGet(t, newStore(t)) })
	t.Run("ReplaceKeepsCreateTime", func(t *testing.T) { t.Parallel(); testReplace(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { t.Parallel(); testNotFound(t, newStore(t)) })
	t.Run("ListPaging", func(t *testing.T) { t.Parallel(); testList(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { t.Parallel(); testDelete(t, newStore(t)) })
}

func conn(provider, id string, at time.Time) *store.Connection {
	return &store.Connection{
		Provider: provider, ConnectionID: id,
		AccessToken: "at-" + id, RefreshToken: "rt-" + id, TokenType: "Bearer",
		ExpireTime: at.Add(time.Hour), Scopes: []string{"ZohoCRM.modules.ALL", "ZohoCRM.settings.READ"},
		APIDomain: "https://www.zohoapis.eu", Status: store.StatusActive,
		CreateTime: at, UpdateTime: at,
	}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func testPutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := conn("zoho", "org-1", now())
	if _, err := s.ConnectionPut(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConnectionGet(ctx, "zoho", "org-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	noRefresh := conn("zoho", "org-2", now())
	noRefresh.RefreshToken, noRefresh.Scopes = "", nil
	if _, err := s.ConnectionPut(ctx, noRefresh); err != nil {
		t.Fatal(err)
	}
	got, err = s.ConnectionGet(ctx, "zoho", "org-2")
	if err != nil {
		t.Fatal(err)
	}
	if got.RefreshToken != "" || len(got.Scopes) != 0 {
		t.Fatalf("empty refresh token or scopes came back as %q %v", got.RefreshToken, got.Scopes)
	}
}

func testReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := now().Add(-time.Hour)
	if _, err := s.ConnectionPut(ctx, conn("zoho", "org-1", first)); err != nil {
		t.Fatal(err)
	}
	second := conn("zoho", "org-1", now())
	second.AccessToken = "new-access"
	stored, err := s.ConnectionPut(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.CreateTime.Equal(first) {
		t.Fatalf("create time %v, want the first write's %v", stored.CreateTime, first)
	}
	got, _ := s.ConnectionGet(ctx, "zoho", "org-1")
	if got.AccessToken != "new-access" || !got.CreateTime.Equal(first) || !got.UpdateTime.Equal(second.UpdateTime) {
		t.Fatalf("replace not applied: %+v", got)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.ConnectionGet(ctx, "zoho", "missing"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if err := s.ConnectionDelete(ctx, "zoho", "missing"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for _, p := range []string{"generic", "zoho"} {
		for i := range 5 {
			id := fmt.Sprintf("c%02d", i)
			if _, err := s.ConnectionPut(ctx, conn(p, id, now())); err != nil {
				t.Fatal(err)
			}
			want = append(want, p+"/"+id)
		}
	}
	var got []string
	params := store.ConnectionListParams{Limit: 3}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err := s.ConnectionList(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.Provider+"/"+c.ConnectionID)
		}
		if len(page) < params.Limit {
			break
		}
		last := page[len(page)-1]
		params.AfterProvider, params.AfterConnectionID = last.Provider, last.ConnectionID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	zoho, err := s.ConnectionList(ctx, store.ConnectionListParams{Provider: "zoho", Limit: 100})
	if err != nil || len(zoho) != 5 || zoho[0].Provider != "zoho" {
		t.Fatalf("filter by provider: %d connections, err %v", len(zoho), err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.ConnectionPut(ctx, conn("zoho", "org-1", now())); err != nil {
		t.Fatal(err)
	}
	if err := s.ConnectionDelete(ctx, "zoho", "org-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConnectionGet(ctx, "zoho", "org-1"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}
