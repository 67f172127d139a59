package writer_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
	"github.com/uneventful/uneventful/writer"
)

// TestRelayDurableAfter: with a broker that may lose for a while what it
// acknowledged, the relay's checkpoint moves past an event only
// DurableAfter after it was published, and stopping the relay earlier
// leaves it where it was, so the next start publishes those events again.
func TestRelayDurableAfter(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	model := wallet.New(wallet.DefaultScale)
	w := &writer.Writer{Model: model, Store: store, Logger: slog.New(slog.DiscardHandler)}
	wctx, stopW := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()
	id := uneventful.NewID()
	for range 3 {
		command(t, w, model, id, "credit", `{"amount": 1}`)
	}
	stopW()
	<-wdone

	checkpoint := func() int64 {
		t.Helper()
		pos, err := store.Checkpoint(ctx, "relay")
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	run := func(durableAfter, stopAfter time.Duration, during func()) {
		obs := &recorder{}
		r := (&writer.Relay{Store: store, Publisher: &publisher{}, DurableAfter: durableAfter, Observer: obs,
			Logger: slog.New(slog.DiscardHandler)}).Init()
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(rctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			obs.mu.Lock()
			n := len(obs.relayed)
			obs.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the relay published nothing")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if during != nil {
			during()
		}
		time.Sleep(stopAfter)
		stop()
		<-done
	}

	// Stopped 1.5 s after publishing, with 4 s to go: no checkpoint.
	run(4*time.Second, 1500*time.Millisecond, nil)
	if pos := checkpoint(); pos != 0 {
		t.Fatalf("checkpoint %d after a stop within DurableAfter, want 0", pos)
	}
	// Running past DurableAfter: the checkpoint reaches the last event,
	// and not before.
	run(2*time.Second, 0, func() {
		time.Sleep(1200 * time.Millisecond)
		if pos := checkpoint(); pos != 0 {
			t.Errorf("checkpoint %d 1.2 s after publishing, within DurableAfter of 2 s, want 0", pos)
		}
		deadline := time.Now().Add(10 * time.Second)
		for checkpoint() != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint %d, want 3 once DurableAfter passed", checkpoint())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Without DurableAfter, a stop saves the position at once.
	if err := store.SaveCheckpoint(ctx, "relay", 0); err != nil {
		t.Fatal(err)
	}
	run(0, 0, nil)
	if pos := checkpoint(); pos != 3 {
		t.Fatalf("checkpoint %d after a stop without DurableAfter, want 3", pos)
	}
}
