package writer_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/memory"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
	"github.com/uneventful/uneventful/writer"
)

// BenchmarkCommit measures the write path without HTTP or NATS: credits
// handed to a Writer on a SQLite store with an in-process read model, from
// 1 or 64 concurrent clients, over 1000 wallets, with group commit on and off
// and with the sync on (durable) and off (the ceiling). It reports commands
// per second and the mean commit batch. ns/op is per command.
//
//	go test -run '^$' -bench Commit -cpuprofile /tmp/writer.pprof ./writer/
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
		sync     sqlite.Sync
	}{
		{"one-fsync-per-command", 1, sqlite.SyncFull},
		{"group-commit", 0, sqlite.SyncFull},
		{"group-commit-sync-off", 0, sqlite.SyncOff},
	} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", bc.name, clients), func(b *testing.B) {
				benchCommit(b, bc.maxBatch, bc.sync, clients)
			})
		}
	}
}

func benchCommit(b *testing.B, maxBatch int, mode sqlite.Sync, clients int) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "wallet.db"), sqlite.WithSync(mode))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	model := wallet.New(wallet.DefaultScale)
	var batches, committed int64
	var mu sync.Mutex
	w := &writer.Writer{Model: model, Store: store, MaxBatch: maxBatch,
		ReadModel: memory.New(map[string]uneventful.Store{"wallet": store}),
		Logger:    slog.New(slog.DiscardHandler),
		Committed: func(r []uneventful.Record) { mu.Lock(); batches++; committed += int64(len(r)); mu.Unlock() }}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	defer func() { stop(); <-done }()

	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = uneventful.NewID()
	}
	data, err := model.Parse("credit", []byte(`{"amount": 1}`))
	if err != nil {
		b.Fatal(err)
	}
	credit := func(i int) error {
		id := ids[i%len(ids)]
		e := &uneventful.Event{EventID: uneventful.NewID(), Timestamp: time.Now().UTC(), SourceName: "bench",
			TypeName: "wallet." + id + ".credit", Domain: "wallet", EntityID: id, Command: "credit",
			Data: data, IdempotencyKey: uneventful.NewID()}
		e.CorrelationID, e.CausationID = e.EventID, e.EventID
		reply := make(chan *uneventful.Reply, 1)
		w.Handle(e, func(r *uneventful.Reply) { reply <- r })
		if r := <-reply; r.Error != nil {
			return r.Error.Err()
		}
		return nil
	}

	next := make(chan int)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := range next {
				if err := credit(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	i := 0
	for b.Loop() {
		select {
		case next <- i:
		case err := <-errs:
			b.Fatal(err)
		}
		i++
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(i)/elapsed.Seconds(), "commands/s")
	mu.Lock()
	if batches > 0 {
		b.ReportMetric(float64(committed)/float64(batches), "commands/commit")
	}
	mu.Unlock()
}
