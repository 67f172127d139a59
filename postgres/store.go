package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uneventful/uneventful"
)

var _ uneventful.Store = (*Store)(nil)

// Store is a domain's event log and state log in a PostgreSQL database,
// shared by any number of writers in any number of processes. It implements
// uneventful.Store; all its methods are safe for concurrent use.
type Store struct {
	db *db
}

// Open connects to the PostgreSQL database at url, a postgres:// URL or a
// key=value connection string, and creates or migrates the event store's
// tables in the first schema of its search_path. See the package
// documentation for the URL's parameters.
//
// Open fails with an error wrapping uneventful.ErrUnavailable when the
// server cannot be reached, and uneventful.ErrInvalid when the URL is not
// valid or its schema does not exist.
func Open(ctx context.Context, url string) (*Store, error) {
	return openStore(ctx, url, nil)
}

func openStore(ctx context.Context, url string, configure func(*pgxpool.Config)) (*Store, error) {
	d, err := open(ctx, url, storeSchema, configure)
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	return &Store{db: d}, nil
}

// Close closes the store's connections. It is safe to call more than once.
func (s *Store) Close() error { return s.db.close() }

// The statements of Append.
var (
	// insertStates inserts the batch's state rows; the primary key fails
	// it if a version is taken.
	insertStates = "INSERT INTO state (domain, entity_id, version, timestamp, event_id, data)" +
		" SELECT t.domain, t.entity_id, t.version, t.timestamp, t.event_id, t.data::json" +
		" FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS t(domain, entity_id, version, timestamp, event_id, data)"
	// checkVersions returns the streams whose first version in the batch
	// does not follow their latest version before it, with that version:
	// after insertStates succeeded, the version itself was free.
	checkVersions = "SELECT t.domain, t.entity_id, t.version, l.latest" +
		" FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(domain, entity_id, version)," +
		" LATERAL (SELECT coalesce(max(s.version), 0) AS latest FROM state s" +
		" WHERE s.domain = t.domain AND s.entity_id = t.entity_id AND s.version < t.version) AS l" +
		" WHERE l.latest <> t.version - 1"
	// checkRejected finds rejections decided against a version that is not
	// the stream's latest: decided on a stale state.
	checkRejected = "SELECT t.domain, t.entity_id, t.version, l.latest" +
		" FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(domain, entity_id, version)," +
		" LATERAL (SELECT coalesce(max(s.version), 0) AS latest FROM state s" +
		" WHERE s.domain = t.domain AND s.entity_id = t.entity_id) AS l" +
		" WHERE l.latest <> t.version"
	insertEvents = insertFromArrays("event", eventColumns, "RETURNING sequence, event_id")
)

