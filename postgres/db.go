package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uneventful/uneventful"
)

// DefaultLimit is the page size of a query whose limit is 0.
const DefaultLimit = 100

// Advisory lock keys. Advisory locks are per database, not per schema.
const (
	// migrateLock is held by the transaction that migrates a schema, so
	// that writers starting at once migrate it once.
	migrateLock int64 = 0x75656d67 // "uemg"
	// The order lock of a table is the tag in the high 32 bits and the
	// table's oid in the low 32 bits: one lock per event (or history)
	// table, the same in every process that writes it, so that stores in
	// different schemas of one database do not wait for each other.
	storeLockTag   int64 = 0x75657673 // "uevs", as SQLite's application_id
	historyLockTag int64 = 0x75656873 // "uehs"
)

// outcomeTimeout bounds how long a write that lost its connection while
// committing spends finding out whether it committed.
const outcomeTimeout = 10 * time.Second

// timeLayout is how timestamps are stored: UTC with nanoseconds, fixed
// width, so that text order is time order and a timestamp reads back
// exactly. timestamptz keeps only microseconds.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

//go:embed migrations
var migrations embed.FS

// schema names a set of tables: its migrations, and the table whose
// sequence the order lock guards.
type schema struct {
	kind    string // "event store", for messages and schema_version
	dir     string // under migrations
	table   string // the table with the sequence readers page by
	lockTag int64
}

var (
	storeSchema   = schema{kind: "event store", dir: "migrations/store", table: "event", lockTag: storeLockTag}
	historySchema = schema{kind: "history store", dir: "migrations/history", table: "history", lockTag: historyLockTag}
)

// db is a pool of connections to the database that holds a schema's tables.
type db struct {
	pool *pgxpool.Pool
	name string // e.g. "the event store in PostgreSQL at 127.0.0.1:5432/test", for messages
	// orderLock is the key of the transaction-scoped advisory lock that a
	// write takes right before its rows get their sequences; see doc.go.
	orderLock int64
}

// open connects to the database at url and migrates the schema's tables to
// the latest version. configure, if not nil, adjusts the pool's
// configuration (tests count round trips with it).
func open(ctx context.Context, url string, s schema, configure func(*pgxpool.Config)) (*db, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message does not repeat the password.
		return nil, &uneventful.Error{Kind: uneventful.ErrInvalid, Code: "invalid_url", Err: err,
			Message: "the PostgreSQL URL is not valid; want postgres://user@host:port/database?search_path=schema"}
	}
	params := cfg.ConnConfig.RuntimeParams
	// Acknowledged means durable: a commit returns once its WAL is flushed
	// (and, with synchronous standbys, replicated), whatever the server's
	// or the URL's default.
	params["synchronous_commit"] = "on"
	if params["application_name"] == "" {
		params["application_name"] = "uneventful"
	}
	if configure != nil {
		configure(cfg)
	}
	where := cfg.ConnConfig.Database
	if h := cfg.ConnConfig.Host; h != "" {
		where = net.JoinHostPort(h, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + where
	}
	if sp := params["search_path"]; sp != "" {
		where += " (search_path " + sp + ")"
	}
	d := &db{name: "the " + s.kind + " in PostgreSQL at " + where}
	if d.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, d.translate(ctx, err, "retry")
	}
	if err := d.migrate(ctx, s); err != nil {
		d.pool.Close()
		return nil, err
	}
	return d, nil
}

// close closes the pool; it is safe to call more than once.
func (d *db) close() error {
	d.pool.Close()
	return nil
}

// migrations returns the schema's migration files in the order they apply;
// the n-th brings the schema to version n.
func (s schema) migrations() []string {
	names, err := fs.Glob(migrations, s.dir+"/*.sql")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	return names
}

