package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uneventful/uneventful"
)

var _ uneventful.HistoryStore = (*History)(nil)

// History is the global history log in a PostgreSQL database. It
// implements uneventful.HistoryStore; all its methods are safe for
// concurrent use, also by several processes.
type History struct {
	db *db
}

// OpenHistory connects to the PostgreSQL database at url and creates or
// migrates the history table in the first schema of its search_path, which
// may be the event store's. It fails like Open.
func OpenHistory(ctx context.Context, url string) (*History, error) {
	return openHistory(ctx, url, nil)
}

func openHistory(ctx context.Context, url string, configure func(*pgxpool.Config)) (*History, error) {
	d, err := open(ctx, url, historySchema, configure)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	return &History{db: d}, nil
}

// Close closes the history's connections. It is safe to call more than
// once.
func (h *History) Close() error { return h.db.close() }

// historyColumns are the history table's columns in the order of Record's
// arrays.
var historyColumns = append([]column{{"origin_sequence", "bigint"}}, eventColumns...)

var insertHistory = insertFromArrays("history", historyColumns, "ON CONFLICT (event_id) DO NOTHING")

// Record implements uneventful.HistoryStore. The events' Sequence is kept
// as their origin sequence. Like Append, it commits in history sequence
// order, so that a reader paging by sequence never skips an event, and it
// finds out whether a commit that lost its connection took effect.
func (h *History) Record(ctx context.Context, events []uneventful.Event) (int, error) {
	var (
		arrays eventArrays
		origin []int64
		ids    = make(map[string]bool, len(events))
	)
	for i := range events {
		// Keep the first of equal events: ON CONFLICT cannot tell which
		// row of one statement came first.
		if ids[events[i].EventID] {
			continue
		}
		ids[events[i].EventID] = true
		arrays.add(&events[i])
		origin = append(origin, events[i].Sequence)
	}
	if len(origin) == 0 {
		return 0, nil
	}
	var n int
	err := h.db.write(ctx, txn{
		last: func(b *pgx.Batch) { b.Queue(insertHistory, append([]any{origin}, arrays.args()...)...) },
		read: func(br pgx.BatchResults) error {
			tag, err := br.Exec()
			n = int(tag.RowsAffected())
			return err
		},
		recover: func(ctx context.Context, xid string) error {
			// The rows that transaction xid inserted.
			return h.db.read(ctx, func(c *pgxpool.Conn) error {
				return c.QueryRow(ctx, "SELECT count(*) FROM history WHERE event_id = ANY($1) AND xmin = $2::xid8::xid",
					arrays.eventID, xid).Scan(&n)
			})
		},
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
	events, err := h.db.queryEvents(ctx, "SELECT sequence, "+columnList(eventColumns, "")+" FROM history WHERE sequence > $1 ORDER BY sequence LIMIT $2", after, n)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return events, nil
}