// Append implements uneventful.Store. It is one transaction in two
// pipelined round trips, whatever the batch's size: the first inserts the
// state rows and checks versions, the second takes the order lock, inserts
// the events and commits (see the package documentation for why the lock).
//
// The expected-version check: the state log's primary key (domain,
// entity_id, version) fails a version that another writer took, and a
// check in the same transaction fails a version that does not follow the
// stream's latest one; both are errors wrapping uneventful.ErrConflict. A
// recorded event id or idempotency key is an error wrapping
// uneventful.ErrDuplicate. An idempotency key of "" is stored as NULL: any
// number of events may have none.
//
// A record must be consistent: an accepted event has a state with the
// event's domain, entity id, version and event id, and a state belongs to
// an accepted event. Otherwise Append writes nothing and returns an error
// wrapping uneventful.ErrInvalid.
//
// When the connection is lost before COMMIT was sent, Append tries once
// more on a new connection. When it is lost after, Append finds out on
// another connection whether the transaction committed, and returns nil or
// an error wrapping uneventful.ErrUnavailable accordingly, or, if it cannot
// find out in time, an error wrapping uneventful.ErrTimeout.
func (s *Store) Append(ctx context.Context, records []uneventful.Record) error {
	if len(records) == 0 {
		return nil
	}
	for i := range records {
		if err := checkRecord(&records[i]); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	first, err := checkBatchVersions(records)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}

	var events eventArrays
	var states struct {
		domain, entityID, timestamp, eventID []string
		version                              []int64
		data                                 []*string
	}
	for i := range records {
		events.add(&records[i].Event)
	}
	// Insert the state rows in one global order, so that two writers'
	// transactions never wait for each other's state_pkey entries in a
	// cycle (a deadlock).
	order := make([]int, 0, len(records))
	for i := range records {
		if records[i].State != nil {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := records[a].State, records[b].State
		return cmp.Or(cmp.Compare(x.Domain, y.Domain), cmp.Compare(x.EntityID, y.EntityID), cmp.Compare(x.Version, y.Version))
	})
	for _, i := range order {
		if st := records[i].State; st != nil {
			states.domain = append(states.domain, st.Domain)
			states.entityID = append(states.entityID, st.EntityID)
			states.version = append(states.version, st.Version)
			states.timestamp = append(states.timestamp, formatTime(st.Timestamp))
			states.eventID = append(states.eventID, st.EventID)
			states.data = append(states.data, jsonText(st.Data))
		}
	}
	seqs := make(map[string]int64, len(records)) // by event id
	t := txn{
		last: func(b *pgx.Batch) { b.Queue(insertEvents, events.args()...) },
		read: func(br pgx.BatchResults) error {
			clear(seqs)
			rows, err := br.Query()
			if err != nil {
				return s.duplicate(err)
			}
			defer rows.Close()
			for rows.Next() {
				var seq int64
				var id string
				if err := rows.Scan(&seq, &id); err != nil {
					return err
				}
				seqs[id] = seq
			}
			return s.duplicate(rows.Err())
		},
		recover: func(ctx context.Context, xid string) error {
			clear(seqs)
			return s.db.read(ctx, func(c *pgxpool.Conn) error {
				rows, err := c.Query(ctx, "SELECT sequence, event_id FROM event WHERE event_id = ANY($1)", events.eventID)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var seq int64
					var id string
					if err := rows.Scan(&seq, &id); err != nil {
						return err
					}
					seqs[id] = seq
				}
				return rows.Err()
			})
		},
	}
	rejected := rejectedVersions(records)
	if len(states.version) > 0 || len(rejected.version) > 0 {
		t.first = func(b *pgx.Batch) {
			if len(states.version) > 0 {
				b.Queue(insertStates, states.domain, states.entityID, states.version, states.timestamp, states.eventID, states.data)
				b.Queue(checkVersions, first.domain, first.entityID, first.version)
			}
			if len(rejected.version) > 0 {
				b.Queue(checkRejected, rejected.domain, rejected.entityID, rejected.version)
			}
		}
		t.check = func(br pgx.BatchResults) error {
			if len(states.version) > 0 {
				if _, err := br.Exec(); err != nil {
					if pe, ok := uniqueViolation(err); ok && pe.ConstraintName == "state_pkey" {
						return &uneventful.Error{Kind: uneventful.ErrConflict, Code: "conflict", Err: err,
							Message: "another writer took a version first: " + pe.Detail}
					}
					return err
				}
				if err := conflicts(br, "%s is at version %[2]d, so version %[3]d cannot be appended: it must follow %[2]d"); err != nil {
					return err
				}
			}
			if len(rejected.version) > 0 {
				return conflicts(br, "%s is at version %[2]d, but a rejection was decided against version %[3]d")
			}
			return nil
		}
	}
	if err := s.db.write(ctx, t); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	// Check before writing back: a sequence out of batch order would break
	// every reader that pages by sequence.
	var last int64
	for i := range records {
		seq, ok := seqs[records[i].Event.EventID]
		if !ok || seq <= last {
			return &uneventful.Error{Kind: uneventful.ErrInternal, Code: "internal",
				Message: fmt.Sprintf("append: %s committed the batch but event %d of %d got sequence %d after %d", s.db.name, i, len(records), seq, last)}
		}
		last = seq
	}
	for i := range records {
		records[i].Event.Sequence = seqs[records[i].Event.EventID]
	}
	return nil
}

