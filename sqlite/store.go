package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uneventful/uneventful"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ uneventful.Store = (*Store)(nil)

// Store is a domain's event log and state log in one SQLite file. It
// implements uneventful.Store; all its methods are safe for concurrent use.
type Store struct {
	// BusyTimeout is how long a write (Append, SaveCheckpoint) waits for
	// the database lock when another process holds it, e.g. a sqlite3
	// shell in a transaction, before it fails with an error wrapping
	// uneventful.ErrUnavailable, so that commands fail fast with a
	// retryable error instead of hanging. It does not bound the wait for
	// this Store's one write connection, which writes take in turn: bound
	// that with the context. 0 means not to wait. Open sets it to
	// DefaultBusyTimeout; change it before the Store is shared between
	// goroutines.
	BusyTimeout time.Duration

	db *db
	// The statements of Append, prepared once on the write connection;
	// nil when read-only.
	insertEvent, latestVersion, insertState *sql.Stmt
}

// Open opens the event store in the SQLite file at path for writing,
// creating the file if needed and migrating it to the latest schema.
//
// Only one writer may have a file open: Open takes an exclusive lock on
// path + ".lock" and fails with an error wrapping uneventful.ErrUnavailable,
// naming the holder's process id, while another Store holds it, in this
// process or another. Close releases it, as does the end of the process.
//
// Options are for benchmarks; without them every commit is synced
// (SyncFull).
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return openStore(ctx, path, false, o)
}

// OpenReadOnly opens an existing event store for reading only, without the
// writer's lock, so that tools can read it while its writer runs. It returns
// an error wrapping uneventful.ErrNotFound if the file does not exist. The
// Store's Append and SaveCheckpoint fail.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	return openStore(ctx, path, true, options{sync: SyncFull})
}

func openStore(ctx context.Context, path string, readOnly bool, o options) (_ *Store, err error) {
	d, err := open(ctx, path, storeSchema, readOnly, o)
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	s := &Store{BusyTimeout: DefaultBusyTimeout, db: d}
	if readOnly {
		return s, nil
	}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.insertEvent, "INSERT INTO event (" + eventColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
		{&s.latestVersion, "SELECT coalesce(max(version), 0) FROM state WHERE domain = ? AND entity_id = ?"},
		{&s.insertState, "INSERT INTO state (domain, entity_id, version, timestamp, event_id, data) VALUES (?, ?, ?, ?, ?, ?)"},
	} {
		if *p.stmt, err = d.write.PrepareContext(ctx, p.query); err != nil {
			s.Close()
			return nil, fmt.Errorf("open event store: %w", d.translate(err, false))
		}
	}
	return s, nil
}

// Close closes the store's connections and releases the writer's lock. It
// is safe to call more than once.
func (s *Store) Close() error {
	for _, stmt := range []*sql.Stmt{s.insertEvent, s.latestVersion, s.insertState} {
		if stmt != nil {
			stmt.Close()
		}
	}
	return s.db.close()
}

