package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/process"
)

// env is an embedded NATS server with the event stream, and a fake writer
// of the domain "acct" on its bus.
type env struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	writer *fakeWriter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns, err := uenats.StartEmbedded(uenats.EmbeddedConfig{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uenats.EnsureStream(context.Background(), js, uenats.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{seen: map[string]int{}, replies: map[string]*uneventful.Reply{}}
	if _, err := uenats.Serve(nc, "acct", w, logger(t)); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, writer: w}
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// fakeWriter is a writer of the domain "acct" that applies each
// idempotency key once and answers a retry with the first reply, as a
// real writer does, and can be told to misbehave.
type fakeWriter struct {
	mu       sync.Mutex
	received []uneventful.Event           // every command that arrived
	seen     map[string]int               // attempts per key
	replies  map[string]*uneventful.Reply // by key: applied once
	applied  []uneventful.Event
	// answer says what to do with the nth attempt of a key: "reply",
	// "drop" (never answer), "unavailable" or "invalid". Nil: reply.
	answer func(e *uneventful.Event, n int) string
}

func (w *fakeWriter) Handle(e *uneventful.Event, respond func(*uneventful.Reply)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.received = append(w.received, *e)
	w.seen[e.IdempotencyKey]++
	action := "reply"
	if w.answer != nil {
		action = w.answer(e, w.seen[e.IdempotencyKey])
	}
	switch action {
	case "drop":
	case "unavailable":
		respond(&uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrUnavailable, "overloaded", "try again"))})
	case "invalid":
		respond(&uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrInvalid, "bad", "bad command"))})
	default:
		r, ok := w.replies[e.IdempotencyKey]
		if !ok {
			r = &uneventful.Reply{EventID: e.EventID, Outcome: uneventful.Accepted, Version: int64(len(w.applied) + 1)}
			w.replies[e.IdempotencyKey] = r
			w.applied = append(w.applied, *e)
		}
		respond(r)
	}
}

func (w *fakeWriter) set(answer func(e *uneventful.Event, n int) string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answer = answer
}

// snapshot returns copies of what arrived and what was applied.
func (w *fakeWriter) snapshot() (received, applied []uneventful.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uneventful.Event(nil), w.received...), append([]uneventful.Event(nil), w.applied...)
}

const other = "2fVrxkEK0bTbUgFvl1OYfF8sTsm"

// react is the process under test: a "pay" event is followed by "take"
// from its entity and "give" to another one.
func react(e *uneventful.Event) ([]process.Command, error) {
	if e.Domain != "acct" || e.Command != "pay" {
		return nil, nil
	}
	if string(e.Data) == `"bad"` {
		return nil, errors.New("cannot read the event")
	}
	return []process.Command{
		{Step: "take", Domain: "acct", EntityID: e.EntityID, Command: "take", Data: e.Data, CorrelationID: "tx-" + e.EventID},
		{Step: "give", Domain: "acct", EntityID: other, Command: "give", Data: e.Data},
	}, nil
}

// publish records n "pay" events in the stream and returns them.
func (v *env) publish(n int, data string) []uneventful.Event {
	v.t.Helper()
	events := make([]uneventful.Event, n)
	for i := range events {
		id, entity := uneventful.NewID(), uneventful.NewID()
		events[i] = uneventful.Event{EventID: id, CorrelationID: "user-" + id, CausationID: id, Timestamp: time.Now().UTC(),
			TypeName: "acct." + entity + ".pay", Domain: "acct", EntityID: entity, Command: "pay",
			Data: json.RawMessage(data), IdempotencyKey: id, Version: 1, Outcome: uneventful.Accepted}
	}
	if err := (&uenats.Publisher{JS: v.js}).Publish(context.Background(), events); err != nil {
		v.t.Fatal(err)
	}
	return events
}

