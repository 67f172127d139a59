package writer_test

import (
	"context"
	"errors"
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

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu         sync.Mutex
	commits    []writer.Commit
	projecting []int64
	lost       []bool
	projected  []int64
	done       []bool
	relayed    []int64
}

func (r *recorder) Committed(c writer.Commit) {
	r.mu.Lock()
	r.commits = append(r.commits, c)
	r.mu.Unlock()
}
func (r *recorder) Projecting(pos int64, lost bool) {
	r.mu.Lock()
	r.projecting, r.lost = append(r.projecting, pos), append(r.lost, lost)
	r.mu.Unlock()
}
func (r *recorder) Projected(pos int64, done bool, err error) {
	r.mu.Lock()
	if err == nil {
		r.projected, r.done = append(r.projected, pos), append(r.done, done)
	}
	r.mu.Unlock()
}
func (r *recorder) Relayed(pos int64) { r.mu.Lock(); r.relayed = append(r.relayed, pos); r.mu.Unlock() }

// failingReadModel fails every projection.
type failingReadModel struct{ uneventful.ReadModel }

func (failingReadModel) Project(context.Context, []uneventful.Record) error {
	return errors.New("read model down")
}

// positioned is an in-memory PositionedReadModel.
type positioned struct {
	*memory.ReadModel
	mu  sync.Mutex
	pos int64
	ok  bool
}

func (p *positioned) Position(context.Context, string) (int64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos, p.ok, nil
}

func (p *positioned) MarkReady(_ context.Context, _ string, pos int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos, p.ok = pos, true
	return nil
}

func command(t *testing.T, w *writer.Writer, model uneventful.Model, id, cmd, body string) *uneventful.Reply {
	t.Helper()
	data, err := model.Parse(cmd, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	e := &uneventful.Event{EventID: uneventful.NewID(), Timestamp: time.Now().UTC(), SourceName: "test",
		TypeName: "wallet." + id + "." + cmd, Domain: "wallet", EntityID: id, Command: cmd,
		Data: data, IdempotencyKey: uneventful.NewID()}
	reply := make(chan *uneventful.Reply, 1)
	w.Handle(e, func(r *uneventful.Reply) { reply <- r })
	return <-reply
}

// TestObserver: the writer reports each batch (its size, the sequences
// appended, the append's and the commit's time, the projection), the
// projector the read model's position, and the relay its own.
func TestObserver(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	model := wallet.New(wallet.DefaultScale)
	rm := memory.New(map[string]uneventful.Store{"wallet": store})
	obs := &recorder{}
	w := &writer.Writer{Model: model, Store: store, ReadModel: rm, Observer: obs, Logger: slog.New(slog.DiscardHandler)}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()

	id := uneventful.NewID()
	command(t, w, model, id, "credit", `{"amount": 5}`)
	if r := command(t, w, model, id, "debit", `{"amount": 50}`); r.Outcome != uneventful.Rejected {
		t.Fatalf("debit: %+v", r)
	}
	w.ReadModel = failingReadModel{rm} // read by the commit loop only after this command is queued
	command(t, w, model, id, "credit", `{"amount": 1}`)
	stop()
	<-done

	obs.mu.Lock()
	commits := obs.commits
	obs.mu.Unlock()
	if len(commits) != 3 {
		t.Fatalf("%d commits reported, want 3: %+v", len(commits), commits)
	}
	for i, c := range commits {
		if c.Commands != 1 || c.Records != 1 || c.Attempts != 1 || c.Err != nil {
			t.Errorf("commit %d: %+v", i, c)
		}
		if c.First != int64(i+1) || c.Last != int64(i+1) {
			t.Errorf("commit %d: sequences %d..%d, want %d", i, c.First, c.Last, i+1)
		}
		if c.Append <= 0 || c.Took < c.Append {
			t.Errorf("commit %d: append %v, took %v", i, c.Append, c.Took)
		}
	}
	if !commits[0].Projected || !commits[1].Projected || commits[2].Projected || commits[2].ProjectErr == nil {
		t.Errorf("projected: %v %v %v (%v)", commits[0].Projected, commits[1].Projected, commits[2].Projected, commits[2].ProjectErr)
	}

	// The projector: a read model without a position is rebuilt, to the
	// last accepted record (3: the rejected debit is 2).
	prm := &positioned{ReadModel: memory.New(map[string]uneventful.Store{"wallet": store})}
	p := &writer.Projector{Domain: "wallet", Store: store, ReadModel: prm, Observer: obs, Logger: slog.New(slog.DiscardHandler)}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	if len(obs.projecting) != 2 || obs.projecting[0] != 0 || !obs.lost[0] || obs.projecting[1] != 3 || obs.lost[1] {
		t.Errorf("projecting %v lost %v, want [0 3] [true false]", obs.projecting, obs.lost)
	}
	if len(obs.projected) != 2 || obs.projected[0] != 3 || !obs.done[0] || obs.projected[1] != 3 || !obs.done[1] {
		t.Errorf("projected %v done %v, want [3 3] [true true]", obs.projected, obs.done)
	}
	obs.mu.Unlock()

	// The relay reports the position it published up to.
	pub := &publisher{}
	r := (&writer.Relay{Store: store, Publisher: pub, Observer: obs, Logger: slog.New(slog.DiscardHandler)}).Init()
	rctx, rstop := context.WithCancel(ctx)
	rdone := make(chan struct{})
	go func() { defer close(rdone); r.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		obs.mu.Lock()
		n := len(obs.relayed)
		last := int64(-1)
		if n > 0 {
			last = obs.relayed[n-1]
		}
		obs.mu.Unlock()
		if last == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayed %v, want a report of 3", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rstop()
	<-rdone
}

type publisher struct{}

func (*publisher) Publish(context.Context, []uneventful.Event) error { return nil }
