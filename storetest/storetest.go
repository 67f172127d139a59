// Package storetest is the conformance suite that every uneventful.Store and
// uneventful.HistoryStore passes. A backend's tests call TestStore and
// TestHistoryStore with a function that opens a new, empty store.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uneventful/uneventful"
)

// TestStore runs the Store conformance suite. open returns a new, empty
// store for each subtest and arranges for it to be closed when the subtest
// ends (t.Cleanup).
func TestStore(t *testing.T, open func(t *testing.T) uneventful.Store) {
	for _, tt := range []struct {
		name string
		test func(t *testing.T, s uneventful.Store)
	}{
		{"AppendAndReadBack", testAppendAndReadBack},
		{"ConflictOnTakenVersion", testConflictOnTakenVersion},
		{"ConflictOnSkippedVersion", testConflictOnSkippedVersion},
		{"ConflictWithinBatch", testConflictWithinBatch},
		{"DuplicateIdempotencyKey", testDuplicateIdempotencyKey},
		{"DuplicateEventID", testDuplicateEventID},
		{"Lookup", testLookup},
		{"Load", testLoad},
		{"GapFreeVersions", testGapFreeVersions},
		{"EventsOfStream", testEventsOfStream},
		{"EventsAfterSequence", testEventsAfterSequence},
		{"EventsDefaultLimit", testEventsDefaultLimit},
		{"Records", testRecords},
		{"States", testStates},
		{"Checkpoints", testCheckpoints},
		{"ConcurrentAppends", testConcurrentAppends},
		{"StaleRejection", testStaleRejection},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open(t)) })
	}
}

// stream builds the records of one entity's command attempts, keeping its
// version the way a writer does.
type stream struct {
	domain, entityID string
	version          int64
}

func newStream(domain string) *stream {
	return &stream{domain: domain, entityID: uneventful.NewID()}
}

// clock makes distinct timestamps with nanoseconds, some in a zone other
// than UTC, so that a store that drops precision or the zone's offset fails.
var (
	clockMu sync.Mutex
	clockAt = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	zone    = time.FixedZone("UTC+05:30", 5*3600+30*60)
)

func now() time.Time {
	clockMu.Lock()
	defer clockMu.Unlock()
	clockAt = clockAt.Add(time.Second + 7*time.Nanosecond)
	if clockAt.Nanosecond()%2 == 0 {
		return clockAt.In(zone)
	}
	return clockAt
}

func (s *stream) event(command string, outcome uneventful.Outcome) uneventful.Event {
	id := uneventful.NewID()
	ts := now()
	e := uneventful.Event{
		EventID:        id,
		CorrelationID:  uneventful.NewID(),
		CausationID:    id,
		Timestamp:      ts,
		SourceName:     "storetest",
		SourceID:       "storetest-1",
		TypeName:       s.domain + "." + s.entityID + "." + command,
		Domain:         s.domain,
		EntityID:       s.entityID,
		Command:        command,
		Data:           json.RawMessage(`{"amount":"5.25"}`),
		IdempotencyKey: uneventful.NewID(),
		RequestHash:    "sha256:" + id,
		Version:        s.version,
		Outcome:        outcome,
	}
	reply := &uneventful.Reply{EventID: id, Outcome: outcome, Version: s.version, Timestamp: ts, View: json.RawMessage(`{"balance":"5.25"}`)}
	if outcome == uneventful.Rejected {
		e.Reason, e.Message = "insufficient_funds", "the balance is too low"
		reply.Code, reply.Message = e.Reason, e.Message
	}
	e.Reply = uneventful.MarshalReply(reply)
	return e
}

// accepted returns the record of an accepted attempt: the next version.
func (s *stream) accepted() uneventful.Record {
	s.version++
	e := s.event("credit", uneventful.Accepted)
	return uneventful.Record{Event: e, State: &uneventful.State{
		Domain: s.domain, EntityID: s.entityID, Version: s.version, Timestamp: e.Timestamp, EventID: e.EventID,
		Data: json.RawMessage(fmt.Sprintf(`{"balance":"%d"}`, s.version)),
	}}
}

// rejected returns the record of a rejected attempt, decided against the
// current version.
func (s *stream) rejected() uneventful.Record {
	return uneventful.Record{Event: s.event("debit", uneventful.Rejected)}
}