// migrate applies the migrations the schema lacks, all in one transaction
// that holds the migration lock, and reads the order lock's key. The
// schema_version table records each kind's version.
func (d *db) migrate(ctx context.Context, s schema) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return d.translate(ctx, fmt.Errorf("connect: %w", err), "retry")
	}
	defer conn.Release()
	fail := func(what string, err error) error {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3F000" { // invalid_schema_name
			return &uneventful.Error{Kind: uneventful.ErrInvalid, Code: "invalid_schema", Err: err,
				Message: fmt.Sprintf("cannot create %s: no schema of its search_path exists; create the schema first", d.name)}
		}
		return d.translate(ctx, fmt.Errorf("migrate %s: %s: %w", d.name, what, err), "retry")
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A transaction's lock: released at commit or rollback, and when the
	// process dies.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return fail("take the migration lock", err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_version (kind TEXT PRIMARY KEY, version INTEGER NOT NULL)"); err != nil {
		return fail("create schema_version", err)
	}
	var version int
	err = tx.QueryRow(ctx, "SELECT version FROM schema_version WHERE kind = $1", s.kind).Scan(&version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fail("read schema version", err)
	}
	names := s.migrations()
	if version > len(names) {
		return fmt.Errorf("%s has schema version %d but this program knows only up to %d; upgrade uneventful", d.name, version, len(names))
	}
	for _, name := range names[version:] {
		script, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		// Without arguments pgx uses the simple protocol, which runs
		// every statement of the script.
		if _, err := tx.Exec(ctx, string(script)); err != nil {
			return fail(name, err)
		}
	}
	if version < len(names) {
		if _, err := tx.Exec(ctx, "INSERT INTO schema_version (kind, version) VALUES ($1, $2) ON CONFLICT (kind) DO UPDATE SET version = excluded.version",
			s.kind, len(names)); err != nil {
			return fail("record schema version", err)
		}
	}
	var oid int64
	if err := tx.QueryRow(ctx, "SELECT $1::regclass::oid::bigint", s.table).Scan(&oid); err != nil {
		return fail("find table "+s.table, err)
	}
	d.orderLock = s.lockTag<<32 | oid
	if err := tx.Commit(ctx); err != nil {
		return fail("commit", err)
	}
	return nil
}

// txn is a write transaction, sent in two pipelined round trips:
//
//	BEGIN; SELECT pg_current_xact_id(); <first>     -- then check
//	SELECT pg_advisory_xact_lock(orderLock); <last>; COMMIT
//
// The transaction id lets a write that lost its connection after sending
// COMMIT find out whether it committed.
type txn struct {
	// first queues what runs before the order lock; check reads their
	// results and returns an error to roll back.
	first func(b *pgx.Batch)
	check func(br pgx.BatchResults) error
	// last queues what runs under the order lock, before COMMIT; read
	// reads their results.
	last func(b *pgx.Batch)
	read func(br pgx.BatchResults) error
	// recover is called instead of read when the connection was lost
	// during the commit and the transaction turned out to have committed;
	// it reads back the results on another connection. xid is the
	// transaction's id (xid8, as text).
	recover func(ctx context.Context, xid string) error
}

// write runs t, and once more on a fresh connection if the connection was
// lost while nothing was written, as after a server restart or
// pg_terminate_backend. An error wraps uneventful.ErrUnavailable when
// nothing was written, uneventful.ErrTimeout when that is not known, and is
// t's own error (such as a conflict) otherwise.
func (d *db) write(ctx context.Context, t txn) error {
	for attempt := 1; ; attempt++ {
		err, retry := d.writeOnce(ctx, t)
		if err == nil || !retry || attempt == 2 || ctx.Err() != nil {
			return err
		}
	}
}

