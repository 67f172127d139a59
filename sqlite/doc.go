// Package sqlite implements uneventful.Store (Store) and
// uneventful.HistoryStore (History) on SQLite files, with the pure-Go driver
// modernc.org/sqlite.
//
// Each file has one writer. Open and OpenHistory take an exclusive lock on
// path + ".lock" (holding the writer's process id) and open one write
// connection, in WAL mode with synchronous=FULL, so that a write is on disk
// when it returns, and BEGIN IMMEDIATE, so that a write transaction takes
// the lock before it reads. (WithSync(SyncOff) turns the sync off, for
// benchmarks only: see its comment.) Reads go through a separate pool of query-only
// connections and never wait for the writer. OpenReadOnly and
// OpenHistoryReadOnly open only the read pool and take no lock, for tools
// that read a file while its writer runs.
//
// A write that finds the file locked by another process waits up to the
// BusyTimeout field, then fails with an error wrapping
// uneventful.ErrUnavailable having written nothing; the next write after the
// lock is released succeeds. A full disk and I/O errors fail the same way.
//
// Another process reading the file (a sqlite3 shell, a backup) never blocks
// the writer, but while it holds a read transaction open SQLite cannot
// checkpoint past its snapshot, so the write-ahead log grows with every
// commit; once the reader lets go, the log is checkpointed and restarted,
// and its file is cut back to WALSizeLimit.
//
// The schema is migrated when a writer opens the file, from the scripts in
// migrations/, tracked by PRAGMA user_version; PRAGMA application_id tells
// an event store from a history store. Timestamps are stored as UTC text
// with nanoseconds ("2006-01-02T15:04:05.000000000Z") and JSON as text, so
// the files read well in the sqlite3 shell.
package sqlite
