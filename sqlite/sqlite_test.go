package sqlite_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/storetest"
)

// TestMain runs the test binary as TestSecondWriterRefused's other process
// when UNEVENTFUL_TEST_OPEN names a file: it opens the file and says whether
// it was refused.
func TestMain(m *testing.M) {
	path := os.Getenv("UNEVENTFUL_TEST_OPEN")
	if path == "" {
		os.Exit(m.Run())
	}
	s, err := sqlite.Open(context.Background(), path)
	if err == nil {
		s.Close()
		fmt.Println("opened a file another process has open for writing")
		os.Exit(1)
	}
	if !errors.Is(err, uneventful.ErrUnavailable) {
		fmt.Printf("got error %v, want one wrapping ErrUnavailable\n", err)
		os.Exit(1)
	}
	fmt.Println("refused:", uneventful.ErrorMessage(err))
	os.Exit(0)
}

func TestStore(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) uneventful.Store {
		return openStore(t, filepath.Join(t.TempDir(), "wallet.db"))
	})
}

func TestHistory(t *testing.T) {
	storetest.TestHistoryStore(t, func(t *testing.T) uneventful.HistoryStore {
		h, err := sqlite.OpenHistory(t.Context(), filepath.Join(t.TempDir(), "history.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	})
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// seq makes records of one entity, accepted credits unless rejected.
type seq struct {
	entityID string
	version  int64
}

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

func newSeq() *seq { return &seq{entityID: uneventful.NewID()} }

func readAll(t *testing.T, s *sqlite.Store) []uneventful.Event {
	t.Helper()
	events, err := s.Events(t.Context(), uneventful.EventQuery{Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "wallet.db")
	s, err := sqlite.Open(ctx, path)
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

	s = openStore(t, path)
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
	// The next version continues the stream, so the guard survived too.
	if err := s.Append(ctx, []uneventful.Record{w.record(true)}); err != nil {
		t.Errorf("Append of version 3 after reopening: %v", err)
	}

	hpath := filepath.Join(dir, "history.db")
	h, err := sqlite.OpenHistory(ctx, hpath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Record(ctx, before); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h, err = sqlite.OpenHistory(ctx, hpath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if n, err := h.Record(ctx, before); n != 0 || err != nil {
		t.Errorf("Record of recorded events after reopening = %d, %v; want 0 new", n, err)
	}
	if got, err := h.History(ctx, 0, 100); err != nil || len(got) != len(before) {
		t.Errorf("History after reopening: %d events, %v; want %d", len(got), err, len(before))
	}
}

func TestSecondWriterRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wallet.db")
	first, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(ctx, path)
	if !errors.Is(err, uneventful.ErrUnavailable) {
		t.Fatalf("second Open: got error %v, want one wrapping ErrUnavailable", err)
	}
	msg := uneventful.ErrorMessage(err)
	for _, want := range []string{path + " is already opened for writing", "pid " + strconv.Itoa(os.Getpid()), "--data"} {
		if !strings.Contains(msg, want) {
			t.Errorf("second Open's message %q does not say %q", msg, want)
		}
	}
	if _, err := sqlite.OpenHistory(ctx, path); !errors.Is(err, uneventful.ErrUnavailable) {
		t.Errorf("OpenHistory of a file open for writing: got error %v, want one wrapping ErrUnavailable", err)
	}
	// Another process is refused the same way.
	child := exec.CommandContext(ctx, os.Args[0])
	child.Env = append(os.Environ(), "UNEVENTFUL_TEST_OPEN="+path)
	out, err := child.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused: ") || !strings.Contains(string(out), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("Open in another process: %v; it said:\n%s", err, out)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openStore(t, path)
	if err := second.Append(ctx, []uneventful.Record{newSeq().record(true)}); err != nil {
		t.Errorf("Append after the first writer closed: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wallet.db")
	if _, err := sqlite.OpenReadOnly(ctx, path); !errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("OpenReadOnly of a missing file: got error %v, want one wrapping ErrNotFound", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly of a missing file created it (stat: %v)", err)
	}

	w := openStore(t, path)
	q := newSeq()
	if err := w.Append(ctx, []uneventful.Record{q.record(true)}); err != nil {
		t.Fatal(err)
	}
	r, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly while the writer runs: %v", err)
	}
	defer r.Close()
	if err := w.Append(ctx, []uneventful.Record{q.record(false), q.record(true)}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(readAll(t, w), readAll(t, r)); d != "" {
		t.Errorf("reader's event log (-writer +reader):\n%s", d)
	}
	if st, err := r.Load(ctx, "wallet", q.entityID); err != nil || st.Version != 2 {
		t.Errorf("reader's Load = %+v, %v; want version 2", st, err)
	}
	if err := r.Append(ctx, []uneventful.Record{newSeq().record(true)}); err == nil {
		t.Error("Append on a read-only store succeeded")
	}
	if err := r.SaveCheckpoint(ctx, "x", 1); err == nil {
		t.Error("SaveCheckpoint on a read-only store succeeded")
	}

	hpath := filepath.Join(t.TempDir(), "history.db")
	h, err := sqlite.OpenHistory(ctx, hpath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Record(ctx, readAll(t, w)); err != nil {
		t.Fatal(err)
	}
	hr, err := sqlite.OpenHistoryReadOnly(ctx, hpath)
	if err != nil {
		t.Fatalf("OpenHistoryReadOnly while the writer runs: %v", err)
	}
	defer hr.Close()
	if got, err := hr.History(ctx, 0, 100); err != nil || len(got) != 3 {
		t.Errorf("reader's History: %d events, %v; want 3", len(got), err)
	}
	if _, err := hr.Record(ctx, readAll(t, w)); err == nil {
		t.Error("Record on a read-only history succeeded")
	}
}

func TestAppendChecksRecords(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "wallet.db"))
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

func TestWrongKindOfFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "history.db")
	h, err := sqlite.OpenHistory(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if s, err := sqlite.Open(ctx, path); err == nil || !strings.Contains(err.Error(), "not an uneventful event store") {
		t.Errorf("Open of a history file: got error %v, want one saying it is not an event store", err)
		if err == nil {
			s.Close()
		}
	}
}

// TestExternalLock holds the database's write lock from a sqlite3 shell in
// another process: Appends fail fast with ErrUnavailable and write nothing,
// and once the shell lets go the next Append succeeds on the same Store.
func TestExternalLock(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("sqlite3 is not on the PATH; it is needed to hold the database lock from another process")
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wallet.db")
	s := openStore(t, path)
	s.BusyTimeout = 200 * time.Millisecond
	q := newSeq()
	if err := s.Append(ctx, []uneventful.Record{q.record(true)}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(shell, path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	io.WriteString(stdin, "BEGIN IMMEDIATE;\nSELECT 'locked';\n")
	locked := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "locked\n" {
			err = fmt.Errorf("sqlite3 said %q", line)
		}
		locked <- err
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-locked:
		if err != nil {
			t.Fatalf("sqlite3 did not take the lock: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sqlite3 did not take the lock in 10s; stderr: %s", stderr.String())
	}
	lockedAt := time.Now()

	// While the shell holds the lock, for 3s.
	before := readAll(t, s)
	var failed int
	for time.Since(lockedAt) < 2*time.Second {
		r := q.record(true)
		start := time.Now()
		err := s.Append(ctx, []uneventful.Record{r})
		// Far less than the 3s the lock is held: it failed, it did not wait.
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Append took %v with BusyTimeout %v", took, s.BusyTimeout)
		}
		if err == nil {
			t.Fatal("Append succeeded while another process holds the write lock")
		}
		if !errors.Is(err, uneventful.ErrUnavailable) {
			t.Fatalf("Append while locked: got error %v, want one wrapping ErrUnavailable", err)
		}
		if msg := uneventful.ErrorMessage(err); !strings.Contains(msg, "locked by another process") || !strings.Contains(msg, "nothing was written") {
			t.Errorf("Append while locked: message %q does not explain the lock", msg)
		}
		if err := s.SaveCheckpoint(ctx, "relay", 1); !errors.Is(err, uneventful.ErrUnavailable) {
			t.Errorf("SaveCheckpoint while locked: got error %v, want one wrapping ErrUnavailable", err)
		}
		q.version-- // the version was not taken
		failed++
	}
	if failed == 0 {
		t.Fatal("no Append was attempted while the lock was held")
	}
	// BusyTimeout 0 fails at once, not after the default 2s: the field
	// applies.
	s.BusyTimeout = 0
	start := time.Now()
	if err := s.Append(ctx, []uneventful.Record{newSeq().record(true)}); !errors.Is(err, uneventful.ErrUnavailable) {
		t.Errorf("Append with BusyTimeout 0 while locked: got error %v, want one wrapping ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Append with BusyTimeout 0 took %v", took)
	}
	// Reads go on while the lock is held.
	if d := cmp.Diff(before, readAll(t, s)); d != "" {
		t.Errorf("event log after failed Appends (-before +after):\n%s", d)
	}
	time.Sleep(time.Until(lockedAt.Add(3 * time.Second)))
	io.WriteString(stdin, "COMMIT;\n.quit\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sqlite3: %v; stderr: %s", err, stderr.String())
	}

	// The same Store, not reopened, writes again.
	r := q.record(true)
	if err := s.Append(ctx, []uneventful.Record{r}); err != nil {
		t.Fatalf("Append after the lock was released: %v", err)
	}
	if st, err := s.Load(ctx, "wallet", q.entityID); err != nil || st.Version != 2 || st.EventID != r.Event.EventID {
		t.Errorf("Load after the lock was released = %+v, %v; want version 2 of event %s", st, err, r.Event.EventID)
	}
	if got := len(readAll(t, s)); got != len(before)+1 {
		t.Errorf("event log has %d events, want %d", got, len(before)+1)
	}
}

// TestAppendWaitsForShortLock checks the other side of BusyTimeout: a lock
// released within it delays an Append but does not fail it.
func TestAppendWaitsForShortLock(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("sqlite3 is not on the PATH; it is needed to hold the database lock from another process")
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wallet.db")
	s := openStore(t, path)
	if err := s.SaveCheckpoint(ctx, "x", 1); err != nil { // creates the file
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, shell, path)
	cmd.Stdin = strings.NewReader("BEGIN IMMEDIATE;\nSELECT 'locked';\n.shell sleep 0.5\nCOMMIT;\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("sqlite3 did not take the lock: %q, %v", line, err)
	}
	if err := s.Append(ctx, []uneventful.Record{newSeq().record(true)}); err != nil {
		t.Errorf("Append with a lock held for 0.5s of BusyTimeout %v: %v", s.BusyTimeout, err)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "wallet.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
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
