// Package postgres implements uneventful.Store (Store) and
// uneventful.HistoryStore (History) on PostgreSQL with pgx, for the
// scale-out deployment: any number of writers, in any number of processes,
// share one event store.
//
// # Connecting
//
// Open and OpenHistory take a postgres:// URL (or a key=value connection
// string). Parameters that pgx does not know are sent to the server as
// run-time parameters, so ?search_path=wallet puts the tables in schema
// wallet, which must exist; pgxpool's own parameters such as
// pool_max_conns size the pool. Every connection sets
// synchronous_commit=on, whatever the URL or the server say: a nil error
// from Append means that the commit's WAL is flushed (and sent to the
// synchronous standbys, if any).
//
// The tables are created or migrated by Open from the scripts in
// migrations/, in one transaction that holds an advisory lock, so that
// writers starting at once migrate once; schema_version records each
// kind's version. The tables are those of the sqlite package: event (every
// attempt, sequence a BIGINT identity), state (PRIMARY KEY (domain,
// entity_id, version), the expected-version guard), checkpoint, and
// history (UNIQUE event_id). Timestamps are stored as UTC text with
// nanoseconds ("2006-01-02T15:04:05.000000000Z"), since timestamptz keeps
// only microseconds; JSON as json, which keeps it byte for byte.
//
// # Commit order
//
// Relays and projectors page the event log by sequence and remember the
// last one they saw. Sequences are taken when rows are inserted, but become
// visible when their transaction commits, so with several writers a reader
// could see sequence 11 of a transaction that committed before the one
// holding 10, move past 10, and never see it. Append therefore takes a
// transaction-scoped advisory lock (pg_advisory_xact_lock) right before it
// inserts its events and holds it through COMMIT: transactions take
// sequences and commit one at a time, in sequence order, and a reader that
// sees a sequence has seen every lower one that will ever exist. The lock
// is taken in the last round trip together with the insert and the COMMIT,
// so it is held only for the server's work and the commit's flush, never a
// network round trip; with group commit each transaction carries many
// commands, so the serialisation is cheap. History.Record does the same for
// the history log. The lock's key is a tag in the high 32 bits
// (0x75657673, "uevs", for event tables; 0x75656873, "uehs", for history
// tables) and the table's oid in the low 32, so stores in different
// schemas of one database do not wait for each other.
//
// # Errors
//
// A version taken by another writer (a unique violation of the state
// log's primary key) or one that does not follow the stream's latest
// version is an error wrapping uneventful.ErrConflict; a recorded event id
// or idempotency key one wrapping uneventful.ErrDuplicate. A lost
// connection, a server shutting down or restarting (57P01-57P03), too many
// connections or a full disk (class 53), a serialization failure or
// deadlock (40001, 40P01), a cancelled statement (57014), a read-only
// server (25006) and I/O errors (class 58) are errors wrapping
// uneventful.ErrUnavailable, whose message says that nothing was written.
// A write whose connection was lost after it sent COMMIT looks up its
// transaction's status (pg_xact_status) on another connection, terminating
// its old backend if that still runs it, and reports what happened; only
// if that cannot be learned in time does it return an error wrapping
// uneventful.ErrTimeout. A write whose connection was lost with nothing
// written is tried once more on a new connection, after the pool drops its
// other connections, which the same cause has usually broken too.
package postgres