// writeOnce runs t once. retry says that nothing was written and the
// connection was lost, so that another attempt may succeed at once.
func (d *db) writeOnce(ctx context.Context, t txn) (err error, retry bool) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		// Acquire tried a fresh connection already.
		return d.translate(ctx, err, "nothing was written, retry"), false
	}
	defer conn.Release()
	pid := conn.Conn().PgConn().PID()

	var xid string
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE")
	b.Queue("SELECT pg_current_xact_id()::text")
	if t.first != nil {
		t.first(b)
	}
	err = sendBatch(ctx, conn, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&xid); err != nil {
			return err
		}
		if t.check != nil {
			return t.check(br)
		}
		return nil
	})
	if err != nil {
		// No COMMIT was sent: nothing was written.
		lost := d.rollback(ctx, conn)
		return d.translate(ctx, err, "nothing was written, retry"), lost
	}

	b = &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", d.orderLock)
	t.last(b)
	b.Queue("COMMIT")
	err = sendBatch(ctx, conn, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := t.read(br); err != nil {
			return err
		}
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("COMMIT answered %q", tag)
		}
		return err
	})
	if err == nil {
		return nil, false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.SeverityUnlocalized == "ERROR" && !conn.Conn().IsClosed() {
		// The server failed a statement, so it skipped COMMIT or COMMIT
		// failed: the transaction rolled back.
		d.rollback(ctx, conn)
		return d.translate(ctx, err, "nothing was written, retry"), false
	}
	// The connection broke, or the context ended, after COMMIT may have
	// reached the server.
	closed := conn.Conn().IsClosed()
	conn.Release() // the pool destroys it: its transaction is not idle
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeTimeout)
	defer cancel()
	status, serr := d.outcome(rctx, xid, pid)
	switch status {
	case "committed":
		if rerr := d.persist(rctx, func() error { return t.recover(rctx, xid) }); rerr != nil {
			return &uneventful.Error{Kind: uneventful.ErrTimeout, Code: "timeout", Err: errors.Join(err, rerr),
				Message: d.name + " committed the write but lost the connection before answering, and the result could not be read back; " +
					"retry with the same idempotency keys and event ids: what was written is reported as a duplicate"}, false
		}
		return nil, false
	case "aborted":
		return d.translate(ctx, err, "nothing was written, retry"), d.lost(ctx, err, closed)
	}
	return &uneventful.Error{Kind: uneventful.ErrTimeout, Code: "timeout", Err: errors.Join(err, serr),
		Message: d.name + " lost the connection while committing, and whether the write committed could not be learned; " +
			"retry with the same idempotency keys and event ids: what was written is reported as a duplicate"}, false
}

// persist calls fn, a read, until it succeeds or ctx ends, so that a write
// that lost its connection learns its outcome also while the server
// restarts.
func (d *db) persist(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sendBatch sends b on conn as one pipeline and reads its results with
// read.
func sendBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	br := conn.SendBatch(ctx, b)
	err := read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// rollback ends conn's failed transaction, if the connection is still up,
// so that the pool can reuse it; it reports whether the connection was lost.
func (d *db) rollback(ctx context.Context, conn *pgxpool.Conn) (lost bool) {
	if !conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Exec(ctx, "ROLLBACK") // if it fails, Release destroys the connection
	}
	return d.lost(ctx, nil, conn.Conn().IsClosed())
}

// lost reports whether a connection was lost, not closed because the
// context ended, and if so closes the pool's other connections: what broke
// one (a restart, a failover, pg_terminate_backend) has usually broken all.
func (d *db) lost(ctx context.Context, err error, closed bool) bool {
	if ctx.Err() != nil || !(closed || connectionError(err)) {
		return false
	}
	d.pool.Reset()
	return true
}

// outcome finds out whether transaction xid, begun by backend pid on a
// connection that was lost during its COMMIT, committed or aborted; it
// returns "" if that cannot be known before ctx ends. A backend that still
// runs the transaction (say, it waits for the order lock) would commit it
// later, so it is terminated, which makes the outcome final.
func (d *db) outcome(ctx context.Context, xid string, pid uint32) (string, error) {
	if xid == "" {
		return "", errors.New("no transaction id")
	}
	var status *string
	terminated := false
	err := d.persist(ctx, func() error {
		err := d.read(ctx, func(c *pgxpool.Conn) error {
			return c.QueryRow(ctx, "SELECT pg_xact_status($1::xid8)", xid).Scan(&status)
		})
		switch {
		case err != nil:
			return err
		case status == nil || *status != "in progress":
			return nil
		case !terminated:
			err = d.read(ctx, func(c *pgxpool.Conn) error {
				_, err := c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_xid = $2::xid8::xid",
					int32(pid), xid)
				return err
			})
			terminated = err == nil
		}
		return errors.New("transaction " + xid + " is still in progress")
	})
	switch {
	case err != nil:
		return "", err
	case status == nil:
		return "", fmt.Errorf("transaction %s is too old to look up", xid)
	}
	return *status, nil
}

