package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uenats "github.com/uneventful/uneventful/nats"
)

// connect returns a connection to the NATS server of UNEVENTFUL_NATS_URL.
func connect(t *testing.T) *natsgo.Conn {
	t.Helper()
	url := os.Getenv("UNEVENTFUL_NATS_URL")
	if url == "" {
		t.Skip("UNEVENTFUL_NATS_URL is not set; set it to a NATS server with JetStream, e.g. nats://127.0.0.1:4222")
	}
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// embedded starts an embedded server for tests that need no outside one.
func embedded(t *testing.T) *natsgo.Conn {
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
	return nc
}

type handlerFunc func(e *uneventful.Event, respond func(*uneventful.Reply))

func (f handlerFunc) Handle(e *uneventful.Event, respond func(*uneventful.Reply)) { f(e, respond) }

// testDomain is unique per test so that tests sharing a server don't collide.
func testDomain() string { return "t" + uneventful.NewID()[:10] }

func command(domain string) *uneventful.Event {
	id := uneventful.NewID()
	return &uneventful.Event{EventID: uneventful.NewID(), Domain: domain, EntityID: id, Command: "add",
		TypeName: domain + "." + id + ".add", Data: json.RawMessage(`{"n":1}`), IdempotencyKey: "k"}
}

func TestBus(t *testing.T) {
	for name, nc := range map[string]func(*testing.T) *natsgo.Conn{"external": connect, "embedded": embedded} {
		t.Run(name, func(t *testing.T) {
			nc := nc(t)
			domain := testDomain()
			bus := uenats.NewBus(nc)

			// No writer: 503-class, nothing applied.
			_, err := bus.Send(t.Context(), command(domain))
			if !errors.Is(err, uneventful.ErrUnavailable) {
				t.Fatalf("Send without a writer: %v, want ErrUnavailable", err)
			}

			var mu sync.Mutex
			var got []*uneventful.Event
			sub, err := uenats.Serve(nc, domain, handlerFunc(func(e *uneventful.Event, respond func(*uneventful.Reply)) {
				mu.Lock()
				got = append(got, e)
				mu.Unlock()
				if e.Command == "slow" {
					return // never answers
				}
				go respond(&uneventful.Reply{EventID: e.EventID, Outcome: uneventful.Accepted, Version: 7, View: json.RawMessage(`{"balance":0.3}`)})
			}), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()

			e := command(domain)
			r, err := bus.Send(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			if r.EventID != e.EventID || r.Version != 7 || string(r.View) != `{"balance":0.3}` {
				t.Fatalf("reply %+v", r)
			}
			mu.Lock()
			if len(got) != 1 || got[0].IdempotencyKey != "k" || string(got[0].Data) != `{"n":1}` {
				t.Fatalf("writer got %+v", got)
			}
			mu.Unlock()

			// A writer that does not answer in time: a timeout, not a failure.
			slow := command(domain)
			slow.Command, slow.TypeName = "slow", domain+"."+slow.EntityID+".slow"
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if _, err := bus.Send(ctx, slow); !errors.Is(err, uneventful.ErrTimeout) {
				t.Fatalf("Send to a silent writer: %v, want ErrTimeout", err)
			}

			// An envelope on the wrong subject is refused, not handled.
			bad := command(domain)
			data, _ := json.Marshal(bad)
			msg, err := nc.Request(uenats.CommandSubject(domain, uneventful.NewID(), "add"), data, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := uneventful.UnmarshalReply(msg.Data)
			if err != nil || rep.Error == nil || rep.Error.Code != "subject_mismatch" {
				t.Fatalf("mismatched subject answered %s", msg.Data)
			}
		})
	}
}

// TestStreamExactlyOnce: events published twice (a relay that crashed
// before saving its checkpoint) reach a durable consumer once within the
// duplicate window, and a consumer that stops and starts again resumes
// where it left off.
func TestStreamExactlyOnce(t *testing.T) {
	nc := embedded(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uenats.EnsureStream(t.Context(), js, uenats.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := &uenats.Publisher{JS: js}
	domain := testDomain()
	var events []uneventful.Event
	for i := 0; i < 50; i++ {
		events = append(events, *command(domain))
	}
	if err := pub.Publish(t.Context(), events[:30]); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(t.Context(), events[:40]); err != nil { // 30 repeated
		t.Fatal(err)
	}

	seen := map[string]int{}
	var mu sync.Mutex
	consume := func(want int) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			uenats.Consume(ctx, js, "test-"+domain, nil, func(_ context.Context, evs []uneventful.Event) error {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range evs {
					seen[e.EventID]++
				}
				if len(seen) >= want {
					cancel()
				}
				return nil
			})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cancel()
			<-done
			t.Fatalf("consumer saw %d events, want %d", len(seen), want)
		}
	}
	consume(40)
	if err := pub.Publish(t.Context(), events[40:]); err != nil {
		t.Fatal(err)
	}
	consume(50)
	for _, e := range events {
		if seen[e.EventID] != 1 {
			t.Fatalf("event %s seen %d times, want once", e.EventID, seen[e.EventID])
		}
	}
}
