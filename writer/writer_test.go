package writer_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
	"github.com/uneventful/uneventful/writer"
)

// TestRetryInBatch: the writer does not look keys up before it commits; a
// batch holding a retry of a recorded command fails on the store's unique
// index and is tried again with lookups. The retry gets its recorded reply,
// a reused key with another body 422, and the new commands of the same
// batch apply once each.
func TestRetryInBatch(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	model := wallet.New(wallet.DefaultScale)
	id := uneventful.NewID()
	envelope := func(key, body string) *uneventful.Event {
		data, err := model.Parse("credit", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &uneventful.Event{EventID: uneventful.NewID(), Timestamp: time.Now().UTC(), SourceName: "test",
			TypeName: "wallet." + id + ".credit", Domain: "wallet", EntityID: id, Command: "credit",
			Data: data, IdempotencyKey: key}
	}
	// run queues the commands before the writer runs, so that they make
	// one batch, and returns the replies in order.
	run := func(obs *recorder, events ...*uneventful.Event) []*uneventful.Reply {
		w := &writer.Writer{Model: model, Store: store, Observer: obs, Logger: slog.New(slog.DiscardHandler)}
		replies := make([]chan *uneventful.Reply, len(events))
		for i, e := range events {
			replies[i] = make(chan *uneventful.Reply, 1)
			w.Handle(e, func(r *uneventful.Reply) { replies[i] <- r })
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		out := make([]*uneventful.Reply, len(events))
		for i := range replies {
			out[i] = <-replies[i]
		}
		stop()
		<-done
		return out
	}

	k1, k2, k3 := uneventful.NewID(), uneventful.NewID(), uneventful.NewID()
	first := run(&recorder{}, envelope(k1, `{"amount": 5}`))[0]
	if first.Outcome != uneventful.Accepted || first.Version != 1 {
		t.Fatalf("first credit: %+v", first)
	}

	obs := &recorder{}
	r := run(obs, envelope(k2, `{"amount": 3}`), envelope(k1, `{"amount": 5}`), envelope(k3, `{"amount": 2}`), envelope(k1, `{"amount": 6}`))
	if r[0].Outcome != uneventful.Accepted || r[0].Version != 2 {
		t.Errorf("new credit before the retry: %+v", r[0])
	}
	if r[1].EventID != first.EventID || r[1].Version != 1 || r[1].Outcome != uneventful.Accepted || r[1].Error != nil {
		t.Errorf("retry: %+v, want the recorded reply %+v", r[1], first)
	}
	if r[2].Outcome != uneventful.Accepted || r[2].Version != 3 {
		t.Errorf("new credit after the retry: %+v", r[2])
	}
	if r[3].Error == nil || !errors.Is(r[3].Error.Err(), uneventful.ErrIdempotencyMismatch) {
		t.Errorf("reused key with another body: %+v", r[3])
	}
	if len(obs.commits) != 1 || obs.commits[0].Attempts != 2 || !obs.commits[0].Lookup || obs.commits[0].Records != 2 {
		t.Errorf("commits: %+v, want one batch of 2 records in 2 attempts, the second with lookups", obs.commits)
	}
	st, err := store.Load(ctx, "wallet", id)
	if err != nil {
		t.Fatal(err)
	}
	events, err := store.Events(ctx, uneventful.EventQuery{Domain: "wallet", EntityID: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 3 || len(events) != 3 {
		t.Fatalf("state version %d with %d events, want 3 and 3", st.Version, len(events))
	}
	if !strings.Contains(string(r[2].View), `"balance":10`) {
		t.Errorf("view after the batch: %s, want a balance of 10", r[2].View)
	}
}
