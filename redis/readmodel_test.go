package redis_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/redis"
)

// redisURL returns UNEVENTFUL_REDIS_URL or skips the test.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("UNEVENTFUL_REDIS_URL")
	if u == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set (e.g. redis://127.0.0.1:6379); skipping the Redis read model tests")
	}
	return u
}

// env is one test's corner of Redis: a unique key prefix, and a plain
// client to look at and delete its keys.
type env struct {
	url    string
	prefix string
	raw    rueidis.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{url: redisURL(t), prefix: "uneventful-test:" + uneventful.NewID() + ":"}
	opt, err := rueidis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache, opt.ForceSingleClient = true, true
	if e.raw, err = rueidis.NewClient(opt); err != nil {
		t.Fatalf("connect to %s: %v", e.url, err)
	}
	t.Cleanup(func() {
		e.flush(t)
		e.raw.Close()
	})
	return e
}

// open opens a ReadModel on the test's prefix.
func (e *env) open(t testing.TB, opts ...redis.Option) *redis.ReadModel {
	t.Helper()
	m, err := redis.Open(context.Background(), e.url, append([]redis.Option{redis.WithPrefix(e.prefix), testLogger(t)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testLogger sends the ReadModel's warnings to the test's output.
func testLogger(t testing.TB) redis.Option {
	return redis.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))
}

// keys returns the test's keys.
func (e *env) keys(t testing.TB) []string {
	t.Helper()
	var keys []string
	ctx := context.Background()
	for cursor := uint64(0); ; {
		r, err := e.raw.Do(ctx, e.raw.B().Scan().Cursor(cursor).Match(e.prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.Elements...)
		if cursor = r.Cursor; cursor == 0 {
			return keys
		}
	}
}

// flush deletes the test's keys: what FLUSHALL does to a read model.
func (e *env) flush(t testing.TB) {
	t.Helper()
	if keys := e.keys(t); len(keys) > 0 {
		if err := e.raw.Do(context.Background(), e.raw.B().Del().Key(keys...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) get(t testing.TB, key string) string {
	t.Helper()
	s, err := e.raw.Do(context.Background(), e.raw.B().Get().Key(e.prefix+key).Build()).ToString()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return s
}

// mode is how a reader under test is opened: without client-side caching,
// where a read right after an acknowledged write sees it, or with caching,
// where reads converge within the invalidation's delay.
type mode struct {
	opts []redis.Option
	lag  time.Duration // how long reads may lag behind acknowledged writes
}

// cacheModes runs f with client-side caching off and on.
func cacheModes(t *testing.T, f func(t *testing.T, md mode)) {
	redisURL(t)
	t.Run("nocache", func(t *testing.T) { f(t, mode{}) })
	t.Run("cache", func(t *testing.T) { f(t, mode{opts: []redis.Option{redis.WithCache(time.Minute)}, lag: time.Second}) })
}

// eventually checks that f succeeds within the mode's lag: at once without
// caching.
func (md mode) eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(md.lag)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// hasCode returns nil if err is of kind with code, else an error saying
// what it is.
func hasCode(err error, kind error, code string) error {
	if !errors.Is(err, kind) || uneventful.ErrorCode(err) != code {
		return fmt.Errorf("got error %v (code %q), want kind %v with code %q", err, uneventful.ErrorCode(err), kind, code)
	}
	return nil
}

// stateIs returns nil if the read model holds the state want.
func stateIs(m *redis.ReadModel, want uneventful.State) error {
	got, err := m.State(context.Background(), want.Domain, want.EntityID)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("State(%s) = %+v, want %+v", want.EntityID, got, want)
	}
	return nil
}

// version returns nil if the read model holds version v of the wallet.
func version(m *redis.ReadModel, id string, v int64) error {
	got, err := m.State(context.Background(), "wallet", id)
	if err == nil && got.Version != v {
		err = fmt.Errorf("State(%s) has version %d, want %d", id, got.Version, v)
	}
	return err
}

// record returns an accepted record of a wallet at version v.
func record(id string, v int64) uneventful.Record {
	ts := time.Date(2025, 1, 2, 3, 4, 5, int(v)*1000+7, time.UTC)
	ev := uneventful.Event{
		EventID:        uneventful.NewID(),
		CorrelationID:  uneventful.NewID(),
		CausationID:    uneventful.NewID(),
		Timestamp:      ts,
		SourceName:     "test",
		SourceID:       "t1",
		TypeName:       "wallet." + id + ".credit",
		Domain:         "wallet",
		EntityID:       id,
		Command:        "credit",
		Data:           json.RawMessage(fmt.Sprintf(`{"amount":%d,"scale":2}`, v)),
		IdempotencyKey: uneventful.NewID(),
		RequestHash:    "hash",
		Version:        v,
		Sequence:       v * 10,
		Outcome:        uneventful.Accepted,
		Reply:          json.RawMessage(`{"success":true}`),
	}
	st := &uneventful.State{
		Domain: "wallet", EntityID: id, Version: v, Timestamp: ts, EventID: ev.EventID,
		Data: json.RawMessage(fmt.Sprintf(`{"balance":%d,"scale":2}`, v*(v+1)/2)),
	}
	return uneventful.Record{Event: ev, State: st}
}

// history returns records of versions 1..n.
func history(id string, n int) []uneventful.Record {
	rs := make([]uneventful.Record, n)
	for i := range rs {
		rs[i] = record(id, int64(i+1))
	}
	return rs
}

// stored returns the event as Events gives it back.
func stored(e uneventful.Event) uneventful.Event {
	e.Reply, e.RequestHash = nil, ""
	return e
}

func wantCode(t *testing.T, err error, kind error, code string) {
	t.Helper()
	if err := hasCode(err, kind, code); err != nil {
		t.Fatal(err)
	}
}

func mustProject(t testing.TB, m *redis.ReadModel, rs ...uneventful.Record) {
	t.Helper()
	if err := m.Project(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func mustReady(t testing.TB, m *redis.ReadModel, pos int64) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := m.Position(ctx, "wallet"); err != nil {
		t.Fatal(err)
	}
	if err := m.MarkReady(ctx, "wallet", pos); err != nil {
		t.Fatal(err)
	}
}

func mustState(t testing.TB, m *redis.ReadModel, id string) uneventful.State {
	t.Helper()
	s, err := m.State(context.Background(), "wallet", id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProjectAndReadBack(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		m := e.open(t, md.opts...)
		ctx := context.Background()
		a, b := uneventful.NewID(), uneventful.NewID()
		ha, hb := history(a, 7), history(b, 2)
		rejected := record(a, 7)
		rejected.State = nil
		rejected.Event.Outcome = uneventful.Rejected
		// One call, both wallets, a rejected attempt in between.
		mustProject(t, m, append(append(append([]uneventful.Record{}, ha[:4]...), rejected), append(hb, ha[4:]...)...)...)
		mustReady(t, m, 70)

		for _, h := range [][]uneventful.Record{ha, hb} {
			md.eventually(t, func() error { return stateIs(m, *h[len(h)-1].State) })
		}
		// Pages of 3 events: 1-3, 4-6, 7, then none.
		for _, p := range []struct {
			after int64
			want  []uneventful.Record
		}{{0, ha[0:3]}, {3, ha[3:6]}, {6, ha[6:7]}, {7, nil}, {-5, ha[0:3]}} {
			got, err := m.Events(ctx, "wallet", a, p.after, 3)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]uneventful.Event, len(p.want))
			for i := range p.want {
				want[i] = stored(p.want[i].Event)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Events(after %d, limit 3) = %+v, want %+v", p.after, got, want)
			}
		}
		// A limit of 0 means 100.
		if got, err := m.Events(ctx, "wallet", b, 0, 0); err != nil || len(got) != 2 {
			t.Errorf("Events(limit 0) = %d events, %v; want 2", len(got), err)
		}
		// Unknown entity: not found, and an empty page.
		_, err := m.State(ctx, "wallet", uneventful.NewID())
		wantCode(t, err, uneventful.ErrNotFound, "not_found")
		if got, err := m.Events(ctx, "wallet", uneventful.NewID(), 0, 10); err != nil || len(got) != 0 {
			t.Errorf("Events of an unknown wallet = %v, %v; want an empty page", got, err)
		}
	})
}

func TestStoredLayout(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	id := uneventful.NewID()
	r := record(id, 1)
	mustProject(t, m, r)
	want := `{"version":1,"timestamp":"2025-01-02T03:04:05.000001007Z","name":"wallet","entity_id":"` + id +
		`","event_id":"` + r.Event.EventID + `","data":{"balance":1,"scale":2}}`
	if got := e.get(t, "wallet."+id); got != want {
		t.Errorf("GET wallet.<id> = %s\nwant %s", got, want)
	}
	members, err := e.raw.Do(context.Background(), e.raw.B().Zrange().Key(e.prefix+"wallet."+id+":events").Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil || len(members) != 1 {
		t.Fatalf("ZRANGE wallet.<id>:events = %q, %v; want one event", members, err)
	}
	if strings.Contains(members[0], "reply") || strings.Contains(members[0], "request_hash") || !strings.Contains(members[0], `"event_id":"`+r.Event.EventID+`"`) {
		t.Errorf("event member = %s; want the event without reply and request hash", members[0])
	}
}

func TestExactData(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		m := e.open(t, md.opts...)
		ctx := context.Background()
		id := uneventful.NewID()
		data := `{"balance":"123456789012345678901234567890.000000000000000001","n":123456789012345678901234567890123,` +
			`"d":0.30000000000000000001,"e":1E+400,"neg":-0.0,"s":"<a&b> \u00e9 é \"q\""}`
		r := record(id, 1)
		r.State.Data = json.RawMessage(data)
		r.Event.Data = json.RawMessage(data)
		mustProject(t, m, r)
		mustReady(t, m, 10)
		md.eventually(t, func() error { return stateIs(m, *r.State) })
		if got := mustState(t, m, id); string(got.Data) != data {
			t.Errorf("state data = %s\nwant      %s", got.Data, data)
		}
		evs, err := m.Events(ctx, "wallet", id, 0, 10)
		if err != nil || len(evs) != 1 {
			t.Fatalf("Events = %v, %v", evs, err)
		}
		if string(evs[0].Data) != data {
			t.Errorf("event data = %s\nwant      %s", evs[0].Data, data)
		}
		if got := e.get(t, "wallet."+id); !strings.Contains(got, `"data":`+data+`}`) {
			t.Errorf("stored state %s does not hold the data byte for byte", got)
		}
	})
}

func TestProjectIsMonotonic(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		m := e.open(t, md.opts...)
		ctx := context.Background()
		mustReady(t, m, 0)
		id := uneventful.NewID()
		h := history(id, 3)
		mustProject(t, m, h[2])
		md.eventually(t, func() error { return stateIs(m, *h[2].State) })
		mustProject(t, m, h[1]) // late
		if err := stateIs(m, *h[2].State); err != nil {
			t.Errorf("after a late v2: %v", err)
		}
		// The late event still fills its place in the history.
		md.eventually(t, func() error {
			evs, err := m.Events(ctx, "wallet", id, 0, 10)
			if err == nil && (len(evs) != 2 || evs[0].Version != 2 || evs[1].Version != 3) {
				err = fmt.Errorf("Events = %v; want versions 2 and 3", evs)
			}
			return err
		})
	})
}

// TestConcurrentProjects projects versions 1..n of a wallet from 8
// goroutines at once, each its own versions in random order, while readers
// check that the version they see never goes back.
func TestConcurrentProjects(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		ctx := context.Background()
		const n, writers = 400, 8
		id := uneventful.NewID()
		h := history(id, n)
		reader := e.open(t, md.opts...)
		mustReady(t, reader, 0)
		mustProject(t, e.open(t), h[0])

		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 2 {
			readers.Go(func() {
				var last int64
				for {
					select {
					case <-stop:
						return
					default:
					}
					s, err := reader.State(ctx, "wallet", id)
					if err != nil {
						t.Error(err)
						return
					}
					if s.Version < last {
						t.Errorf("read version %d after %d", s.Version, last)
						return
					}
					last = s.Version
				}
			})
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				m := e.open(t)
				var mine []uneventful.Record
				for i := w; i < n; i += writers {
					mine = append(mine, h[i])
				}
				rand.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
				for len(mine) > 0 {
					k := min(len(mine), 1+rand.IntN(3))
					if err := m.Project(ctx, mine[:k]); err != nil {
						t.Error(err)
						return
					}
					mine = mine[k:]
				}
			})
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		md.eventually(t, func() error { return stateIs(reader, *h[n-1].State) })
		var evs []uneventful.Event
		md.eventually(t, func() (err error) {
			evs, err = reader.Events(ctx, "wallet", id, 0, 2*n)
			if err == nil && len(evs) != n {
				err = fmt.Errorf("%d events, want %d", len(evs), n)
			}
			return err
		})
		for i, ev := range evs {
			if !reflect.DeepEqual(ev, stored(h[i].Event)) {
				t.Fatalf("event %d = %v, want %v", i, ev, h[i].Event)
			}
		}
	})
}