// duplicate translates a unique violation of the event log into an error
// wrapping uneventful.ErrDuplicate.
func (s *Store) duplicate(err error) error {
	if pe, ok := uniqueViolation(err); ok && (pe.ConstraintName == "event_event_id_key" || pe.ConstraintName == "event_idempotency_key_key") {
		return &uneventful.Error{Kind: uneventful.ErrDuplicate, Code: "duplicate", Err: err,
			Message: "an event of the batch is recorded already: " + pe.Detail}
	}
	return err
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

// firstVersions are the first version of each stream in a batch.
type firstVersions struct {
	domain, entityID []string
	version          []int64
}

// checkBatchVersions checks that each stream's versions in the batch are
// consecutive and positive, and returns each stream's first, which the
// database checks against the stream's latest.
func checkBatchVersions(records []uneventful.Record) (firstVersions, error) {
	var first firstVersions
	type key struct{ domain, entityID string }
	prev := map[key]int64{}
	for i := range records {
		st := records[i].State
		if st == nil {
			continue
		}
		k := key{st.Domain, st.EntityID}
		p, seen := prev[k]
		switch {
		case !seen && st.Version < 1:
			return first, uneventful.Errorf(uneventful.ErrConflict, "conflict", "%s cannot take version %d; versions start at 1", st.Stream(), st.Version)
		case seen && st.Version != p+1:
			return first, uneventful.Errorf(uneventful.ErrConflict, "conflict", "the batch appends version %d of %s after version %d; expected %d",
				st.Version, st.Stream(), p, p+1)
		case !seen:
			first.domain = append(first.domain, st.Domain)
			first.entityID = append(first.entityID, st.EntityID)
			first.version = append(first.version, st.Version)
		}
		prev[k] = st.Version
	}
	return first, nil
}

// Load implements uneventful.Store: it reads the latest row of the state
// log on its primary key, never a replay. The error for an entity with no
// accepted change is an *uneventful.Error with code "not_found".
func (s *Store) Load(ctx context.Context, domain, entityID string) (uneventful.State, error) {
	st := uneventful.State{Domain: domain, EntityID: entityID}
	var ts string
	err := s.db.read(ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT version, timestamp, event_id, data FROM state WHERE domain = $1 AND entity_id = $2 ORDER BY version DESC LIMIT 1",
			domain, entityID).Scan(&st.Version, &ts, &st.EventID, (*[]byte)(&st.Data))
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return st, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "%s %s does not exist", domain, entityID)
	}
	if err != nil {
		return st, fmt.Errorf("load %s: %w", st.Stream(), err)
	}
	st.Timestamp, err = parseTime(ts)
	return st, err
}

// eventSelect selects "sequence, " + eventColumns from the event log.
var eventSelect = "SELECT sequence, " + columnList(eventColumns, "") + " FROM event"

// Lookup implements uneventful.Store.
func (s *Store) Lookup(ctx context.Context, idempotencyKey string) (uneventful.Event, error) {
	events, err := s.db.queryEvents(ctx, eventSelect+" WHERE idempotency_key = $1", idempotencyKey)
	if err != nil {
		return uneventful.Event{}, fmt.Errorf("lookup: %w", err)
	}
	if len(events) == 0 {
		return uneventful.Event{}, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "no event is recorded with idempotency key %q", idempotencyKey)
	}
	return events[0], nil
}

// Events implements uneventful.Store. The filters combine. With EntityID
// set it reads one stream through the index on (domain, entity_id, version,
// sequence), in version order and sequence order among equal versions,
// which is sequence order whenever every rejection was decided against the
// stream's latest state. Without EntityID it reads in sequence order, of
// one domain if Domain is set (a database may hold several domains' logs);
// AfterVersion applies only with EntityID. Paging by AfterVersion is exact
// with AcceptedOnly; rejected attempts share the version they were decided
// against, so a page of all attempts may end inside such a run: page those
// by AfterSequence. A negative Limit is an error wrapping
// uneventful.ErrInvalid.
//
// Paging by AfterSequence never skips an event that commits later: Append
// commits in sequence order.
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
	switch {
	case q.EntityID != "":
		// AfterVersion 0 means from the start, with the attempts rejected
		// against version 0, before the stream's first change.
		after := q.AfterVersion
		if after == 0 {
			after = -1
		}
		events, err = s.db.queryEvents(ctx, eventSelect+
			" WHERE domain = $1 AND entity_id = $2 AND version > $3 AND sequence > $4"+accepted+" ORDER BY version, sequence LIMIT $5",
			q.Domain, q.EntityID, after, q.AfterSequence, n)
	case q.Domain != "":
		events, err = s.db.queryEvents(ctx, eventSelect+
			" WHERE sequence > $1 AND domain = $2"+accepted+" ORDER BY sequence LIMIT $3", q.AfterSequence, q.Domain, n)
	default:
		events, err = s.db.queryEvents(ctx, eventSelect+
			" WHERE sequence > $1"+accepted+" ORDER BY sequence LIMIT $2", q.AfterSequence, n)
	}
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return events, nil
}

