package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uneventful/uneventful"
)

var _ uneventful.HistoryStore = (*History)(nil)

// History is the global history log in its own SQLite file. It implements
// uneventful.HistoryStore; all its methods are safe for concurrent use.
type History struct {
	// BusyTimeout is how long Record waits for the database lock when
	// another process holds it before it fails with an error wrapping
	// uneventful.ErrUnavailable; 0 means not to wait. OpenHistory sets it
	// to DefaultBusyTimeout; change it before the History is shared
	// between goroutines.
	BusyTimeout time.Duration

	db *db
}

// OpenHistory opens the history log in the SQLite file at path for writing,
// creating the file if needed. Like Open it takes the file's writer lock and
// fails with an error wrapping uneventful.ErrUnavailable while another
// writer holds it. Options are as for Open.
func OpenHistory(ctx context.Context, path string, opts ...Option) (*History, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return openHistory(ctx, path, false, o)
}

// OpenHistoryReadOnly opens an existing history log for reading only,
// without the writer's lock. It returns an error wrapping
// uneventful.ErrNotFound if the file does not exist. Its Record fails.
func OpenHistoryReadOnly(ctx context.Context, path string) (*History, error) {
	return openHistory(ctx, path, true, options{sync: SyncFull})
}

func openHistory(ctx context.Context, path string, readOnly bool, o options) (*History, error) {
	d, err := open(ctx, path, historySchema, readOnly, o)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	return &History{BusyTimeout: DefaultBusyTimeout, db: d}, nil
}

// Close closes the history's connections and releases the writer's lock.
// It is safe to call more than once.
func (h *History) Close() error { return h.db.close() }

// Record implements uneventful.HistoryStore. The events' Sequence is kept
// as their origin sequence.
func (h *History) Record(ctx context.Context, events []uneventful.Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	var n int
	err := h.db.update(ctx, h.BusyTimeout, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO history (origin_sequence, "+eventColumns+")"+
			" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range events {
			res, err := stmt.ExecContext(ctx, append([]any{events[i].Sequence}, eventArgs(&events[i])...)...)
			if err != nil {
				return err
			}
			added, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(added)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record history: %w", err)
	}
	return n, nil
}

// History implements uneventful.HistoryStore. A limit of 0 means
// DefaultLimit; a negative one is an error wrapping uneventful.ErrInvalid.
func (h *History) History(ctx context.Context, after int64, lim int) ([]uneventful.Event, error) {
	n, err := limit(lim)
	if err != nil {
		return nil, err
	}
	events, err := h.db.queryEvents(ctx, "SELECT sequence, "+eventColumns+" FROM history WHERE sequence > ? ORDER BY sequence LIMIT ?", after, n)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return events, nil
}
