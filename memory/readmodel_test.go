package memory_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/memory"
	"github.com/uneventful/uneventful/sqlite"
)

// TestBoundedAndMonotonic: the read model holds at most MaxEntities states,
// reads one it dropped from the store, and never goes back to an older
// version.
func TestBoundedAndMonotonic(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := memory.New(map[string]uneventful.Store{"wallet": store})
	m.MaxEntities = 10

	record := func(id string, version int64, data string) uneventful.Record {
		now := time.Now().UTC()
		e := uneventful.Event{EventID: uneventful.NewID(), Timestamp: now, SourceName: "test", SourceID: "test",
			TypeName: "wallet." + id + ".credit", Domain: "wallet", EntityID: id, Command: "credit",
			Data: []byte(`{"amount":1}`), IdempotencyKey: uneventful.NewID(), RequestHash: "h",
			Version: version, Outcome: uneventful.Accepted, Reply: []byte(`{}`)}
		e.CorrelationID, e.CausationID = e.EventID, e.EventID
		return uneventful.Record{Event: e, State: &uneventful.State{Domain: "wallet", EntityID: id, Version: version,
			Timestamp: now, EventID: e.EventID, Data: []byte(data)}}
	}
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = uneventful.NewID()
		r := []uneventful.Record{record(ids[i], 1, `{"balance":1}`)}
		if err := store.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := m.Project(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n := m.Len(); n > 10 {
			t.Fatalf("%d states held after %d projected, want at most 10", n, i+1)
		}
	}
	// Every wallet reads back, held or not.
	for _, id := range ids {
		s, err := m.State(ctx, "wallet", id)
		if err != nil || s.Version != 1 || string(s.Data) != `{"balance":1}` {
			t.Fatalf("state of %s: %+v, %v", id, s, err)
		}
	}
	if n := m.Len(); n != 10 {
		t.Fatalf("%d states held after reading 25, want 10", n)
	}

	// An older version projected after a newer one changes nothing.
	id := ids[0]
	v2, v3 := record(id, 2, `{"balance":2}`), record(id, 3, `{"balance":3}`)
	if err := m.Project(ctx, []uneventful.Record{v3}); err != nil {
		t.Fatal(err)
	}
	if err := m.Project(ctx, []uneventful.Record{v2}); err != nil {
		t.Fatal(err)
	}
	if s, err := m.State(ctx, "wallet", id); err != nil || s.Version != 3 {
		t.Fatalf("after projecting version 3 then 2: %+v, %v", s, err)
	}
	if _, err := m.State(ctx, "nope", id); err == nil {
		t.Fatal("a state of an unknown domain was found")
	}
}