// run starts a manager named name and returns the function that stops it
// and waits for it.
func (v *env) run(name string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &process.Manager{Name: name, JS: v.js, Bus: uenats.NewBus(v.nc), React: react, Subject: "recorded.acct.>",
		AckWait: time.Second, SendTimeout: 100 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: logger(v.t)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					v.t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				v.t.Errorf("the manager did not stop within 10s")
			}
		})
	}
	v.t.Cleanup(stop)
	return stop
}

// waitAcked waits until the durable consumer name has acknowledged every
// event of the stream (they all match its filter).
func (v *env) waitAcked(name string) {
	v.t.Helper()
	ctx := context.Background()
	stream, err := v.js.Stream(ctx, uenats.StreamName)
	if err != nil {
		v.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := stream.Info(ctx)
		if err != nil {
			v.t.Fatal(err)
		}
		var info *jetstream.ConsumerInfo
		c, err := v.js.Consumer(ctx, uenats.StreamName, name)
		if err == nil {
			info, err = c.Info(ctx)
		}
		if err == nil && info.AckFloor.Stream >= s.State.LastSeq && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("consumer %s has not acknowledged the stream's %d events: %+v, %v", name, s.State.LastSeq, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// checkApplied checks that each step of each event was applied exactly
// once, under its derived key, with the envelope the process promises, and
// that every attempt of a key carried the same command.
func checkApplied(t *testing.T, name string, events []uneventful.Event, received, applied []uneventful.Event) {
	t.Helper()
	byKey := map[string]uneventful.Event{}
	for _, e := range applied {
		if _, dup := byKey[e.IdempotencyKey]; dup {
			t.Fatalf("key %s applied twice", e.IdempotencyKey)
		}
		byKey[e.IdempotencyKey] = e
	}
	for _, cause := range events {
		for _, step := range []struct{ name, entity, correlation string }{
			{"take", cause.EntityID, "tx-" + cause.EventID},
			{"give", other, cause.CorrelationID},
		} {
			key := process.Key(name, cause.EventID, step.name)
			e, ok := byKey[key]
			if !ok {
				t.Fatalf("step %s of %s was not applied (no command with key %s)", step.name, cause.EventID, key)
			}
			if e.CausationID != cause.EventID || e.CorrelationID != step.correlation || e.EntityID != step.entity ||
				e.Command != step.name || string(e.Data) != string(cause.Data) || e.SourceName != "process."+name {
				t.Errorf("step %s of %s: command %+v", step.name, cause.EventID, e)
			}
			delete(byKey, key)
		}
	}
	if len(byKey) > 0 {
		t.Errorf("%d commands applied that no step asked for, e.g. %v", len(byKey), byKey)
	}
	first := map[string]uneventful.Event{}
	for _, e := range received {
		f, ok := first[e.IdempotencyKey]
		if !ok {
			first[e.IdempotencyKey] = e
			continue
		}
		if f.TypeName != e.TypeName || string(f.Data) != string(e.Data) || f.CausationID != e.CausationID || f.CorrelationID != e.CorrelationID {
			t.Errorf("key %s was sent with two commands: %+v and %+v", e.IdempotencyKey, f, e)
		}
	}
}

// A manager that stops (or dies) before its commands are answered leaves
// its events unacknowledged; they are redelivered to the next manager of
// the same name, which sends the same commands with the same keys, so
// that each is applied once. An event that is in the stream twice (a
// relay that published it again) is handled twice and applied once too.
func TestRedeliveryDoesNotDuplicateCommands(t *testing.T) {
	v := newEnv(t)
	v.writer.set(func(*uneventful.Event, int) string { return "drop" }) // the writer is stuck
	events := v.publish(20, `{"n":1}`)
	stop := v.run("pay")
	waitUntil(t, "every event's first command arrived", func() bool {
		received, _ := v.writer.snapshot()
		keys := map[string]bool{}
		for _, e := range received {
			keys[e.IdempotencyKey] = true
		}
		return len(keys) == len(events)
	})
	stop() // as a crash would, but quicker: the events go back unacknowledged

	v.writer.set(nil) // the writer recovers
	// The relay published one event again, past the stream's duplicate
	// window: another message with the same event.
	data, _ := json.Marshal(&events[0])
	if _, err := v.js.Publish(context.Background(), uenats.RecordedSubject(&events[0]), data, jetstream.WithMsgID("again")); err != nil {
		t.Fatal(err)
	}
	v.run("pay")
	v.waitAcked("pay")
	received, applied := v.writer.snapshot()
	checkApplied(t, "pay", events, received, applied)
	if len(received) <= len(applied) {
		t.Fatalf("%d commands arrived and %d were applied: nothing was sent twice, so the test proved nothing", len(received), len(applied))
	}
	t.Logf("%d events: %d commands sent, %d applied", len(events), len(received), len(applied))

	// A restart finds nothing left to do.
	v.run("pay")
	time.Sleep(300 * time.Millisecond)
	if again, _ := v.writer.snapshot(); len(again) != len(received) {
		t.Errorf("a manager restarted after every event was acknowledged sent %d commands", len(again)-len(received))
	}
}

// A command that finds no writer ready, or gets no answer, is sent again
// with the same key until it is answered; only then does the next step
// go, and the event is acknowledged.
func TestRetriesUntilAnswered(t *testing.T) {
	v := newEnv(t)
	v.writer.set(func(_ *uneventful.Event, n int) string {
		return map[int]string{1: "unavailable", 2: "drop"}[n] // then reply
	})
	events := v.publish(5, `{"n":2}`)
	v.run("retry")
	v.waitAcked("retry")
	received, applied := v.writer.snapshot()
	checkApplied(t, "retry", events, received, applied)
	if want := 3 * len(applied); len(received) != want {
		t.Errorf("%d attempts arrived, want 3 for each of %d commands", len(received), len(applied))
	}
}

// Several managers of the same name share the events: each command is
// applied once.
func TestManagersShareTheWork(t *testing.T) {
	v := newEnv(t)
	for i := 0; i < 3; i++ {
		v.run("shared")
	}
	events := v.publish(60, `{"n":3}`)
	v.waitAcked("shared")
	received, applied := v.writer.snapshot()
	checkApplied(t, "shared", events, received, applied)
}

// An event that React cannot handle, and a command that fails for good
// (here: invalid), are not retried: the manager goes on with the next
// command and the next events.
func TestGivesUpOnWhatNoRetryChanges(t *testing.T) {
	v := newEnv(t)
	v.writer.set(func(e *uneventful.Event, _ int) string {
		if string(e.Data) == `{"n":4}` {
			return "invalid"
		}
		return "reply"
	})
	v.publish(1, `"bad"`)
	failing := v.publish(1, `{"n":4}`)
	events := v.publish(3, `{"n":5}`)
	v.run("gives-up")
	v.waitAcked("gives-up")
	received, applied := v.writer.snapshot()
	var rest []uneventful.Event
	sent := map[string]int{}
	for _, e := range received {
		if e.CausationID == failing[0].EventID {
			sent[e.Command]++
			continue
		}
		rest = append(rest, e)
	}
	if sent["take"] != 1 || sent["give"] != 1 {
		t.Errorf("the commands that failed for good were sent %v times, want once each", sent)
	}
	checkApplied(t, "gives-up", events, rest, applied)
}

func TestRunChecksTheManager(t *testing.T) {
	for _, m := range []*process.Manager{
		{Name: "", Bus: uenats.NewBus(nil), React: react},
		{Name: "a.b", Bus: uenats.NewBus(nil), React: react},
		{Name: "ok", React: react},
	} {
		if err := m.Run(context.Background()); err == nil {
			t.Errorf("Run of %+v succeeded", m)
		}
	}
	if got, want := process.Key("transfers", "3MgJ0yH1YCvqIqtIeIeL5ZtV7ZW", "receive"), "process.transfers.3MgJ0yH1YCvqIqtIeIeL5ZtV7ZW.receive"; got != want {
		t.Errorf("Key = %s, want %s", got, want)
	}
}