// Append implements uneventful.Store. The expected-version check reads the
// stream's latest version inside the write transaction, and the state log's
// primary key (domain, entity_id, version) backs it up. An idempotency key
// of "" is stored as NULL: any number of events may have none.
//
// A record must be consistent: an accepted event has a state with the
// event's domain, entity id, version and event id, and a state belongs to
// an accepted event. Otherwise Append writes nothing and returns an error
// wrapping uneventful.ErrInvalid.
func (s *Store) Append(ctx context.Context, records []uneventful.Record) error {
	if len(records) == 0 {
		return nil
	}
	for i := range records {
		if err := checkRecord(&records[i]); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	seqs := make([]int64, len(records))
	err := s.db.update(ctx, s.BusyTimeout, func(tx *sql.Tx) error {
		a := appender{tx.StmtContext(ctx, s.insertEvent), tx.StmtContext(ctx, s.latestVersion), tx.StmtContext(ctx, s.insertState)}
		for i := range records {
			var err error
			if seqs[i], err = a.append(ctx, &records[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	for i, seq := range seqs {
		records[i].Event.Sequence = seq
	}
	return nil
}

// checkRecord checks that a record's state belongs to its event, so that
// the state log and the event log agree.
func checkRecord(r *uneventful.Record) error {
	e, st := &r.Event, r.State
	switch {
	case st == nil && e.Outcome == uneventful.Accepted:
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_record", "accepted event %s has no state", e.EventID)
	case st != nil && e.Outcome != uneventful.Accepted:
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_record", "event %s has a state but is %q, not accepted", e.EventID, e.Outcome)
	case st != nil && (st.Domain != e.Domain || st.EntityID != e.EntityID || st.Version != e.Version || st.EventID != e.EventID):
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_record", "the state of event %s (%s v%d) is %s v%d of event %s",
			e.EventID, e.Stream(), e.Version, st.Stream(), st.Version, st.EventID)
	}
	return nil
}

// appender holds Append's statements in its transaction.
type appender struct{ insertEvent, latestVersion, insertState *sql.Stmt }

// append writes one record's rows and returns its event's sequence.
func (a appender) append(ctx context.Context, r *uneventful.Record) (int64, error) {
	e := &r.Event
	res, err := a.insertEvent.ExecContext(ctx, eventArgs(e)...)
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
		return 0, &uneventful.Error{Kind: uneventful.ErrDuplicate, Code: "duplicate", Err: err,
			Message: fmt.Sprintf("event %s or its idempotency key %q is recorded already", e.EventID, e.IdempotencyKey)}
	}
	if err != nil {
		return 0, err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return seq, err
	}
	if r.State == nil {
		// A rejection is only true of the version it was decided
		// against: one decided on a stale state is a conflict too.
		var latest int64
		if err := a.latestVersion.QueryRowContext(ctx, e.Domain, e.EntityID).Scan(&latest); err != nil {
			return 0, err
		}
		if latest != e.Version {
			return 0, &uneventful.Error{Kind: uneventful.ErrConflict, Code: "conflict",
				Message: fmt.Sprintf("%s is at version %d, but the rejection was decided against version %d", e.Stream(), latest, e.Version)}
		}
		return seq, nil
	}
	st := r.State
	var latest int64
	err = a.latestVersion.QueryRowContext(ctx, st.Domain, st.EntityID).Scan(&latest)
	if err != nil {
		return 0, err
	}
	conflict := st.Version != latest+1
	if !conflict {
		_, err = a.insertState.ExecContext(ctx, st.Domain, st.EntityID, st.Version, formatTime(st.Timestamp), st.EventID, jsonText(st.Data))
		conflict = isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	}
	if conflict {
		return 0, &uneventful.Error{Kind: uneventful.ErrConflict, Code: "conflict", Err: err,
			Message: fmt.Sprintf("%s is at version %d, so version %d cannot be appended; expected %d", st.Stream(), latest, st.Version, latest+1)}
	}
	return seq, err
}

// Load implements uneventful.Store: it reads the latest row of the state
// log, never a replay. The error for an entity with no accepted change is
// an *uneventful.Error with code "not_found".
func (s *Store) Load(ctx context.Context, domain, entityID string) (uneventful.State, error) {
	st := uneventful.State{Domain: domain, EntityID: entityID}
	var ts string
	err := s.db.read.QueryRowContext(ctx, "SELECT version, timestamp, event_id, data FROM state WHERE domain = ? AND entity_id = ? ORDER BY version DESC LIMIT 1",
		domain, entityID).Scan(&st.Version, &ts, &st.EventID, (*[]byte)(&st.Data))
	if errors.Is(err, sql.ErrNoRows) {
		return st, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "%s %s does not exist", domain, entityID)
	}
	if err != nil {
		return st, fmt.Errorf("load %s: %w", st.Stream(), s.db.translate(err, false))
	}
	st.Timestamp, err = parseTime(ts)
	return st, err
}

// Lookup implements uneventful.Store.
func (s *Store) Lookup(ctx context.Context, idempotencyKey string) (uneventful.Event, error) {
	events, err := s.db.queryEvents(ctx, "SELECT sequence, "+eventColumns+" FROM event WHERE idempotency_key = ?", idempotencyKey)
	if err != nil {
		return uneventful.Event{}, fmt.Errorf("lookup: %w", err)
	}
	if len(events) == 0 {
		return uneventful.Event{}, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "no event is recorded with idempotency key %q", idempotencyKey)
	}
	return events[0], nil
}

// Events implements uneventful.Store. With EntityID set it reads one
// stream through the index on (domain, entity_id, version), in version
// order and sequence order among equal versions, which is sequence order
// whenever every rejection was decided against the stream's latest state,
// as a single writer does. AfterSequence applies in both cases; AfterVersion
// only with EntityID. Paging by AfterVersion is exact with AcceptedOnly;
// rejected attempts share the version they were decided against, so a page
// of all attempts may end inside such a run: page those by AfterSequence.
// A negative Limit is an error wrapping uneventful.ErrInvalid.
func (s *Store) Events(ctx context.Context, q uneventful.EventQuery) ([]uneventful.Event, error) {
	n, err := limit(q.Limit)
	if err != nil {
		return nil, err
	}
	accepted := ""
	if q.AcceptedOnly {
		accepted = " AND outcome = 'accepted'"
	}
	var events []uneventful.Event
	if q.EntityID != "" {
		// AfterVersion 0 means from the start, with the attempts rejected
		// against version 0, before the stream's first change.
		after := q.AfterVersion
		if after == 0 {
			after = -1
		}
		events, err = s.db.queryEvents(ctx, "SELECT sequence, "+eventColumns+" FROM event"+
			" WHERE domain = ? AND entity_id = ? AND version > ? AND sequence > ?"+accepted+" ORDER BY version, sequence LIMIT ?",
			q.Domain, q.EntityID, after, q.AfterSequence, n)
	} else {
		events, err = s.db.queryEvents(ctx, "SELECT sequence, "+eventColumns+" FROM event"+
			" WHERE sequence > ?"+accepted+" ORDER BY sequence LIMIT ?", q.AfterSequence, n)
	}
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return events, nil
}

// Records implements uneventful.Store: it joins each accepted event with
// its state row. A limit of 0 means DefaultLimit; a negative one is an error
// wrapping uneventful.ErrInvalid.
func (s *Store) Records(ctx context.Context, after int64, lim int) ([]uneventful.Record, error) {
	n, err := limit(lim)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, "SELECT e.sequence, e."+strings.ReplaceAll(eventColumns, ", ", ", e.")+", s.timestamp, s.data"+
		" FROM event e JOIN state s ON s.domain = e.domain AND s.entity_id = e.entity_id AND s.version = e.version"+
		" WHERE e.sequence > ? AND e.outcome = 'accepted' ORDER BY e.sequence LIMIT ?", after, n)
	if err != nil {
		return nil, fmt.Errorf("records: %w", s.db.translate(err, false))
	}
	defer rows.Close()
	var records []uneventful.Record
	for rows.Next() {
		var ts string
		var data []byte
		e, err := scanEvent(rows, &ts, &data)
		if err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		st := &uneventful.State{Domain: e.Domain, EntityID: e.EntityID, Version: e.Version, EventID: e.EventID, Data: data}
		if st.Timestamp, err = parseTime(ts); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		records = append(records, uneventful.Record{Event: e, State: st})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: %w", s.db.translate(err, false))
	}
	return records, nil
}

// States implements uneventful.Store. A limit of 0 means DefaultLimit; a
// negative one is an error wrapping uneventful.ErrInvalid.
func (s *Store) States(ctx context.Context, domain, entityID string, after int64, lim int) ([]uneventful.State, error) {
	n, err := limit(lim)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.read.QueryContext(ctx, "SELECT version, timestamp, event_id, data FROM state WHERE domain = ? AND entity_id = ? AND version > ? ORDER BY version LIMIT ?",
		domain, entityID, after, n)
	if err != nil {
		return nil, fmt.Errorf("states: %w", s.db.translate(err, false))
	}
	defer rows.Close()
	var states []uneventful.State
	for rows.Next() {
		st := uneventful.State{Domain: domain, EntityID: entityID}
		var ts string
		if err := rows.Scan(&st.Version, &ts, &st.EventID, (*[]byte)(&st.Data)); err != nil {
			return nil, fmt.Errorf("states: %w", err)
		}
		if st.Timestamp, err = parseTime(ts); err != nil {
			return nil, fmt.Errorf("states: %w", err)
		}
		states = append(states, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("states: %w", s.db.translate(err, false))
	}
	return states, nil
}

// Checkpoint implements uneventful.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.read.QueryRowContext(ctx, "SELECT position FROM checkpoint WHERE name = ?", name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", name, s.db.translate(err, false))
	}
	return pos, nil
}

// SaveCheckpoint implements uneventful.Store. It fails like Append when the
// database is locked.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	err := s.db.update(ctx, s.BusyTimeout, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO checkpoint (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position", name, position)
		return err
	})
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}