// read runs fn, a read or an idempotent write, on a pooled connection, and
// once more on a fresh one if the first was lost: it is safe to repeat.
func (d *db) read(ctx context.Context, fn func(c *pgxpool.Conn) error) error {
	for attempt := 1; ; attempt++ {
		err, lost := d.readOnce(ctx, fn)
		if err == nil {
			return nil
		}
		if !lost || attempt == 2 {
			return d.translate(ctx, err, "retry")
		}
	}
}

func (d *db) readOnce(ctx context.Context, fn func(c *pgxpool.Conn) error) (err error, lost bool) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err, false
	}
	defer conn.Release()
	if err := fn(conn); err != nil {
		return err, d.lost(ctx, err, conn.Conn().IsClosed())
	}
	return nil, false
}

// translate turns errors that mean "retry later" into errors wrapping
// uneventful.ErrUnavailable, whose message ends with advice, such as
// "nothing was written, retry", and returns other errors as they are.
func (d *db) translate(ctx context.Context, err error, advice string) error {
	var ue *uneventful.Error
	if err == nil || errors.As(err, &ue) {
		return err
	}
	why := unavailable(err)
	if why == "" && ctx.Err() != nil {
		why = "the call's context ended (" + ctx.Err().Error() + ")"
		if !errors.Is(err, ctx.Err()) {
			err = errors.Join(err, ctx.Err())
		}
	}
	if why == "" {
		return err
	}
	return &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "unavailable", Err: err,
		Message: d.name + " is unavailable: " + why + "; " + advice}
}

// unavailable returns why err means that the database cannot take requests
// now, or "" if it does not. See PostgreSQL's Appendix A, error codes.
func unavailable(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case c == "53100":
			return "its disk is full"
		case c == "53300":
			return "it has too many connections"
		case strings.HasPrefix(c, "53"):
			return "it is out of resources (" + pe.Message + ")"
		case c == "57P01":
			return "it terminated the connection (administrator command or shutdown)"
		case c == "57P02":
			return "it crashed and is restarting"
		case c == "57P03":
			return "it is starting up or shutting down"
		case c == "57014":
			return "the statement was cancelled (statement_timeout or a cancel request)"
		case strings.HasPrefix(c, "08"):
			return "the connection failed (" + pe.Message + ")"
		case c == "40001":
			return "a serialization failure"
		case c == "40P01":
			return "a deadlock"
		case c == "55P03":
			return "a lock is not available"
		case c == "25006":
			return "it is read-only (a standby?)"
		case strings.HasPrefix(c, "58"):
			return "a system or I/O error (" + pe.Message + ")"
		}
		return ""
	}
	if connectionError(err) {
		return "the connection failed (" + err.Error() + ")"
	}
	return ""
}

// connectionError reports whether err is a failure to connect or a broken
// connection.
func connectionError(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// uniqueViolation returns the constraint that err violates, if it is a
// unique violation.
func uniqueViolation(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe, true
	}
	return nil, false
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

// column is one of an event's columns in the event and history tables.
type column struct{ name, typ string }

// eventColumns are an event's columns in the order of eventArrays and
// scanEvent. JSON travels as text and is cast, so that it is kept byte for
// byte.
var eventColumns = []column{
	{"event_id", "text"}, {"correlation_id", "text"}, {"causation_id", "text"}, {"timestamp", "text"},
	{"source_name", "text"}, {"source_id", "text"}, {"type_name", "text"}, {"domain", "text"},
	{"entity_id", "text"}, {"command", "text"}, {"data", "json"}, {"idempotency_key", "text"},
	{"request_hash", "text"}, {"version", "bigint"}, {"outcome", "text"}, {"reason", "text"},
	{"message", "text"}, {"reply", "json"},
}

// columnList returns "a, b, c", each name prefixed.
func columnList(cols []column, prefix string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = prefix + c.name
	}
	return strings.Join(names, ", ")
}

