package sqlite

import "fmt"

// Sync says how the write connection syncs a commit to disk: SQLite's
// PRAGMA synchronous, in WAL mode.
type Sync string

const (
	// SyncFull, the default, syncs the write-ahead log before a commit
	// returns, so a commit is on disk once Append or Record returns.
	// "Acknowledged means durable" rests on it.
	SyncFull Sync = "FULL"
	// SyncOff never syncs. A commit survives the process being killed (it
	// is in the operating system's cache) but not a power loss or an
	// operating system crash, which can lose acknowledged commits and
	// corrupt the file. It exists to measure the ceiling that group commit
	// is compared with (bench/run); never use it for data you keep.
	SyncOff Sync = "OFF"
)

// Option configures Open and OpenHistory.
type Option func(*options)

type options struct {
	sync Sync
}

// WithSync sets how commits are synced to disk; the default is SyncFull.
// Open and OpenHistory fail on a value other than SyncFull or SyncOff. It
// has no effect on OpenReadOnly and OpenHistoryReadOnly, which never write.
func WithSync(s Sync) Option {
	return func(o *options) { o.sync = s }
}

func buildOptions(opts []Option) (options, error) {
	o := options{sync: SyncFull}
	for _, opt := range opts {
		opt(&o)
	}
	switch o.sync {
	case SyncFull, SyncOff:
	default:
		return o, fmt.Errorf("sqlite: WithSync(%q): want %q or %q", o.sync, SyncFull, SyncOff)
	}
	return o, nil
}
