package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// RunChannels checks store.ChannelStore; newStore returns an empty, migrated store for one subtest.
func RunChannels(t *testing.T, newStore func(t *testing.T) store.ChannelStore) {
	t.Run("CreateGetEveryField", func(t *testing.T) { t.Parallel(); testChannelRoundTrip(t, newStore(t)) })
	t.Run("CreateTakenID", func(t *testing.T) { t.Parallel(); testChannelTaken(t, newStore(t)) })
	t.Run("ConcurrentCreatesOneWins", func(t *testing.T) { t.Parallel(); testChannelConcurrentCreate(t, newStore(t)) })
	t.Run("UnknownID", func(t *testing.T) { t.Parallel(); testChannelUnknown(t, newStore(t)) })
	t.Run("UpdateVersions", func(t *testing.T) { t.Parallel(); testChannelUpdate(t, newStore(t)) })
	t.Run("ConcurrentUpdatesOneWins", func(t *testing.T) { t.Parallel(); testChannelConcurrentUpdate(t, newStore(t)) })
	t.Run("ListPagesByID", func(t *testing.T) { t.Parallel(); testChannelList(t, newStore(t)) })
	t.Run("DueSoonestFirst", func(t *testing.T) { t.Parallel(); testChannelsDue(t, newStore(t)) })
	t.Run("Counts", func(t *testing.T) { t.Parallel(); testChannelCounts(t, newStore(t)) })
	t.Run("RefusesWhatCannotBeStored", func(t *testing.T) { t.Parallel(); testChannelInvalid(t, newStore(t)) })
}

// channelBase is the time the channel tests count from: whole microseconds, as the stores keep them.
var channelBase = time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC)

// NewChannel returns a valid active channel with id, for tests that need one stored.
func NewChannel(id, source string, expire time.Time) *store.Channel {
	return &store.Channel{
		ID: id, Source: source, ConnectionID: "conn-" + source, Events: []string{"Deals.all", "Contacts.create"},
		NotifyURL: "https://hooks.example.com/webhooks/" + source, SealedToken: []byte("sealed:" + id),
		State: store.ChannelActive, ExpireTime: expire, CreateTime: channelBase, UpdateTime: channelBase,
	}
}

func createChannel(t *testing.T, s store.ChannelStore, c *store.Channel) *store.Channel {
	t.Helper()
	if err := s.ChannelCreate(context.Background(), c); err != nil {
		t.Fatalf("create %s: %v", c.ID, err)
	}
	return c
}

func getChannel(t *testing.T, s store.ChannelStore, id string) *store.Channel {
	t.Helper()
	c, err := s.ChannelGet(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return c
}

// Every field comes back as written: times to the microsecond in UTC (a time given in another zone or
// with nanoseconds reads back as the same instant, truncated), a zero RenewTime stays zero, sealed bytes
// exactly (NUL and bytes that are not UTF-8 included), and no events reads back nil whether given nil or
// empty. The caller's copy is updated to what a read returns.
func testChannelRoundTrip(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	full := &store.Channel{
		ID: "999999999999999999", Source: "zoho-crm", ConnectionID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		Events: []string{"Deals.all", "Contacts.edit", "Ämter.create"}, NotifyURL: "https://example.com/webhooks/zoho-crm?x=1&y=ü",
		ReturnAffectedFieldValues: true, SealedToken: []byte{0, 1, 0xff, 0, 0xfe, '\n', 0},
		State: store.ChannelFailing, ExpireTime: channelBase.Add(time.Hour + 789*time.Nanosecond).In(zone),
		CreateTime: channelBase.Add(-time.Hour), UpdateTime: channelBase.Add(time.Second),
		RenewTime: channelBase.Add(time.Minute).In(zone), FailedRenewals: 3, LastError: "zoho: 401 INVALID_TOKEN «expired»",
	}
	createChannel(t, s, full)
	want := *full
	want.ExpireTime, want.RenewTime = channelBase.Add(time.Hour), channelBase.Add(time.Minute)
	want.Version = 1
	if !reflect.DeepEqual(full, &want) {
		t.Fatalf("the created channel is not what a read returns:\n%+v\nwant %+v", full, &want)
	}
	if got := getChannel(t, s, full.ID); !reflect.DeepEqual(got, &want) {
		t.Fatalf("get:\n%+v\nwant %+v", got, &want)
	}

	for i, events := range [][]string{nil, {}} {
		bare := NewChannel(fmt.Sprint(i+1), "zoho-crm", channelBase)
		bare.Events, bare.SealedToken = events, []byte{0}
		createChannel(t, s, bare)
		got := getChannel(t, s, bare.ID)
		if got.Events != nil || !got.RenewTime.IsZero() || got.LastError != "" || got.FailedRenewals != 0 ||
			got.ReturnAffectedFieldValues || !reflect.DeepEqual(got.SealedToken, []byte{0}) || got.Version != 1 {
			t.Fatalf("channel with events %#v: %+v", events, got)
		}
	}
	listed, err := s.ChannelList(ctx, store.ChannelListParams{Limit: 10})
	if err != nil || len(listed) != 3 || !reflect.DeepEqual(listed[2], &want) {
		t.Fatalf("list reads the same fields: %v %+v", err, listed)
	}
}

func testChannelTaken(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	createChannel(t, s, NewChannel("42", "a", channelBase))
	again := NewChannel("42", "b", channelBase.Add(time.Hour))
	if err := s.ChannelCreate(ctx, again); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("taken id: %v", err)
	}
	if again.Version != 0 {
		t.Fatalf("a refused create set the version: %d", again.Version)
	}
	if got := getChannel(t, s, "42"); got.Source != "a" {
		t.Fatalf("the first channel changed: %+v", got)
	}
	// Ids are text: "042" is another channel than "42".
	createChannel(t, s, NewChannel("042", "a", channelBase))
}