// insertFromArrays returns an INSERT of table's cols from one array
// parameter per column, rows in array order, so that the identity column
// takes its values in that order, returning returning.
func insertFromArrays(table string, cols []column, suffix string) string {
	var params, values []string
	for i, c := range cols {
		typ, cast := c.typ, ""
		if typ == "json" {
			typ, cast = "text", "::json"
		}
		params = append(params, fmt.Sprintf("$%d::%s[]", i+1, typ))
		values = append(values, "t."+c.name+cast)
	}
	return "INSERT INTO " + table + " (" + columnList(cols, "") + ")" +
		" SELECT " + strings.Join(values, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") WITH ORDINALITY AS t(" + columnList(cols, "") + ", ord)" +
		" ORDER BY t.ord " + suffix
}

// eventArrays holds a batch of events as one array per column.
type eventArrays struct {
	eventID, correlationID, causationID, timestamp []string
	sourceName, sourceID, typeName                 []string
	domain, entityID, command                      []string
	data, idempotencyKey                           []*string // NULL for none
	requestHash                                    []string
	version                                        []int64
	outcome, reason, message                       []string
	reply                                          []*string
}

func (a *eventArrays) add(e *uneventful.Event) {
	a.eventID = append(a.eventID, e.EventID)
	a.correlationID = append(a.correlationID, e.CorrelationID)
	a.causationID = append(a.causationID, e.CausationID)
	a.timestamp = append(a.timestamp, formatTime(e.Timestamp))
	a.sourceName = append(a.sourceName, e.SourceName)
	a.sourceID = append(a.sourceID, e.SourceID)
	a.typeName = append(a.typeName, e.TypeName)
	a.domain = append(a.domain, e.Domain)
	a.entityID = append(a.entityID, e.EntityID)
	a.command = append(a.command, e.Command)
	a.data = append(a.data, jsonText(e.Data))
	a.idempotencyKey = append(a.idempotencyKey, nullText(e.IdempotencyKey))
	a.requestHash = append(a.requestHash, e.RequestHash)
	a.version = append(a.version, e.Version)
	a.outcome = append(a.outcome, string(e.Outcome))
	a.reason = append(a.reason, e.Reason)
	a.message = append(a.message, e.Message)
	a.reply = append(a.reply, jsonText(e.Reply))
}

// args returns the arrays in the order of eventColumns.
func (a *eventArrays) args() []any {
	return []any{a.eventID, a.correlationID, a.causationID, a.timestamp, a.sourceName, a.sourceID, a.typeName,
		a.domain, a.entityID, a.command, a.data, a.idempotencyKey, a.requestHash, a.version,
		a.outcome, a.reason, a.message, a.reply}
}

// scanEvent scans "sequence, " + eventColumns, then into extra the columns
// that follow.
func scanEvent(rows pgx.Rows, extra ...any) (uneventful.Event, error) {
	var e uneventful.Event
	var ts string
	var key *string
	err := rows.Scan(append([]any{&e.Sequence, &e.EventID, &e.CorrelationID, &e.CausationID, &ts, &e.SourceName, &e.SourceID, &e.TypeName,
		&e.Domain, &e.EntityID, &e.Command, (*[]byte)(&e.Data), &key, &e.RequestHash, &e.Version,
		(*string)(&e.Outcome), &e.Reason, &e.Message, (*[]byte)(&e.Reply)}, extra...)...)
	if err != nil {
		return e, err
	}
	if key != nil {
		e.IdempotencyKey = *key
	}
	e.Timestamp, err = parseTime(ts)
	return e, err
}

// queryEvents runs a query for "sequence, " + eventColumns.
func (d *db) queryEvents(ctx context.Context, query string, args ...any) ([]uneventful.Event, error) {
	var events []uneventful.Event
	err := d.read(ctx, func(c *pgxpool.Conn) error {
		events = events[:0]
		rows, err := c.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return rows.Err()
	})
	return events, err
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// jsonText stores JSON as text, and no JSON as NULL.
func jsonText(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// nullText stores an empty string as NULL, which a UNIQUE column allows any
// number of times.
func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