func TestProjectIsIdempotent(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := context.Background()
	mustReady(t, m, 0)
	id := uneventful.NewID()
	h := history(id, 5)
	mustProject(t, m, h...)
	mustProject(t, m, h...)
	// The same events encoded differently (as the catch-up projector may
	// read them from the store) are no duplicates either.
	again := history(id, 5)
	for i := range again {
		again[i].Event.EventID = h[i].Event.EventID
		again[i].Event.Sequence = 0
		again[i].Event.Timestamp = h[i].Event.Timestamp.In(time.FixedZone("x", 3600))
	}
	mustProject(t, m, again...)
	evs, err := m.Events(ctx, "wallet", id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("%d events after projecting 5 three times, want 5", len(evs))
	}
	for i := range evs {
		if !reflect.DeepEqual(evs[i], stored(h[i].Event)) {
			t.Errorf("event %d = %v, want the first projected %v", i, evs[i], h[i].Event)
		}
	}
	if got := mustState(t, m, id); !reflect.DeepEqual(got, *h[4].State) {
		t.Errorf("State = %+v, want %+v", got, *h[4].State)
	}
	n, err := e.raw.Do(ctx, e.raw.B().Zcard().Key(e.prefix+"wallet."+id+":events").Build()).AsInt64()
	if err != nil || n != 5 {
		t.Errorf("ZCARD = %d, %v; want 5", n, err)
	}
}