// Of several creates of one id at once exactly one stores its channel; the others get KindAlreadyExists.
func testChannelConcurrentCreate(t *testing.T, s store.ChannelStore) {
	const n = 8
	results := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = s.ChannelCreate(context.Background(), NewChannel("31", fmt.Sprint("source-", i), channelBase))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("creates %d and %d both stored", winner, i)
		case !errors.Is(err, errs.ErrAlreadyExists):
			t.Fatalf("create %d: %v, want already exists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create stored")
	}
	if got := getChannel(t, s, "31"); got.Source != fmt.Sprint("source-", winner) {
		t.Fatalf("stored %+v, want create %d's", got, winner)
	}
}

func testChannelUnknown(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	createChannel(t, s, NewChannel("7", "a", channelBase))
	for _, id := range []string{"8", "07", "", "x"} {
		if _, err := s.ChannelGet(ctx, id); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("get %q: %v", id, err)
		}
		if err := s.ChannelDelete(ctx, id); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("delete %q: %v", id, err)
		}
	}
	missing := NewChannel("8", "a", channelBase)
	missing.Version = 1
	if err := s.ChannelUpdate(ctx, missing); !errors.Is(err, errs.ErrNotFound) || missing.Version != 1 {
		t.Errorf("update unknown: %v (version %d)", err, missing.Version)
	}
	if err := s.ChannelDelete(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	if err := s.ChannelDelete(ctx, "7"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	if _, err := s.ChannelGet(ctx, "7"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
}

// An update writes exactly its fields and moves the version on; one made from an older version is
// refused with KindConflict and leaves the row as it was.
func testChannelUpdate(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	c := createChannel(t, s, NewChannel("100", "zoho", channelBase.Add(time.Hour)))
	stale := *c

	c.State, c.ExpireTime, c.UpdateTime = store.ChannelActive, channelBase.Add(25*time.Hour+time.Nanosecond), channelBase.Add(time.Minute)
	c.RenewTime, c.FailedRenewals, c.LastError = channelBase.Add(time.Minute), 0, ""
	// Fields ChannelUpdate does not write stay as stored whatever the caller holds.
	c.Source, c.NotifyURL, c.SealedToken, c.Events = "changed", "https://changed", []byte("changed"), []string{"X.all"}
	if err := s.ChannelUpdate(ctx, c); err != nil || c.Version != 2 {
		t.Fatalf("update: %v version %d", err, c.Version)
	}
	want := *NewChannel("100", "zoho", channelBase.Add(25*time.Hour))
	want.UpdateTime, want.RenewTime, want.Version = channelBase.Add(time.Minute), channelBase.Add(time.Minute), 2
	if got := getChannel(t, s, "100"); !reflect.DeepEqual(got, &want) {
		t.Fatalf("after update:\n%+v\nwant %+v", got, &want)
	}
	if c.ExpireTime != want.ExpireTime {
		t.Fatalf("the caller's copy was not truncated to what is stored: %v", c.ExpireTime)
	}

	stale.State, stale.FailedRenewals, stale.LastError = store.ChannelExpired, 9, "stale"
	if err := s.ChannelUpdate(ctx, &stale); !errors.Is(err, errs.ErrConflict) || stale.Version != 1 {
		t.Fatalf("stale update: %v (version %d)", err, stale.Version)
	}
	if got := getChannel(t, s, "100"); !reflect.DeepEqual(got, &want) {
		t.Fatalf("a refused update changed the row:\n%+v\nwant %+v", got, &want)
	}
	// Back to no renewal and a failure: RenewTime zero is stored as none again.
	fresh := getChannel(t, s, "100")
	fresh.State, fresh.RenewTime, fresh.FailedRenewals, fresh.LastError = store.ChannelDisabled, time.Time{}, 2, "gone"
	if err := s.ChannelUpdate(ctx, fresh); err != nil || fresh.Version != 3 {
		t.Fatalf("update from a read: %v version %d", err, fresh.Version)
	}
	if got := getChannel(t, s, "100"); !reflect.DeepEqual(got, fresh) || !got.RenewTime.IsZero() {
		t.Fatalf("after the second update:\n%+v\nwant %+v", got, fresh)
	}
}

// Of several updates made at once from one version exactly one is applied; every other gets
// KindConflict, and the row holds the winner's change.
func testChannelConcurrentUpdate(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	base := createChannel(t, s, NewChannel("5", "zoho", channelBase))
	const n = 8
	errsOf := make([]error, n)
	copies := make([]*store.Channel, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		c := *base
		c.FailedRenewals, c.LastError = int32(i+1), fmt.Sprint("writer ", i)
		copies[i] = &c
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errsOf[i] = s.ChannelUpdate(ctx, copies[i])
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errsOf {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("writers %d and %d both won", winner, i)
		case !errors.Is(err, errs.ErrConflict):
			t.Fatalf("writer %d: %v, want a conflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	if got := getChannel(t, s, "5"); got.Version != 2 || !reflect.DeepEqual(got, copies[winner]) {
		t.Fatalf("stored %+v, want writer %d's %+v", got, winner, copies[winner])
	}
}

// Lists page in id order compared as text ("10" before "9"), with source and state filters alone and
// together, each page after the last id of the previous one.
func testChannelList(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	ids := []string{"9", "10", "100", "11", "2", "20", "3", "123456789012345678", "0"}
	for i, id := range ids {
		c := NewChannel(id, []string{"a", "b"}[i%2], channelBase)
		c.State = []store.ChannelState{store.ChannelActive, store.ChannelFailing, store.ChannelDisabled}[i%3]
		createChannel(t, s, c)
	}
	list := func(p store.ChannelListParams) []string {
		t.Helper()
		var out []string
		for range 20 { // bounded: at most 20 pages
			page, err := s.ChannelList(ctx, p)
			if err != nil {
				t.Fatalf("list %+v: %v", p, err)
			}
			for _, c := range page {
				if (p.Source != "" && c.Source != p.Source) || (p.State != 0 && c.State != p.State) {
					t.Fatalf("list %+v returned %+v", p, c)
				}
				out = append(out, c.ID)
			}
			if len(page) < p.Limit {
				return out
			}
			p.AfterID = page[len(page)-1].ID
		}
		t.Fatal("list does not end")
		return nil
	}
	cases := []struct {
		p    store.ChannelListParams
		want []string
	}{
		{store.ChannelListParams{Limit: 2}, []string{"0", "10", "100", "11", "123456789012345678", "2", "20", "3", "9"}},
		{store.ChannelListParams{Limit: 100}, []string{"0", "10", "100", "11", "123456789012345678", "2", "20", "3", "9"}},
		{store.ChannelListParams{Source: "a", Limit: 1}, []string{"0", "100", "2", "3", "9"}},
		{store.ChannelListParams{State: store.ChannelDisabled, Limit: 2}, []string{"0", "100", "20"}},
		{store.ChannelListParams{Source: "b", State: store.ChannelFailing, Limit: 3}, []string{"10", "123456789012345678"}},
		{store.ChannelListParams{Source: "none", Limit: 3}, nil},
		{store.ChannelListParams{AfterID: "2", Limit: 3}, []string{"20", "3", "9"}},
	}
	for _, c := range cases {
		if got := list(c.p); !reflect.DeepEqual(got, c.want) {
			t.Errorf("list %+v: %v, want %v", c.p, got, c.want)
		}
	}
	if _, err := s.ChannelList(ctx, store.ChannelListParams{}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("list without a limit: %v", err)
	}
}

// ChannelsDue returns channels expiring before t, soonest first (ties by id), at most limit, and never a
// disabled one; failing and expired channels are still due.
func testChannelsDue(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	add := func(id string, in time.Duration, state store.ChannelState) {
		c := NewChannel(id, "zoho", channelBase.Add(in))
		c.State = state
		createChannel(t, s, c)
	}
	add("1", 50*time.Minute, store.ChannelActive)
	add("2", 10*time.Minute, store.ChannelActive)
	add("3", -time.Hour, store.ChannelExpired)
	add("4", 5*time.Minute, store.ChannelDisabled)
	add("5", 30*time.Minute, store.ChannelFailing)
	add("6", 10*time.Minute, store.ChannelActive)
	add("7", time.Hour, store.ChannelActive) // not before the hour: expires exactly at t
	add("8", 2*time.Hour, store.ChannelActive)
	due := func(at time.Time, limit int) []string {
		t.Helper()
		cs, err := s.ChannelsDue(ctx, at, store.DueCursor{}, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return ids
	}
	hour := channelBase.Add(time.Hour)
	if got, want := due(hour, 10), []string{"3", "2", "6", "5", "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("due within the hour: %v, want %v", got, want)
	}
	if got, want := due(hour, 2), []string{"3", "2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("due, limit 2: %v, want %v", got, want)
	}
	if got := due(channelBase.Add(-2*time.Hour), 10); got != nil {
		t.Errorf("nothing is due that early: %v", got)
	}
	// A microsecond later the channel expiring at the hour is due.
	if got, want := due(hour.Add(time.Microsecond), 10), []string{"3", "2", "6", "5", "1", "7"}; !reflect.DeepEqual(got, want) {
		t.Errorf("due a microsecond past the hour: %v, want %v", got, want)
	}
	// Paging from the last channel of a page goes on where it stopped, ties by id included.
	add("9", 10*time.Minute, store.ChannelExpired) // expires with "6"
	var paged []string
	var after store.DueCursor
	for range 10 {
		page, err := s.ChannelsDue(ctx, hour.Add(time.Microsecond), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			paged = append(paged, c.ID)
		}
		after = page[len(page)-1].Due()
	}
	if want := []string{"3", "2", "6", "9", "5", "1", "7"}; !reflect.DeepEqual(paged, want) {
		t.Errorf("paged due channels %v, want %v", paged, want)
	}
	cs, err := s.ChannelsDue(ctx, hour, store.DueCursor{}, 1)
	if err != nil || len(cs) != 1 || !reflect.DeepEqual(cs[0], getChannel(t, s, "3")) {
		t.Fatalf("a due channel is read whole: %v %+v", err, cs)
	}
	if _, err := s.ChannelsDue(ctx, hour, store.DueCursor{}, 0); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("due without a limit: %v", err)
	}
}

func testChannelCounts(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	counts, err := s.ChannelCounts(ctx)
	if err != nil || len(counts) != 0 {
		t.Fatalf("empty store: %v %v", counts, err)
	}
	for i, st := range []store.ChannelState{store.ChannelActive, store.ChannelActive, store.ChannelExpired, store.ChannelFailing, store.ChannelActive} {
		c := NewChannel(fmt.Sprint(i+1), "zoho", channelBase)
		c.State = st
		createChannel(t, s, c)
	}
	counts, err = s.ChannelCounts(ctx)
	want := map[store.ChannelState]int{store.ChannelActive: 3, store.ChannelExpired: 1, store.ChannelFailing: 1}
	if err != nil || !reflect.DeepEqual(counts, want) {
		t.Fatalf("counts: %v %v, want %v", counts, err, want)
	}
}

// What neither backend can store alike is refused as KindInvalid before the database sees it (the
// database's own CHECKs would answer with an internal error), and nothing is stored.
func testChannelInvalid(t *testing.T, s store.ChannelStore) {
	ctx := context.Background()
	bad := map[string]func(c *store.Channel){
		"empty id":         func(c *store.Channel) { c.ID = "" },
		"19 digits":        func(c *store.Channel) { c.ID = "1234567890123456789" },
		"letters":          func(c *store.Channel) { c.ID = "12a" },
		"non-ASCII digit":  func(c *store.Channel) { c.ID = "١٢" },
		"state 0":          func(c *store.Channel) { c.State = 0 },
		"state 5":          func(c *store.Channel) { c.State = 5 },
		"no expiry":        func(c *store.Channel) { c.ExpireTime = time.Time{} },
		"no create time":   func(c *store.Channel) { c.CreateTime = time.Time{} },
		"no update time":   func(c *store.Channel) { c.UpdateTime = time.Time{} },
		"no sealed token":  func(c *store.Channel) { c.SealedToken = nil },
		"negative fails":   func(c *store.Channel) { c.FailedRenewals = -1 },
		"NUL in source":    func(c *store.Channel) { c.Source = "zo\x00ho" },
		"NUL in event":     func(c *store.Channel) { c.Events = []string{"Deals.all", "\x00"} },
		"bad UTF-8 in URL": func(c *store.Channel) { c.NotifyURL = "https://x/\xff" },
		"NUL in error":     func(c *store.Channel) { c.LastError = "a\x00b" },
	}
	for name, spoil := range bad {
		c := NewChannel("77", "zoho", channelBase)
		spoil(c)
		if err := s.ChannelCreate(ctx, c); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("create with %s: %v", name, err)
		}
	}
	if counts, err := s.ChannelCounts(ctx); err != nil || len(counts) != 0 {
		t.Fatalf("a refused channel was stored: %v %v", counts, err)
	}
	c := createChannel(t, s, NewChannel("77", "zoho", channelBase))
	for name, spoil := range map[string]func(c *store.Channel){
		"state 0":        func(c *store.Channel) { c.State = 0 },
		"no expiry":      func(c *store.Channel) { c.ExpireTime = time.Time{} },
		"negative fails": func(c *store.Channel) { c.FailedRenewals = -1 },
		"NUL in error":   func(c *store.Channel) { c.LastError = "\x00" },
	} {
		u := *c
		spoil(&u)
		if err := s.ChannelUpdate(ctx, &u); !errors.Is(err, errs.ErrInvalid) || u.Version != 1 {
			t.Errorf("update with %s: %v", name, err)
		}
	}
	if got := getChannel(t, s, "77"); !reflect.DeepEqual(got, c) {
		t.Fatalf("a refused update changed the row: %+v", got)
	}
}

// FillChannels stores n channels over three sources and every state, expiring over the next n minutes,
// for tests that need a table worth planning for.
func FillChannels(t testing.TB, s store.ChannelStore, n int) {
	t.Helper()
	for i := range n {
		c := NewChannel(fmt.Sprint(1000000+i), []string{"zoho-a", "zoho-b", "zoho-c"}[i%3], channelBase.Add(time.Duration(i)*time.Minute))
		c.State = store.ChannelState(i%4 + 1)
		if err := s.ChannelCreate(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// ChannelListShapes are the filter combinations ChannelList accepts, each on a later page. The backends'
// query-plan tests check that none sorts.
var ChannelListShapes = map[string]store.ChannelListParams{
	"none":         {AfterID: "1000010", Limit: 10},
	"source":       {Source: "zoho-a", AfterID: "1000010", Limit: 10},
	"state":        {State: store.ChannelFailing, AfterID: "1000010", Limit: 10},
	"source+state": {Source: "zoho-a", State: store.ChannelFailing, AfterID: "1000010", Limit: 10},
}

// ChannelsDueAt is a time at which the channels FillChannels stores are partly due.
var ChannelsDueAt = channelBase.Add(30 * time.Minute)
