package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/uneventful/uneventful"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultBusyTimeout is how long a write waits for a database lock held by
// another connection before it fails with an error wrapping
// uneventful.ErrUnavailable.
const DefaultBusyTimeout = 2 * time.Second

// DefaultLimit is the page size of a query whose limit is 0.
const DefaultLimit = 100

// Connection parameters (see modernc.org/sqlite's Driver). Every connection
// waits for locks and syncs every commit to disk (synchronous=FULL, so a
// commit is durable once it returns; WithSync(SyncOff) changes that for the
// write connection, for benchmarks); the write connection sets WAL mode, so
// readers never block the writer, and starts every transaction with BEGIN
// IMMEDIATE, so it takes the write lock up front instead of failing on a lock
// upgrade halfway through, and cuts the WAL file back to WALSizeLimit after
// a reader let it grow.
var readParams = "?_busy_timeout=" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) +
	"&_synchronous=FULL&_query_only=1"

// writeParams are the write connection's parameters with the given sync.
func writeParams(sync Sync) string {
	return "?_busy_timeout=" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) +
		"&_journal_mode=WAL&_synchronous=" + string(sync) + "&_txlock=immediate" +
		"&_pragma=journal_size_limit(" + fmt.Sprint(WALSizeLimit) + ")"
}

// WALSizeLimit is the size in bytes the write-ahead log file is cut back to
// when SQLite next restarts the log from its beginning (PRAGMA
// journal_size_limit). SQLite checkpoints the log once it passes 1000 pages
// (about 4 MiB), but cannot checkpoint past a snapshot that another process
// still reads, e.g. a sqlite3 shell inside BEGIN: the log then grows with
// every commit for as long as the snapshot is held, and without a limit its
// file would keep that size for good after the reader lets go. Twice the
// checkpoint size, so that normal operation never shrinks and regrows it.
const WALSizeLimit = 8 << 20

// timeLayout is how timestamps are stored: UTC with nanoseconds, fixed
// width, so that text order is time order and a timestamp reads back
// exactly.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

//go:embed migrations
var migrations embed.FS

// schema names a kind of database file: its migrations and its SQLite
// application_id, which tells an event store from a history store.
type schema struct {
	kind  string // "event store", for messages
	dir   string // under migrations
	appID int32
}

var (
	storeSchema   = schema{kind: "event store", dir: "migrations/store", appID: 0x75657673}     // "uevs"
	historySchema = schema{kind: "history store", dir: "migrations/history", appID: 0x75656873} // "uehs"
)

// db is a database file opened as one write connection and a pool of read
// connections.
type db struct {
	path  string
	name  string   // e.g. "the event store data/wallet.db", for messages
	write *sql.DB  // nil when opened read-only
	read  *sql.DB  // query_only connections
	lock  *os.File // the writer's lock on path + ".lock"; nil when read-only

	closeOnce sync.Once
	closeErr  error
}

// open opens the database file at path. A writer takes the file's lock,
// creates the file if needed and migrates it to the latest schema; a reader
// needs a file that a writer has created.
func open(ctx context.Context, path string, s schema, readOnly bool, o options) (_ *db, err error) {
	d := &db{path: path, name: "the " + s.kind + " " + path}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if readOnly {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "%s does not exist", d.name)
		}
	} else {
		if d.lock, err = lock(path); err != nil {
			return nil, err
		}
		if d.write, err = sql.Open("sqlite", path+writeParams(o.sync)); err != nil {
			return nil, err
		}
		d.write.SetMaxOpenConns(1)
		if err := d.migrate(ctx, s); err != nil {
			return nil, err
		}
	}
	if d.read, err = sql.Open("sqlite", path+readParams); err != nil {
		return nil, err
	}
	d.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	if readOnly {
		if _, err := d.schemaVersion(ctx, d.read, s, true); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// migrations returns the schema's migration files in the order they apply;
// the n-th sets PRAGMA user_version to n.
func (s schema) migrations() []string {
	names, err := fs.Glob(migrations, s.dir+"/*.sql")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	return names
}

// schemaVersion returns the file's PRAGMA user_version after checking that
// the file is this kind of database and not newer than this program; with
// current it must be the latest version.
func (d *db) schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, s schema, current bool) (int, error) {
	var version int
	var appID int32
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, d.translate(fmt.Errorf("read schema version: %w", err), false)
	}
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, d.translate(fmt.Errorf("read application id: %w", err), false)
	}
	latest := len(s.migrations())
	switch {
	case version > 0 && appID != s.appID:
		return 0, fmt.Errorf("%s is not an uneventful %s (its application_id is %#x)", d.path, s.kind, appID)
	case version > latest:
		return 0, fmt.Errorf("%s has schema version %d but this program knows only up to %d; upgrade uneventful", d.name, version, latest)
	case current && version < latest:
		return 0, fmt.Errorf("%s has schema version %d, want %d; open it for writing once (start its writer) to create or migrate it", d.name, version, latest)
	}
	return version, nil
}