func TestProjectRejectsInconsistentRecord(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	r := record(uneventful.NewID(), 2)
	r.Event.Version = 3
	if err := m.Project(context.Background(), []uneventful.Record{r}); err == nil {
		t.Error("Project of an event v3 with a state v2 succeeded")
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Errorf("Project wrote %v", keys)
	}
}

func TestReadsWithoutMarkerAnswerRebuilding(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		m := e.open(t, md.opts...)
		ctx := context.Background()
		id := uneventful.NewID()
		mustProject(t, m, history(id, 2)...)
		for _, id := range []string{id, uneventful.NewID()} {
			_, err := m.State(ctx, "wallet", id)
			wantCode(t, err, uneventful.ErrUnavailable, "read_model_rebuilding")
			_, err = m.Events(ctx, "wallet", id, 0, 10)
			wantCode(t, err, uneventful.ErrUnavailable, "read_model_rebuilding")
		}
		mustReady(t, m, 20)
		md.eventually(t, func() error { return version(m, id, 2) })
	})
}

// TestFlushedReadModel deletes every key, as FLUSHALL or a restart without
// persistence would: reads must answer 503, not 404, until the projector
// has rebuilt the read model, and a projector that was half way must not
// mark it ready.
func TestFlushedReadModel(t *testing.T) {
	cacheModes(t, func(t *testing.T, md mode) {
		e := newEnv(t)
		reader := e.open(t, md.opts...)
		projector, other := e.open(t), e.open(t)
		ctx := context.Background()
		id := uneventful.NewID()
		h := history(id, 3)

		pos, ok, err := projector.Position(ctx, "wallet")
		if err != nil || pos != 0 || ok {
			t.Fatalf("Position of a new read model = %d, %v, %v; want 0, false", pos, ok, err)
		}
		mustProject(t, projector, h...)
		if err := projector.MarkReady(ctx, "wallet", 30); err != nil {
			t.Fatal(err)
		}
		md.eventually(t, func() error { return version(reader, id, 3) })
		if evs, err := reader.Events(ctx, "wallet", id, 0, 10); err != nil || len(evs) != 3 {
			t.Fatalf("Events = %d events, %v; want 3", len(evs), err)
		}

		e.flush(t)
		md.eventually(t, func() error {
			_, err := reader.State(ctx, "wallet", id)
			return hasCode(err, uneventful.ErrUnavailable, "read_model_rebuilding")
		})
		md.eventually(t, func() error {
			_, err := reader.Events(ctx, "wallet", id, 0, 10)
			return hasCode(err, uneventful.ErrUnavailable, "read_model_rebuilding")
		})
		// The writer keeps projecting; that alone does not make reads
		// answer.
		mustProject(t, reader, record(id, 4))
		_, err = reader.State(ctx, "wallet", uneventful.NewID())
		wantCode(t, err, uneventful.ErrUnavailable, "read_model_rebuilding")

		// The projector, not knowing, marks its next position: refused.
		err = projector.MarkReady(ctx, "wallet", 40)
		wantCode(t, err, uneventful.ErrConflict, "read_model_flushed")
		// It asks where to start: from 0.
		if pos, ok, err := projector.Position(ctx, "wallet"); err != nil || pos != 0 || ok {
			t.Fatalf("Position after a flush = %d, %v, %v; want 0, false", pos, ok, err)
		}
		mustProject(t, projector, h...)
		// Another projector that read its position before the flush is
		// refused too, although a rebuild is in progress.
		err = other.MarkReady(ctx, "wallet", 40)
		wantCode(t, err, uneventful.ErrConflict, "read_model_flushed")
		// A flush in the middle of the rebuild voids it.
		e.flush(t)
		err = projector.MarkReady(ctx, "wallet", 40)
		wantCode(t, err, uneventful.ErrConflict, "read_model_flushed")
		if _, _, err := projector.Position(ctx, "wallet"); err != nil {
			t.Fatal(err)
		}
		mustProject(t, projector, append(h, record(id, 4))...)
		if err := projector.MarkReady(ctx, "wallet", 40); err != nil {
			t.Fatal(err)
		}
		md.eventually(t, func() error { return version(reader, id, 4) })
		md.eventually(t, func() error {
			evs, err := reader.Events(ctx, "wallet", id, 0, 10)
			if err == nil && len(evs) != 4 {
				err = fmt.Errorf("Events after the rebuild = %d events; want 4", len(evs))
			}
			return err
		})
		_, err = reader.State(ctx, "wallet", uneventful.NewID())
		wantCode(t, err, uneventful.ErrNotFound, "not_found")
	})
}

