package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
	"github.com/uneventful/uneventful/storetest"
)

// baseURL returns the database the tests use, or skips the test.
func baseURL(t testing.TB) string {
	u := os.Getenv("UNEVENTFUL_POSTGRES_URL")
	if u == "" {
		t.Skip("UNEVENTFUL_POSTGRES_URL is not set; set it to a PostgreSQL database, such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests")
	}
	return u
}

// withParams returns u with run-time parameters added.
func withParams(t testing.TB, u string, params map[string]string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "postgres" && p.Scheme != "postgresql") {
		// A key=value connection string.
		for k, v := range params {
			u += " " + k + "=" + v
		}
		return u
	}
	q := p.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	p.RawQuery = q.Encode()
	return p.String()
}

func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newSchema creates a schema for the test alone and returns the URL whose
// search_path is that schema; the schema is dropped when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	base := baseURL(t)
	name := "uneventful_test_" + randomName()
	admin := connect(t, base)
	if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Cleanups run last in, first out: the stores opened after this
		// are closed by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return withParams(t, base, map[string]string{"search_path": name})
}

// connect opens a connection of the test's own, closed when it ends.
func connect(t testing.TB, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func openStore(t testing.TB, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openHistory(t testing.TB, u string) *postgres.History {
	t.Helper()
	h, err := postgres.OpenHistory(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestStore(t *testing.T) {
	baseURL(t)
	storetest.TestStore(t, func(t *testing.T) uneventful.Store { return openStore(t, newSchema(t)) })
}

func TestHistory(t *testing.T) {
	baseURL(t)
	storetest.TestHistoryStore(t, func(t *testing.T) uneventful.HistoryStore { return openHistory(t, newSchema(t)) })
}

// seq makes records of one entity, accepted credits unless rejected.
type seq struct {
	entityID string
	version  int64
}

func newSeq() *seq { return &seq{entityID: uneventful.NewID()} }

func (q *seq) record(accepted bool) uneventful.Record {
	id := uneventful.NewID()
	e := uneventful.Event{
		EventID: id, CorrelationID: id, CausationID: id, Timestamp: time.Now(),
		SourceName: "test", SourceID: "1", TypeName: "wallet." + q.entityID + ".credit",
		Domain: "wallet", EntityID: q.entityID, Command: "credit", Data: json.RawMessage(`{"amount":"1"}`),
		IdempotencyKey: uneventful.NewID(), Version: q.version, Outcome: uneventful.Rejected,
	}
	if !accepted {
		return uneventful.Record{Event: e}
	}
	q.version++
	e.Version, e.Outcome = q.version, uneventful.Accepted
	return uneventful.Record{Event: e, State: &uneventful.State{
		Domain: "wallet", EntityID: q.entityID, Version: q.version, Timestamp: e.Timestamp, EventID: id,
		Data: json.RawMessage(fmt.Sprintf(`{"balance":"%d"}`, q.version)),
	}}
}

// batch returns n records of q, every third one rejected.
func (q *seq) batch(n int) []uneventful.Record {
	var records []uneventful.Record
	for i := range n {
		records = append(records, q.record(i%3 != 2))
	}
	return records
}

func readAll(t testing.TB, s *postgres.Store) []uneventful.Event {
	t.Helper()
	events, err := s.Events(context.Background(), uneventful.EventQuery{Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// waitFor polls cond until it holds, or fails the test after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	u := newSchema(t)
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	w := newSeq()
	records := []uneventful.Record{w.record(true), w.record(false), w.record(true)}
	if err := s.Append(ctx, records); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, "relay", 3); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = openStore(t, u)
	if d := cmp.Diff(before, readAll(t, s)); d != "" {
		t.Errorf("event log after reopening (-before +after):\n%s", d)
	}
	st, err := s.Load(ctx, "wallet", w.entityID)
	if err != nil || st.Version != 2 || st.EventID != records[2].Event.EventID {
		t.Errorf("Load after reopening = %+v, %v; want version 2 of event %s", st, err, records[2].Event.EventID)
	}
	if pos, err := s.Checkpoint(ctx, "relay"); pos != 3 || err != nil {
		t.Errorf("Checkpoint after reopening = %d, %v; want 3", pos, err)
	}
	// The next version continues the stream, so the guard survived too,
	// and sequences keep increasing.
	next := []uneventful.Record{w.record(true)}
	if err := s.Append(ctx, next); err != nil {
		t.Errorf("Append of version 3 after reopening: %v", err)
	} else if last := before[len(before)-1].Sequence; next[0].Event.Sequence <= last {
		t.Errorf("Append after reopening got sequence %d, want more than %d", next[0].Event.Sequence, last)
	}

	// The history log in the same schema.
	h, err := postgres.OpenHistory(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Record(ctx, before); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h = openHistory(t, u)
	if n, err := h.Record(ctx, before); n != 0 || err != nil {
		t.Errorf("Record of recorded events after reopening = %d, %v; want 0 new", n, err)
	}
	if got, err := h.History(ctx, 0, 100); err != nil || len(got) != len(before) {
		t.Errorf("History after reopening: %d events, %v; want %d", len(got), err, len(before))
	}
}

// TestSynchronousCommitOn: a nil Append means durable even when the URL
// asks for less.
func TestSynchronousCommitOn(t *testing.T) {
	u := withParams(t, newSchema(t), map[string]string{"synchronous_commit": "off"})
	s := openStore(t, u)
	for range 3 { // several connections, not just the first
		var setting string
		if err := s.Pool().QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting != "on" {
			t.Errorf("synchronous_commit = %q on a store's connection, want on", setting)
		}
	}
}

// TestConcurrentOpen: writers starting at once on a new schema migrate it
// once, under the migration lock, and all start.
func TestConcurrentOpen(t *testing.T) {
	u := newSchema(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), u)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			defer s.Close()
			h, err := postgres.OpenHistory(t.Context(), u)
			if err != nil {
				t.Errorf("OpenHistory: %v", err)
				return
			}
			h.Close()
		})
	}
	wg.Wait()
	admin := connect(t, u)
	rows, err := admin.Query(t.Context(), "SELECT kind || '=' || version FROM schema_version ORDER BY kind")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"event store=1", "history store=1"}; !cmp.Equal(got, want) {
		t.Errorf("schema_version = %v, want %v", got, want)
	}
}

func TestOpenMissingSchema(t *testing.T) {
	u := withParams(t, baseURL(t), map[string]string{"search_path": "uneventful_missing_" + randomName()})
	s, err := postgres.Open(t.Context(), u)
	if err == nil {
		s.Close()
		t.Fatal("Open with a search_path of no existing schema succeeded")
	}
	if !errors.Is(err, uneventful.ErrInvalid) || !strings.Contains(err.Error(), "create the schema first") {
		t.Errorf("Open with a missing schema: got error %v, want one wrapping ErrInvalid that says to create the schema", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	// Nothing listens on a port that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = postgres.Open(t.Context(), "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	if !errors.Is(err, uneventful.ErrUnavailable) {
		t.Errorf("Open of an unreachable server: got error %v, want one wrapping ErrUnavailable", err)
	}
}

func TestAppendChecksRecords(t *testing.T) {
	s := openStore(t, newSchema(t))
	for name, mutate := range map[string]func(r *uneventful.Record){
		"accepted without state":   func(r *uneventful.Record) { r.State = nil },
		"rejected with state":      func(r *uneventful.Record) { r.Event.Outcome = uneventful.Rejected },
		"state of another event":   func(r *uneventful.Record) { r.State.EventID = uneventful.NewID() },
		"state of another stream":  func(r *uneventful.Record) { r.State.EntityID = uneventful.NewID() },
		"state of another version": func(r *uneventful.Record) { r.Event.Version = 2 },
	} {
		fine, bad := newSeq(), newSeq()
		r := bad.record(true)
		mutate(&r)
		if err := s.Append(t.Context(), []uneventful.Record{fine.record(true), r}); !errors.Is(err, uneventful.ErrInvalid) {
			t.Errorf("Append of a record with %s: got error %v, want one wrapping ErrInvalid", name, err)
		}
	}
	if got := readAll(t, s); len(got) != 0 {
		t.Errorf("event log has %d events after invalid Appends, want none", len(got))
	}
}

// holdTrigger makes every Append of an event whose command is "hold" wait,
// after its events took their sequences and before it commits, until the
// returned release is called. waiting returns the process id of a backend
// that waits so, or 0.
func holdTrigger(t *testing.T, u string) (waiting func() int32, release func()) {
	t.Helper()
	ctx := t.Context()
	key := int64(time.Now().UnixNano() & 0x3fffffff) // database-wide: keep it apart from other runs
	admin := connect(t, u)
	for _, stmt := range []string{
		fmt.Sprintf(`CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.command = 'hold' THEN PERFORM pg_advisory_xact_lock(%d); END IF;
				RETURN NEW;
			END $$`, key),
		"CREATE TRIGGER hold AFTER INSERT ON event FOR EACH ROW EXECUTE FUNCTION hold()",
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	holder := connect(t, u)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := holder.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", key); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	waiting = func() int32 {
		var pid int32
		err := admin.QueryRow(ctx, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = $1",
			key).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return pid
	}
	return waiting, release
}

// TestSequencesCommitInOrder: with several writers, a relay that pages the
// event log by sequence and remembers the last one it saw never skips an
// event. Append A takes a sequence and is held before its commit; Append B
// starts after it. B must not commit (nor become visible) before A: a relay
// that read B's sequence would move past A's for good.
func TestSequencesCommitInOrder(t *testing.T) {
	ctx := t.Context()
	u := newSchema(t)
	s := openStore(t, u)
	// Two writers on one database.
	other := openStore(t, u)
	waiting, release := holdTrigger(t, u)
	admin := connect(t, u)
	var eventTable uint32
	if err := admin.QueryRow(ctx, "SELECT 'event'::regclass::oid").Scan(&eventTable); err != nil {
		t.Fatal(err)
	}

	// The relay: pages by sequence and remembers where it was.
	var seen []uneventful.Event
	relay := func() {
		t.Helper()
		for {
			var after int64
			if len(seen) > 0 {
				after = seen[len(seen)-1].Sequence
			}
			page, err := s.Events(ctx, uneventful.EventQuery{AfterSequence: after, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return
			}
			seen = append(seen, page...)
		}
	}

	a := newSeq().batch(3)
	a[0].Event.Command = "hold"
	aDone := make(chan error, 1)
	go func() { aDone <- s.Append(ctx, a) }()
	waitFor(t, "Append A waits before its commit", func() bool { return waiting() != 0 })

	b := newSeq().batch(3)
	bDone := make(chan error, 1)
	go func() { bDone <- other.Append(ctx, b) }()
	// B either commits (wrong) or waits for the order lock.
	var bErr error
	bReturned := false
	waitFor(t, "Append B commits or waits for the order lock", func() bool {
		select {
		case bErr = <-bDone:
			bReturned = true
			return true
		default:
		}
		var n int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1 AND objid = $2",
			uint32(0x75657673), eventTable).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if bReturned {
		t.Errorf("Append B returned (error %v) while Append A, which took a lower sequence, had not committed", bErr)
	}
	relay()
	if len(seen) != 0 {
		t.Errorf("a relay sees %d events (first sequence %d) while the transaction of a lower sequence is open", len(seen), seen[0].Sequence)
	}

	release()
	if err := <-aDone; err != nil {
		t.Fatalf("Append A: %v", err)
	}
	if !bReturned {
		bErr = <-bDone
	}
	if bErr != nil {
		t.Fatalf("Append B: %v", bErr)
	}
	relay()
	want := append(append([]uneventful.Event{}, eventsOf(a)...), eventsOf(b)...)
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("events the relay saw (-want +got):\n%s", d)
	}
}

func eventsOf(records []uneventful.Record) []uneventful.Event {
	var events []uneventful.Event
	for _, r := range records {
		events = append(events, r.Event)
	}
	return events
}

// written reports whether the batch is in the store entirely (true) or not
// at all (false), and fails the test if it is there in part.
func written(t *testing.T, s *postgres.Store, records []uneventful.Record) bool {
	t.Helper()
	ctx := context.Background()
	var found, missing []string
	for _, r := range records {
		_, err := s.Lookup(ctx, r.Event.IdempotencyKey)
		switch {
		case err == nil:
			found = append(found, "event "+r.Event.EventID)
		case errors.Is(err, uneventful.ErrNotFound):
			missing = append(missing, "event "+r.Event.EventID)
		default:
			t.Fatalf("Lookup: %v", err)
		}
		if st := r.State; st != nil {
			states, err := s.States(ctx, st.Domain, st.EntityID, st.Version-1, 1)
			if err != nil {
				t.Fatalf("States: %v", err)
			}
			if len(states) == 1 && states[0].Version == st.Version && states[0].EventID == st.EventID {
				found = append(found, fmt.Sprintf("state v%d", st.Version))
			} else {
				missing = append(missing, fmt.Sprintf("state v%d", st.Version))
			}
		}
	}
	if len(found) > 0 && len(missing) > 0 {
		t.Fatalf("a batch was written in part: %v are there, %v are not", found, missing)
	}
	return len(missing) == 0
}

// checkAppendResult checks what an Append that may have met a terminated
// backend returned: nil and the batch is there, or ErrUnavailable saying
// nothing was written and nothing is there.
func checkAppendResult(t *testing.T, s *postgres.Store, records []uneventful.Record, err error) {
	t.Helper()
	w := written(t, s, records)
	switch {
	case err == nil && !w:
		t.Fatal("Append returned nil but its batch is not in the store")
	case err == nil:
	case !errors.Is(err, uneventful.ErrUnavailable):
		t.Fatalf("Append when the backend was terminated: got error %v, want nil or one wrapping ErrUnavailable", err)
	case w:
		t.Fatalf("Append returned %v but its batch is in the store", err)
	case !strings.Contains(uneventful.ErrorMessage(err), "nothing was written"):
		t.Errorf("Append's message %q does not say that nothing was written", uneventful.ErrorMessage(err))
	}
}

// terminate terminates the backends of connections named app and waits
// until they are gone; it returns how many there were.
func terminate(t *testing.T, admin *pgx.Conn, app string) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(context.Background(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppendAfterBackendsTerminated(t *testing.T) {
	ctx := t.Context()
	app := "uneventful-test-" + randomName()
	u := withParams(t, newSchema(t), map[string]string{"application_name": app})
	s := openStore(t, u)
	admin := connect(t, baseURL(t)) // not named app
	q := newSeq()
	// Several connections in the pool.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.Events(ctx, uneventful.EventQuery{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Append(ctx, q.batch(3)); err != nil {
		t.Fatal(err)
	}

	for round := range 3 {
		if n := terminate(t, admin, app); n == 0 {
			t.Fatalf("round %d: no backend of the store to terminate", round)
		}
		waitFor(t, "the terminated backends are gone", func() bool {
			var n int
			admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
			return n == 0
		})
		records := q.batch(4)
		err := s.Append(ctx, records)
		checkAppendResult(t, s, records, err)
		if err != nil {
			q.version -= 3 // its versions were not taken
		}
		next := q.batch(2)
		if err := s.Append(ctx, next); err != nil {
			t.Fatalf("round %d: the Append after the one that met terminated backends: %v", round, err)
		}
	}
}

// TestAppendBackendTerminatedMidway terminates the backend of an Append
// whose events have taken their sequences, before it commits.
func TestAppendBackendTerminatedMidway(t *testing.T) {
	ctx := t.Context()
	u := newSchema(t)
	s := openStore(t, u)
	waiting, release := holdTrigger(t, u)
	admin := connect(t, u)
	q := newSeq()
	if err := s.Append(ctx, q.batch(2)); err != nil {
		t.Fatal(err)
	}

	records := q.batch(5)
	records[2].Event.Command = "hold"
	done := make(chan error, 1)
	go func() { done <- s.Append(ctx, records) }()
	var pid int32
	waitFor(t, "the Append waits before its commit", func() bool { pid = waiting(); return pid != 0 })
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	// Let an Append that tries again through.
	release()
	err := <-done
	t.Logf("Append whose backend was terminated returned %v", err)
	checkAppendResult(t, s, records, err)
	if err != nil {
		q.version -= 4
	}
	if err := s.Append(ctx, q.batch(3)); err != nil {
		t.Fatalf("the Append after the terminated one: %v", err)
	}
	// Versions have no gaps.
	states, err := s.States(ctx, "wallet", q.entityID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if st.Version != int64(i+1) {
			t.Fatalf("state log row %d has version %d", i, st.Version)
		}
	}
}

// TestAppendUnderTerminations appends from several goroutines while
// another keeps terminating the store's backends: every Append writes its
// whole batch and returns nil, or writes nothing and returns an error
// wrapping ErrUnavailable.
func TestAppendUnderTerminations(t *testing.T) {
	ctx := t.Context()
	app := "uneventful-test-" + randomName()
	u := withParams(t, newSchema(t), map[string]string{"application_name": app})
	s := openStore(t, u)
	admin := connect(t, baseURL(t))

	stop := make(chan struct{})
	var killer sync.WaitGroup
	var kills atomic.Int64
	killer.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			var n int64
			admin.QueryRow(context.Background(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
			kills.Add(n)
		}
	})
	type result struct {
		records []uneventful.Record
		err     error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range 4 {
		wg.Go(func() {
			q := newSeq()
			for time.Now().Before(deadline) {
				records := q.batch(5)
				err := s.Append(ctx, records)
				if err != nil {
					q.version -= 4
				}
				mu.Lock()
				results = append(results, result{records, err})
				mu.Unlock()
				if err != nil && !errors.Is(err, uneventful.ErrUnavailable) {
					t.Errorf("Append: got error %v, want nil or one wrapping ErrUnavailable", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	killer.Wait()
	var failed int
	for _, r := range results {
		checkAppendResult(t, s, r.records, r.err)
		if r.err != nil {
			failed++
		}
	}
	t.Logf("%d Appends, %d failed, %d backends terminated", len(results), failed, kills.Load())
	if kills.Load() == 0 {
		t.Error("no backend was terminated")
	}
	if err := s.Append(ctx, newSeq().batch(3)); err != nil {
		t.Errorf("Append after the terminations: %v", err)
	}
}

// countingConn counts the writes of a connection to the server: a round
// trip takes at least one.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestAppendRoundTrips: a batch costs a few round trips, whatever its size.
func TestAppendRoundTrips(t *testing.T) {
	ctx := t.Context()
	u := withParams(t, newSchema(t), map[string]string{"pool_max_conns": "1"})
	var writes atomic.Int64
	s, err := postgres.OpenConfigured(ctx, u, func(cfg *pgxpool.Config) {
		dial := cfg.ConnConfig.DialFunc
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &writes}, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := newSeq()
	if err := s.Append(ctx, q.batch(10)); err != nil { // prepares the statements
		t.Fatal(err)
	}
	for _, n := range []int{1, 1000} {
		records := q.batch(n)
		before := writes.Load()
		if err := s.Append(ctx, records); err != nil {
			t.Fatal(err)
		}
		got := writes.Load() - before
		t.Logf("Append of %d records: %d writes to the server", n, got)
		if got > 3 {
			t.Errorf("Append of %d records wrote to the server %d times, want at most 3", n, got)
		}
	}
	if got := len(readAll(t, s)); got != 1011 {
		t.Errorf("event log has %d events, want 1011", got)
	}
}

// BenchmarkAppend appends batches of accepted records to one stream. The
// baseline is one durable commit of one statement (SaveCheckpoint): one
// round trip and one WAL flush, the floor of any durable write.
func BenchmarkAppend(b *testing.B) {
	b.Run("baseline=commit", func(b *testing.B) {
		s := openStore(b, newSchema(b))
		var n int64
		for b.Loop() {
			n++
			if err := s.SaveCheckpoint(context.Background(), "bench", n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "commits/s")
	})
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openStore(b, newSchema(b))
			q := newSeq()
			batch := make([]uneventful.Record, size)
			n := 0
			for b.Loop() {
				b.StopTimer()
				for i := range batch {
					batch[i] = q.record(true)
				}
				b.StartTimer()
				if err := s.Append(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				n += size
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// cuttingConn loses the connection, once armed, when the server's answer
// says COMMIT: the transaction committed, but the client never learns it.
type cuttingConn struct {
	net.Conn
	armed *atomic.Bool
}

// commitComplete is the CommandComplete message of a COMMIT.
var commitComplete = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

func (c cuttingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && bytes.Contains(b[:n], commitComplete) && c.armed.CompareAndSwap(true, false) {
		c.Conn.Close()
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

func cutAfterCommit(armed *atomic.Bool) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		dial := cfg.ConnConfig.DialFunc
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return cuttingConn{c, armed}, nil
		}
	}
}

// TestAppendConnectionLostAfterCommit: an Append that committed but lost
// its connection before the answer finds out that it committed and returns
// nil with the sequences it got, not an error claiming nothing was written.
func TestAppendConnectionLostAfterCommit(t *testing.T) {
	ctx := t.Context()
	u := newSchema(t)
	var armed atomic.Bool
	s, err := postgres.OpenConfigured(ctx, u, cutAfterCommit(&armed))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := newSeq()
	if err := s.Append(ctx, q.batch(2)); err != nil {
		t.Fatal(err)
	}
	records := q.batch(5)
	armed.Store(true)
	err = s.Append(ctx, records)
	if armed.Load() {
		t.Fatal("the connection was not cut after COMMIT")
	}
	if err != nil {
		t.Fatalf("Append that committed but lost its connection before the answer: %v; want nil", err)
	}
	all := readAll(t, s)
	if d := cmp.Diff(eventsOf(records), all[len(all)-len(records):]); d != "" {
		t.Errorf("the batch as written back and as stored (-written back +stored):\n%s", d)
	}
	if err := s.Append(ctx, q.batch(2)); err != nil {
		t.Errorf("the next Append: %v", err)
	}
}

// TestRecordConnectionLostAfterCommit: Record learns the same way how many
// events were new.
func TestRecordConnectionLostAfterCommit(t *testing.T) {
	ctx := t.Context()
	u := newSchema(t)
	var armed atomic.Bool
	h, err := postgres.OpenHistoryConfigured(ctx, u, cutAfterCommit(&armed))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	events := eventsOf(newSeq().batch(6))
	if n, err := h.Record(ctx, events[:2]); n != 2 || err != nil {
		t.Fatalf("Record = %d, %v; want 2 new", n, err)
	}
	armed.Store(true)
	n, err := h.Record(ctx, events)
	if armed.Load() {
		t.Fatal("the connection was not cut after COMMIT")
	}
	if n != 4 || err != nil {
		t.Errorf("Record that committed but lost its connection before the answer = %d, %v; want 4 new", n, err)
	}
	if got, err := h.History(ctx, 0, 100); err != nil || len(got) != 6 {
		t.Errorf("History: %d events, %v; want 6", len(got), err)
	}
}

// TestAppendCancelledBeforeCommit: an Append whose context ends while the
// server runs its transaction makes sure that the transaction does not
// commit later, so that "nothing was written" stays true. pgx sends a
// cancel request when it drops the connection; when that request is lost,
// Append terminates the backend itself.
func TestAppendCancelledBeforeCommit(t *testing.T) {
	baseURL(t)
	for _, loseCancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel request lost=%v", loseCancel), func(t *testing.T) {
			u := newSchema(t)
			var refuse atomic.Bool
			s, err := postgres.OpenConfigured(t.Context(), u, func(cfg *pgxpool.Config) {
				dial := cfg.ConnConfig.DialFunc
				cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if refuse.Load() {
						return nil, errors.New("test: dial refused")
					}
					return dial(ctx, network, addr)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			waiting, release := holdTrigger(t, u)
			q := newSeq()
			records := q.batch(3)
			records[1].Event.Command = "hold"
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- s.Append(ctx, records) }()
			waitFor(t, "the Append waits before its commit", func() bool { return waiting() != 0 })
			if loseCancel {
				// pgx dials to send the cancel request at once; Append's
				// look-ups retry until dials work again.
				refuse.Store(true)
				time.AfterFunc(500*time.Millisecond, func() { refuse.Store(false) })
			}
			cancel()
			err = <-done
			if !errors.Is(err, uneventful.ErrUnavailable) || !errors.Is(err, context.Canceled) || !strings.Contains(uneventful.ErrorMessage(err), "nothing was written") {
				t.Errorf("Append cancelled before its commit: got error %v, want one wrapping ErrUnavailable and context.Canceled that says nothing was written", err)
			}
			if pid := waiting(); pid != 0 {
				t.Errorf("backend %d still runs the cancelled Append's transaction", pid)
			}
			release()
			if written(t, s, records) {
				t.Fatal("the cancelled Append's batch was written")
			}
			q.version -= 2
			if err := s.Append(t.Context(), q.batch(3)); err != nil {
				t.Errorf("the next Append: %v", err)
			}
		})
	}
}