func appendOK(t *testing.T, s uneventful.Store, records ...uneventful.Record) []uneventful.Record {
	t.Helper()
	if err := s.Append(t.Context(), records); err != nil {
		t.Fatalf("Append: %v", err)
	}
	return records
}

func eventsOf(records []uneventful.Record) []uneventful.Event {
	var events []uneventful.Event
	for _, r := range records {
		events = append(events, r.Event)
	}
	return events
}

func statesOf(records []uneventful.Record) []uneventful.State {
	var states []uneventful.State
	for _, r := range records {
		if r.State != nil {
			states = append(states, *r.State)
		}
	}
	return states
}

func events(t *testing.T, s uneventful.Store, q uneventful.EventQuery) []uneventful.Event {
	t.Helper()
	events, err := s.Events(t.Context(), q)
	if err != nil {
		t.Fatalf("Events(%+v): %v", q, err)
	}
	return events
}

// pages reads pages of up to limit items until an empty one. read reads the
// page after a position; pos is an item's position, which must increase,
// so that a store that repeats or reorders items fails rather than loops.
func pages[T any](t *testing.T, limit int, read func(after int64) []T, pos func(T) int64) []T {
	t.Helper()
	var all []T
	var after int64
	for {
		page := read(after)
		if len(page) > limit {
			t.Fatalf("page after %d has %d items, want at most %d", after, len(page), limit)
		}
		if len(page) == 0 {
			return all
		}
		for _, x := range page {
			if pos(x) <= after {
				t.Fatalf("page after %d holds position %d", after, pos(x))
			}
			after = pos(x)
		}
		all = append(all, page...)
	}
}

func sequence(e uneventful.Event) int64 { return e.Sequence }

// allEvents reads the whole event log, page by page.
func allEvents(t *testing.T, s uneventful.Store) []uneventful.Event {
	t.Helper()
	return pages(t, 50, func(after int64) []uneventful.Event {
		return events(t, s, uneventful.EventQuery{AfterSequence: after, Limit: 50})
	}, sequence)
}

func states(t *testing.T, s uneventful.Store, st *stream, after int64, limit int) []uneventful.State {
	t.Helper()
	states, err := s.States(t.Context(), st.domain, st.entityID, after, limit)
	if err != nil {
		t.Fatalf("States(%s, %d, %d): %v", st.entityID, after, limit, err)
	}
	return states
}

func diff(t *testing.T, what string, want, got any, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// appendFails checks that Append fails with an error wrapping want and
// that the event log is as it was before.
func appendFails(t *testing.T, s uneventful.Store, want error, records ...uneventful.Record) {
	t.Helper()
	before := allEvents(t, s)
	err := s.Append(t.Context(), records)
	if !errors.Is(err, want) {
		t.Fatalf("Append: got error %v, want one wrapping %v", err, want)
	}
	diff(t, "event log after a failed Append", before, allEvents(t, s))
	for _, r := range records {
		if r.State == nil {
			continue
		}
		// The stream's state log holds no row of the failed batch.
		for _, st := range states(t, s, &stream{domain: r.State.Domain, entityID: r.State.EntityID}, 0, 1000) {
			if st.EventID == r.Event.EventID {
				t.Errorf("state %s v%d of a failed Append was written", st.Stream(), st.Version)
			}
		}
	}
}

func testAppendAndReadBack(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("ledger")
	first := appendOK(t, s, a.accepted(), a.rejected(), b.accepted(), a.accepted())
	second := appendOK(t, s, b.rejected(), b.accepted(), a.rejected())

	var last int64
	for i, r := range append(append([]uneventful.Record{}, first...), second...) {
		if r.Event.Sequence <= last {
			t.Fatalf("record %d: Append wrote back sequence %d, want more than %d (the one before)", i, r.Event.Sequence, last)
		}
		last = r.Event.Sequence
	}
	// One reply has no JSON at all, as a reply may.
	third := a.rejected()
	third.Event.Reply = nil
	third = appendOK(t, s, third)[0]

	want := append(eventsOf(first), eventsOf(second)...)
	want = append(want, third.Event)
	diff(t, "event log", want, allEvents(t, s))
	wantA := []uneventful.State{*first[0].State, *first[3].State}
	diff(t, "state log of a", wantA, states(t, s, a, 0, 100))
	wantB := []uneventful.State{*first[2].State, *second[1].State}
	diff(t, "state log of b", wantB, states(t, s, b, 0, 100))
}

func testConflictOnTakenVersion(t *testing.T, s uneventful.Store) {
	a, b, c := newStream("wallet"), newStream("wallet"), newStream("wallet")
	appendOK(t, s, a.accepted())

	a.version = 0 // a writer with a stale view of a
	appendFails(t, s, uneventful.ErrConflict, b.rejected(), c.accepted(), a.accepted())
	if _, err := s.Load(t.Context(), c.domain, c.entityID); !errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("Load of a stream whose only state was in a failed batch: got error %v, want ErrNotFound", err)
	}
}