func TestPositionNeverMovesBack(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := context.Background()
	mustReady(t, m, 0)
	for _, p := range []int64{10, 5, 1 << 40, 99} {
		if err := m.MarkReady(ctx, "wallet", p); err != nil {
			t.Fatal(err)
		}
	}
	if pos, ok, err := m.Position(ctx, "wallet"); err != nil || !ok || pos != 1<<40 {
		t.Errorf("Position = %d, %v, %v; want %d, true", pos, ok, err, int64(1<<40))
	}
	if got := e.get(t, "uneventful:projector:wallet"); got != strconv.FormatInt(1<<40, 10) {
		t.Errorf("marker = %q", got)
	}
	wantCode(t, m.MarkReady(ctx, "wallet", -1), uneventful.ErrInvalid, "invalid_position")
	// Domains are independent.
	if _, ok, err := m.Position(ctx, "other"); err != nil || ok {
		t.Errorf("Position of another domain = %v, %v; want not ready", ok, err)
	}
}

// freePort returns a port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// wantUnavailable checks that every call fails with ErrUnavailable, code
// read_model_unavailable, within limit.
func wantUnavailable(t *testing.T, m *redis.ReadModel, limit time.Duration) {
	t.Helper()
	ctx := context.Background()
	id := uneventful.NewID()
	calls := map[string]func() error{
		"State":     func() error { _, err := m.State(ctx, "wallet", id); return err },
		"Events":    func() error { _, err := m.Events(ctx, "wallet", id, 0, 10); return err },
		"Project":   func() error { return m.Project(ctx, []uneventful.Record{record(id, 1)}) },
		"Position":  func() error { _, _, err := m.Position(ctx, "wallet"); return err },
		"MarkReady": func() error { return m.MarkReady(ctx, "wallet", 1) },
		"Ping":      func() error { return m.Ping(ctx) },
	}
	for _, name := range []string{"State", "Events", "Project", "Position", "MarkReady", "Ping"} {
		call := calls[name]
		start := time.Now()
		err := call()
		if d := time.Since(start); d > limit {
			t.Errorf("%s took %v, want at most %v", name, d, limit)
		}
		wantCode(t, err, uneventful.ErrUnavailable, "read_model_unavailable")
		if msg := uneventful.ErrorMessage(err); msg != "the read model (Redis) is unavailable; retry shortly" {
			t.Errorf("%s: message %q", name, msg)
		}
	}
}

