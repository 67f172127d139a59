package storetest

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/uneventful/uneventful"
)

// ignoreSequence compares events without their sequence, which a history
// log replaces with its own.
var ignoreSequence = cmpopts.IgnoreFields(uneventful.Event{}, "Sequence")

// TestHistoryStore runs the HistoryStore conformance suite. open returns a
// new, empty history store for each subtest and arranges for it to be
// closed when the subtest ends (t.Cleanup).
func TestHistoryStore(t *testing.T, open func(t *testing.T) uneventful.HistoryStore) {
	for _, tt := range []struct {
		name string
		test func(t *testing.T, h uneventful.HistoryStore)
	}{
		{"RecordDeduplicates", testRecordDeduplicates},
		{"Paging", testHistoryPaging},
		{"ConcurrentRecords", testConcurrentRecords},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open(t)) })
	}
}

// recordedEvents returns n events as the event logs of two domains recorded
// them, with their sequences there, which decrease, so that a store that
// returns them instead of its own history sequences fails.
func recordedEvents(n int) []uneventful.Event {
	a, b := newStream("wallet"), newStream("ledger")
	var events []uneventful.Event
	for i := range n {
		var r uneventful.Record
		switch i % 3 {
		case 0:
			r = a.accepted()
		case 1:
			r = b.rejected()
		default:
			r = b.accepted()
		}
		r.Event.Sequence = int64(1000 - i)
		events = append(events, r.Event)
	}
	return events
}

func record(t *testing.T, h uneventful.HistoryStore, want int, events ...uneventful.Event) {
	t.Helper()
	n, err := h.Record(t.Context(), events)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if n != want {
		t.Errorf("Record of %d events returned %d new, want %d", len(events), n, want)
	}
}

// history reads the whole history log, limit events at a time.
func history(t *testing.T, h uneventful.HistoryStore, limit int) []uneventful.Event {
	t.Helper()
	return pages(t, limit, func(after int64) []uneventful.Event {
		page, err := h.History(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("History(%d, %d): %v", after, limit, err)
		}
		return page
	}, sequence)
}

func testRecordDeduplicates(t *testing.T, h uneventful.HistoryStore) {
	e := recordedEvents(5)
	record(t, h, 2, e[0], e[1])
	record(t, h, 1, e[1], e[2])       // across calls
	record(t, h, 1, e[3], e[3], e[0]) // within a call
	record(t, h, 0, e[2])
	record(t, h, 0)
	record(t, h, 1, e[4])
	diff(t, "history log", e, history(t, h, 100), ignoreSequence)
}

func testHistoryPaging(t *testing.T, h uneventful.HistoryStore) {
	e := recordedEvents(23)
	for i := 0; i < len(e); i += 5 {
		record(t, h, min(5, len(e)-i), e[i:min(i+5, len(e))]...)
	}
	diff(t, "history log paged by 4", e, history(t, h, 4), ignoreSequence)
	diff(t, "history log in one page", e, history(t, h, 100), ignoreSequence)
}

func testConcurrentRecords(t *testing.T, h uneventful.HistoryStore) {
	e := recordedEvents(30)
	var (
		mu    sync.Mutex
		added int
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			// Each relay sees every event, in its own batches.
			for i := 0; i < len(e); i += w + 1 {
				n, err := h.Record(t.Context(), e[i:min(i+w+1, len(e))])
				if err != nil {
					t.Errorf("Record: %v", err)
					return
				}
				mu.Lock()
				added += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if added != len(e) {
		t.Errorf("concurrent Records returned %d new in all, want %d", added, len(e))
	}
	got := history(t, h, 100)
	if len(got) != len(e) {
		t.Fatalf("history log has %d events, want %d", len(got), len(e))
	}
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g.EventID] {
			t.Fatalf("event %s is in the history log twice", g.EventID)
		}
		seen[g.EventID] = true
	}
	for _, x := range e {
		if !seen[x.EventID] {
			t.Errorf("event %s is missing from the history log", x.EventID)
		}
	}
}