func testConflictOnSkippedVersion(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	appendOK(t, s, a.accepted())

	a.version = 2 // skips version 2
	appendFails(t, s, uneventful.ErrConflict, a.accepted())

	fresh := newStream("wallet")
	fresh.version = 1 // a new stream starts at version 1
	appendFails(t, s, uneventful.ErrConflict, fresh.accepted())

	zero := newStream("wallet")
	zero.version = -1 // version 0 is the version of no change
	appendFails(t, s, uneventful.ErrConflict, zero.accepted())

	if got := states(t, s, a, 0, 100); len(got) != 1 || got[0].Version != 1 {
		t.Errorf("state log of a after failed Appends: got %+v, want version 1 only", got)
	}
}

func testConflictWithinBatch(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	first := a.accepted()
	a.version = 0
	appendFails(t, s, uneventful.ErrConflict, first, a.accepted())

	b := newStream("wallet")
	records := appendOK(t, s, b.accepted(), b.rejected(), b.accepted())
	diff(t, "state log after one batch of two versions", statesOf(records), states(t, s, b, 0, 100))
}

func testDuplicateIdempotencyKey(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("wallet")
	recorded := appendOK(t, s, a.accepted())

	// Across batches: a retry of a command under a new event id.
	retry := a.accepted()
	retry.Event.IdempotencyKey = recorded[0].Event.IdempotencyKey
	appendFails(t, s, uneventful.ErrDuplicate, b.accepted(), retry)

	// Within a batch.
	b.version = 0
	x, y := b.accepted(), b.rejected()
	y.Event.IdempotencyKey = x.Event.IdempotencyKey
	appendFails(t, s, uneventful.ErrDuplicate, x, y)

	diff(t, "event log", eventsOf(recorded), allEvents(t, s))
}

func testDuplicateEventID(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("wallet")
	recorded := appendOK(t, s, a.rejected())

	again := b.rejected()
	again.Event.EventID = recorded[0].Event.EventID
	appendFails(t, s, uneventful.ErrDuplicate, b.accepted(), again)

	b.version = 0
	x, y := b.accepted(), b.rejected()
	y.Event.EventID = x.Event.EventID
	appendFails(t, s, uneventful.ErrDuplicate, x, y)
}

func testLookup(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	records := appendOK(t, s, a.accepted(), a.rejected())
	for _, r := range records {
		got, err := s.Lookup(t.Context(), r.Event.IdempotencyKey)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", r.Event.IdempotencyKey, err)
		}
		diff(t, "Lookup("+r.Event.IdempotencyKey+")", r.Event, got)
	}
	if _, err := s.Lookup(t.Context(), uneventful.NewID()); !errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("Lookup of an unknown key: got error %v, want ErrNotFound", err)
	}
}