// Records implements uneventful.Store: it joins each accepted event with
// its state row. A limit of 0 means DefaultLimit; a negative one is an error
// wrapping uneventful.ErrInvalid. Like Events, it never skips a record that
// commits later.
func (s *Store) Records(ctx context.Context, after int64, lim int) ([]uneventful.Record, error) {
	n, err := limit(lim)
	if err != nil {
		return nil, err
	}
	var records []uneventful.Record
	err = s.db.read(ctx, func(c *pgxpool.Conn) error {
		records = records[:0]
		rows, err := c.Query(ctx, "SELECT e.sequence, "+columnList(eventColumns, "e.")+", s.timestamp, s.data"+
			" FROM event e JOIN state s ON s.domain = e.domain AND s.entity_id = e.entity_id AND s.version = e.version"+
			" WHERE e.sequence > $1 AND e.outcome = 'accepted' ORDER BY e.sequence LIMIT $2", after, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ts string
			var data []byte
			e, err := scanEvent(rows, &ts, &data)
			if err != nil {
				return err
			}
			st := &uneventful.State{Domain: e.Domain, EntityID: e.EntityID, Version: e.Version, EventID: e.EventID, Data: data}
			if st.Timestamp, err = parseTime(ts); err != nil {
				return err
			}
			records = append(records, uneventful.Record{Event: e, State: st})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
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
	var states []uneventful.State
	err = s.db.read(ctx, func(c *pgxpool.Conn) error {
		states = states[:0]
		rows, err := c.Query(ctx, "SELECT version, timestamp, event_id, data FROM state WHERE domain = $1 AND entity_id = $2 AND version > $3 ORDER BY version LIMIT $4",
			domain, entityID, after, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			st := uneventful.State{Domain: domain, EntityID: entityID}
			var ts string
			if err := rows.Scan(&st.Version, &ts, &st.EventID, (*[]byte)(&st.Data)); err != nil {
				return err
			}
			if st.Timestamp, err = parseTime(ts); err != nil {
				return err
			}
			states = append(states, st)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("states: %w", err)
	}
	return states, nil
}

// Checkpoint implements uneventful.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.read(ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT position FROM checkpoint WHERE name = $1", name).Scan(&pos)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint implements uneventful.Store: an upsert, committed durably.
// Saving is idempotent, so a save that lost its connection is tried once
// more.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	err := s.db.read(ctx, func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO checkpoint (name, position) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET position = excluded.position",
			name, position)
		return err
	})
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}

// conflicts reads a version check's rows: any row is a conflict, described
// by format with the stream, the latest version and the version at issue.
func conflicts(br pgx.BatchResults, format string) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var domain, entityID string
		var version, latest int64
		if err := rows.Scan(&domain, &entityID, &version, &latest); err != nil {
			return err
		}
		return uneventful.Errorf(uneventful.ErrConflict, "conflict", format, uneventful.StreamName(domain, entityID), latest, version)
	}
	return rows.Err()
}

// rejectedVersions lists, for each stream with rejections but no accepted
// change in the batch, the version its rejections were decided against.
// Where the batch also appends to the stream, its version check covers the
// rejections: the writer decided them on the same chain of states.
func rejectedVersions(records []uneventful.Record) firstVersions {
	type key struct{ domain, entityID string }
	appended := map[key]bool{}
	for i := range records {
		if st := records[i].State; st != nil {
			appended[key{st.Domain, st.EntityID}] = true
		}
	}
	var out firstVersions
	seen := map[key]bool{}
	for i := range records {
		e := &records[i].Event
		k := key{e.Domain, e.EntityID}
		if records[i].State != nil || appended[k] || seen[k] {
			continue
		}
		seen[k] = true
		out.domain = append(out.domain, e.Domain)
		out.entityID = append(out.entityID, e.EntityID)
		out.version = append(out.version, e.Version)
	}
	return out
}