func TestUnreachableRedis(t *testing.T) {
	redisURL(t)
	start := time.Now()
	m, err := redis.Open(context.Background(), fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t)), testLogger(t))
	if err != nil {
		t.Fatalf("Open with Redis down: %v; want a ReadModel that answers 503", err)
	}
	defer m.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open took %v", d)
	}
	wantUnavailable(t, m, 2*time.Second)
	time.Sleep(300 * time.Millisecond) // past the redial interval: dial again
	wantUnavailable(t, m, 2*time.Second)
}

// TestUnresponsiveRedis points the read model at a server that accepts
// connections and never answers: calls must give up within the dial
// timeout or Timeout.
func TestUnresponsiveRedis(t *testing.T) {
	redisURL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	m, err := redis.Open(context.Background(), "redis://"+l.Addr().String(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Open took %v, want about the dial timeout (1s)", d)
	}
	time.Sleep(300 * time.Millisecond)
	wantUnavailable(t, m, 2500*time.Millisecond)
}

func TestOpenRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "http://127.0.0.1:6379", "127.0.0.1:6379", "redis://:secret@127.0.0.1:6379/x", "redis://"} {
		_, err := redis.Open(context.Background(), u)
		if !errors.Is(err, uneventful.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error %q shows the password", u, err)
		}
	}
	if _, err := redis.Open(context.Background(), "redis://127.0.0.1:1", redis.WithTimeout(0)); !errors.Is(err, uneventful.ErrInvalid) {
		t.Errorf("Open with Timeout 0 = %v, want ErrInvalid", err)
	}
	// TLS settings with a plain URL would be silently ignored.
	_, err := redis.Open(context.Background(), "redis://:secret@127.0.0.1:1", redis.WithTLS(&tls.Config{}))
	if !errors.Is(err, uneventful.ErrInvalid) || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open(redis://) with TLS settings = %v, want ErrInvalid without the password", err)
	}
}