func testLoad(t *testing.T, s uneventful.Store) {
	a, b, onlyRejected := newStream("wallet"), newStream("wallet"), newStream("wallet")
	appendOK(t, s, a.accepted(), a.accepted(), b.accepted())
	latest := appendOK(t, s, a.accepted(), a.rejected(), onlyRejected.rejected())

	got, err := s.Load(t.Context(), a.domain, a.entityID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	diff(t, "Load", *latest[0].State, got)

	for _, st := range []*stream{newStream("wallet"), onlyRejected, {domain: "ledger", entityID: a.entityID}} {
		if _, err := s.Load(t.Context(), st.domain, st.entityID); !errors.Is(err, uneventful.ErrNotFound) {
			t.Errorf("Load(%s, %s): got error %v, want ErrNotFound", st.domain, st.entityID, err)
		}
	}
}

func testGapFreeVersions(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	const n = 40
	for i := range n {
		if i%3 == 0 {
			appendOK(t, s, a.rejected())
		}
		appendOK(t, s, a.accepted())
	}
	got := states(t, s, a, 0, 1000)
	if len(got) != n {
		t.Fatalf("state log has %d rows, want %d", len(got), n)
	}
	for i, st := range got {
		if st.Version != int64(i+1) {
			t.Fatalf("state log row %d has version %d, want %d", i, st.Version, i+1)
		}
	}
}

func testEventsOfStream(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("wallet")
	var all, accepted []uneventful.Event
	for range 10 {
		recs := appendOK(t, s, a.rejected(), a.accepted())
		all = append(all, recs[0].Event, recs[1].Event)
		accepted = append(accepted, recs[1].Event)
		appendOK(t, s, b.accepted()) // interleaved, so a's sequences have gaps
	}
	q := uneventful.EventQuery{Domain: a.domain, EntityID: a.entityID, Limit: 1000}
	diff(t, "all events of a", all, events(t, s, q))

	q.AcceptedOnly = true
	diff(t, "accepted events of a", accepted, events(t, s, q))

	q.AfterVersion = 4
	diff(t, "accepted events of a after version 4", accepted[4:], events(t, s, q))

	q.AcceptedOnly = false
	diff(t, "all events of a after version 4", all[9:], events(t, s, q))

	paged := pages(t, 3, func(after int64) []uneventful.Event {
		return events(t, s, uneventful.EventQuery{Domain: a.domain, EntityID: a.entityID, AfterVersion: after, AcceptedOnly: true, Limit: 3})
	}, func(e uneventful.Event) int64 { return e.Version })
	diff(t, "accepted events of a, paged by version", accepted, paged)

	if got := events(t, s, uneventful.EventQuery{Domain: "wallet", EntityID: uneventful.NewID()}); len(got) != 0 {
		t.Errorf("events of an unknown stream: got %d, want none", len(got))
	}
	if got := events(t, s, uneventful.EventQuery{Domain: "ledger", EntityID: a.entityID}); len(got) != 0 {
		t.Errorf("events of a's entity id in another domain: got %d, want none", len(got))
	}
}

func testEventsAfterSequence(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("ledger")
	var want, accepted []uneventful.Event
	for range 6 {
		recs := appendOK(t, s, a.accepted(), b.rejected(), b.accepted(), a.rejected())
		want = append(want, eventsOf(recs)...)
		accepted = append(accepted, recs[0].Event, recs[2].Event)
	}

	paged := pages(t, 7, func(after int64) []uneventful.Event {
		return events(t, s, uneventful.EventQuery{AfterSequence: after, Limit: 7})
	}, sequence)
	diff(t, "event log paged by sequence", want, paged)

	diff(t, "accepted events of all streams", accepted, events(t, s, uneventful.EventQuery{AcceptedOnly: true, Limit: 1000}))
	after := want[9].Sequence
	diff(t, "events after a sequence", want[10:], events(t, s, uneventful.EventQuery{AfterSequence: after, Limit: 1000}))
}

func testEventsDefaultLimit(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	var batch []uneventful.Record
	for range 130 {
		batch = append(batch, a.rejected())
	}
	appendOK(t, s, batch...)
	for _, q := range []uneventful.EventQuery{{}, {Domain: a.domain, EntityID: a.entityID}} {
		got := events(t, s, q)
		diff(t, fmt.Sprintf("Events(%+v) with Limit 0 (meaning 100)", q), eventsOf(batch[:100]), got)
	}
}

func testRecords(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("ledger")
	var want []uneventful.Record
	for range 5 {
		recs := appendOK(t, s, a.accepted(), b.rejected(), b.accepted(), a.rejected())
		want = append(want, recs[0], recs[2])
	}
	records := func(after int64, limit int) []uneventful.Record {
		t.Helper()
		got, err := s.Records(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("Records(%d, %d): %v", after, limit, err)
		}
		return got
	}
	diff(t, "accepted records", want, records(0, 1000))
	diff(t, "accepted records after a sequence", want[4:], records(want[3].Event.Sequence, 1000))
	paged := pages(t, 3, func(after int64) []uneventful.Record { return records(after, 3) },
		func(r uneventful.Record) int64 { return r.Event.Sequence })
	diff(t, "accepted records paged by sequence", want, paged)
}

func testStates(t *testing.T, s uneventful.Store) {
	a, b := newStream("wallet"), newStream("wallet")
	var recs []uneventful.Record
	for range 10 {
		recs = append(recs, appendOK(t, s, a.accepted(), b.accepted())...)
	}
	want := statesOf(recs)
	var wantA []uneventful.State
	for _, st := range want {
		if st.EntityID == a.entityID {
			wantA = append(wantA, st)
		}
	}
	diff(t, "state log of a", wantA, states(t, s, a, 0, 100))
	diff(t, "state log of a after version 3, limit 4", wantA[3:7], states(t, s, a, 3, 4))
	if got := states(t, s, a, 10, 100); len(got) != 0 {
		t.Errorf("states after the latest version: got %d, want none", len(got))
	}
	if got := states(t, s, newStream("wallet"), 0, 100); len(got) != 0 {
		t.Errorf("states of an unknown stream: got %d, want none", len(got))
	}
}

func testCheckpoints(t *testing.T, s uneventful.Store) {
	ctx := t.Context()
	check := func(name string, want int64) {
		t.Helper()
		got, err := s.Checkpoint(ctx, name)
		if err != nil {
			t.Fatalf("Checkpoint(%s): %v", name, err)
		}
		if got != want {
			t.Errorf("Checkpoint(%s) = %d, want %d", name, got, want)
		}
	}
	save := func(name string, pos int64) {
		t.Helper()
		if err := s.SaveCheckpoint(ctx, name, pos); err != nil {
			t.Fatalf("SaveCheckpoint(%s, %d): %v", name, pos, err)
		}
	}
	check("projector", 0)
	save("projector", 42)
	check("projector", 42)
	save("projector", 7)
	check("projector", 7)
	check("relay", 0)
	save("relay", 9)
	check("relay", 9)
	check("projector", 7)
}

func testConcurrentAppends(t *testing.T, s uneventful.Store) {
	const writers, each = 16, 8
	a := newStream("wallet")
	var (
		mu        sync.Mutex
		successes = map[string]uneventful.Event{} // by event id
		wg        sync.WaitGroup
	)
	for range writers {
		wg.Go(func() {
			for done, tries := 0, 0; done < each; tries++ {
				if tries == 100*each {
					t.Errorf("%d successful Appends in %d tries: no progress", done, tries)
					return
				}
				st := &stream{domain: a.domain, entityID: a.entityID}
				current, err := s.Load(t.Context(), a.domain, a.entityID)
				switch {
				case err == nil:
					st.version = current.Version
				case !errors.Is(err, uneventful.ErrNotFound):
					t.Errorf("Load: %v", err)
					return
				}
				r := []uneventful.Record{st.accepted()}
				err = s.Append(t.Context(), r)
				if errors.Is(err, uneventful.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				successes[r[0].Event.EventID] = r[0].Event
				mu.Unlock()
				done++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	const n = writers * each
	got := states(t, s, a, 0, 1000)
	if len(got) != n {
		t.Fatalf("state log has %d rows after %d successful Appends", len(got), n)
	}
	seen := map[string]bool{}
	for i, st := range got {
		if st.Version != int64(i+1) {
			t.Fatalf("state log row %d has version %d, want %d", i, st.Version, i+1)
		}
		if _, ok := successes[st.EventID]; !ok || seen[st.EventID] {
			t.Fatalf("state v%d has event %s, which is not a success or is seen twice", st.Version, st.EventID)
		}
		seen[st.EventID] = true
	}
	log := allEvents(t, s)
	if len(log) != n {
		t.Fatalf("event log has %d events after %d successful Appends (conflicts must write nothing)", len(log), n)
	}
	for _, e := range log {
		want, ok := successes[e.EventID]
		if !ok {
			t.Fatalf("event log has event %s, which is not a success", e.EventID)
		}
		diff(t, "event "+e.EventID, want, e)
		delete(successes, e.EventID)
	}
}

// testStaleRejection: a rejection is true only of the version it was
// decided against; one decided on a stale state is a conflict and writes
// nothing, so that a writer with an old cached state reloads and decides
// again.
func testStaleRejection(t *testing.T, s uneventful.Store) {
	a := newStream("wallet")
	stale := a.rejected() // decided against version 0...
	appendOK(t, s, a.accepted())
	appendFails(t, s, uneventful.ErrConflict, stale) // ...but the stream is at 1
	appendOK(t, s, a.rejected())                     // decided against 1: fine
	// Within a batch, a rejection follows the accepted changes before it.
	appendOK(t, s, a.accepted(), a.rejected())
}