// migrate applies the migrations the file lacks, all in one transaction.
func (d *db) migrate(ctx context.Context, s schema) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return d.translate(fmt.Errorf("migrate: %w", err), true)
	}
	defer tx.Rollback()
	version, err := d.schemaVersion(ctx, tx, s, false)
	if err != nil {
		return err
	}
	names := s.migrations()
	if version == len(names) {
		return nil
	}
	for i, name := range names[version:] {
		script, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(script)); err != nil {
			return d.translate(fmt.Errorf("migrate %s: %w", name, err), true)
		}
		// PRAGMA takes no parameters; both values are integers.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+i+1)); err != nil {
			return d.translate(fmt.Errorf("migrate %s: %w", name, err), true)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", s.appID)); err != nil {
		return d.translate(fmt.Errorf("migrate: %w", err), true)
	}
	return d.translate(tx.Commit(), true)
}

// update runs fn in one write transaction, begun with BEGIN IMMEDIATE on the
// write connection after waiting up to busy for the database lock, and
// commits it durably. Every error that means "retry later" wraps
// uneventful.ErrUnavailable.
func (d *db) update(ctx context.Context, busy time.Duration, fn func(*sql.Tx) error) error {
	if d.write == nil {
		return &uneventful.Error{Kind: uneventful.ErrInternal, Code: "read_only",
			Message: d.name + " was opened read-only; it cannot be written"}
	}
	conn, err := d.write.Conn(ctx)
	if err != nil {
		return d.translate(err, true)
	}
	defer conn.Close()
	// Set on every write rather than once: the pool replaces a connection
	// that a cancelled context interrupted, and the new one has the DSN's
	// default.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", max(busy.Milliseconds(), 0))); err != nil {
		return d.translate(err, true)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return d.translate(err, true)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return d.translate(err, true)
	}
	return d.translate(tx.Commit(), true)
}

// translate turns SQLite errors that mean "retry later" into errors wrapping
// uneventful.ErrUnavailable and returns other errors as they are. write says
// whether the failed call was a write, which then wrote nothing.
func (d *db) translate(err error, write bool) error {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	var msg string
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		msg = d.name + " is locked by another process"
	case sqlite3.SQLITE_FULL:
		msg = "the disk holding " + d.name + " is full"
	case sqlite3.SQLITE_IOERR:
		msg = d.name + " cannot be read or written (I/O error)"
	default:
		return err
	}
	if write {
		msg += "; nothing was written, retry"
	} else {
		msg += "; retry"
	}
	return &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "unavailable", Message: msg, Err: err}
}

// close closes both pools, then releases the lock, so that no other writer
// starts while this one still has a connection.
func (d *db) close() error {
	d.closeOnce.Do(func() {
		var errs []error
		for _, p := range []*sql.DB{d.write, d.read} {
			if p != nil {
				errs = append(errs, p.Close())
			}
		}
		if d.lock != nil {
			errs = append(errs, unlock(d.lock))
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// isConstraint reports whether err is a SQLite constraint violation with the
// extended result code code.
func isConstraint(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}

// limit returns the page size for a requested limit: 0 means DefaultLimit.
func limit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, uneventful.Errorf(uneventful.ErrInvalid, "invalid_limit", "limit %d is negative; want 0 (meaning %d) or more", n, DefaultLimit)
	case n == 0:
		return DefaultLimit, nil
	}
	return n, nil
}

// eventColumns are an event's columns in the event and history tables,
// in the order of eventArgs and scanEvent.
const eventColumns = "event_id, correlation_id, causation_id, timestamp, source_name, source_id, type_name, " +
	"domain, entity_id, command, data, idempotency_key, request_hash, version, outcome, reason, message, reply"

// eventArgs returns an event's values for eventColumns.
func eventArgs(e *uneventful.Event) []any {
	return []any{e.EventID, e.CorrelationID, e.CausationID, formatTime(e.Timestamp), e.SourceName, e.SourceID, e.TypeName,
		e.Domain, e.EntityID, e.Command, jsonText(e.Data), nullText(e.IdempotencyKey), e.RequestHash, e.Version,
		string(e.Outcome), e.Reason, e.Message, jsonText(e.Reply)}
}

// scanEvent scans "sequence, " + eventColumns, then into extra the columns
// that follow.
func scanEvent(rows *sql.Rows, extra ...any) (uneventful.Event, error) {
	var e uneventful.Event
	var ts string
	var key sql.NullString
	err := rows.Scan(append([]any{&e.Sequence, &e.EventID, &e.CorrelationID, &e.CausationID, &ts, &e.SourceName, &e.SourceID, &e.TypeName,
		&e.Domain, &e.EntityID, &e.Command, (*[]byte)(&e.Data), &key, &e.RequestHash, &e.Version,
		(*string)(&e.Outcome), &e.Reason, &e.Message, (*[]byte)(&e.Reply)}, extra...)...)
	if err != nil {
		return e, err
	}
	e.IdempotencyKey = key.String
	e.Timestamp, err = parseTime(ts)
	return e, err
}

// queryEvents runs a query for "sequence, " + eventColumns.
func (d *db) queryEvents(ctx context.Context, query string, args ...any) ([]uneventful.Event, error) {
	rows, err := d.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, d.translate(err, false)
	}
	defer rows.Close()
	var events []uneventful.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, d.translate(rows.Err(), false)
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// jsonText stores JSON as text, and no JSON as NULL.
func jsonText(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// nullText stores an empty string as NULL, which a UNIQUE column allows
// any number of times.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