// TestOpenRefused: a Redis that answers but refuses the connection is a
// misconfiguration, reported by Open, not an outage.
func TestOpenRefused(t *testing.T) {
	u, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"redis://nobody:secret@" + u.Host, "redis://" + u.Host + "/100000"} {
		m, err := redis.Open(context.Background(), bad, testLogger(t))
		if err == nil {
			m.Close()
			t.Errorf("Open(%s) succeeded", bad)
			continue
		}
		if errors.Is(err, uneventful.ErrUnavailable) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%s) = %v; want a configuration error without the password", bad, err)
		}
	}
}

// TestRedisRestart runs a Redis of its own, kills it, and starts it again
// empty: while it is down reads answer read_model_unavailable; once it is
// back, read_model_rebuilding (never not_found) until the rebuild.
func TestRedisRestart(t *testing.T) {
	redisURL(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on the PATH")
	}
	cacheModes(t, func(t *testing.T, md mode) {
		port := freePort(t)
		start := func() *exec.Cmd {
			cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--busy-reply-threshold", "50", "--dir", t.TempDir())
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			for i := 0; ; i++ {
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err == nil {
					c.Close()
					return cmd
				}
				if i == 100 {
					t.Fatalf("redis-server did not start: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		srv := start()
		ctx := context.Background()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		m, err := redis.Open(ctx, "redis://"+addr, append(md.opts, redis.WithTimeout(300*time.Millisecond), testLogger(t))...)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		id := uneventful.NewID()
		mustProject(t, m, history(id, 2)...)
		mustReady(t, m, 20)
		md.eventually(t, func() error { return version(m, id, 2) })

		// Busy running a script: BUSY is an outage, not a failure.
		busy, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(busy, "EVAL \"while true do end\" 0\r\n")
		time.Sleep(200 * time.Millisecond) // past --busy-reply-threshold
		_, err = m.Events(ctx, "wallet", id, 0, 10)
		wantCode(t, err, uneventful.ErrUnavailable, "read_model_unavailable")
		if !strings.Contains(err.Error(), "BUSY") {
			t.Errorf("error %v does not say BUSY", err)
		}
		kill, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(kill, "SCRIPT KILL\r\n")
		kill.Close()
		busy.Close()
		recovered := mode{lag: time.Second}
		recovered.eventually(t, func() error { return version(m, id, 2) })

		// Hung: calls give up after Timeout.
		srv.Process.Signal(syscall.SIGSTOP)
		wantUnavailable(t, m, time.Second)
		srv.Process.Signal(syscall.SIGCONT)
		recovered.eventually(t, func() error { return version(m, id, 2) })

		srv.Process.Kill()
		srv.Wait()
		wantUnavailable(t, m, 2*time.Second)

		start()
		_, err = m.State(ctx, "wallet", id)
		for i := 0; errors.Is(err, uneventful.ErrUnavailable) && uneventful.ErrorCode(err) == "read_model_unavailable" && i < 50; i++ {
			time.Sleep(20 * time.Millisecond) // reconnecting
			_, err = m.State(ctx, "wallet", id)
		}
		wantCode(t, err, uneventful.ErrUnavailable, "read_model_rebuilding")
		if pos, ok, err := m.Position(ctx, "wallet"); err != nil || ok || pos != 0 {
			t.Fatalf("Position after the restart = %d, %v, %v; want 0, false", pos, ok, err)
		}
		mustProject(t, m, history(id, 2)...)
		if err := m.MarkReady(ctx, "wallet", 20); err != nil {
			t.Fatal(err)
		}
		md.eventually(t, func() error { return version(m, id, 2) })
	})
}
