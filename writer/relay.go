package writer

import (
	"context"
	"log/slog"
	"time"

	"github.com/uneventful/uneventful"
)

// Publisher publishes recorded events, returning only once every one is
// stored by the broker (see nats.Publisher).
type Publisher interface {
	Publish(ctx context.Context, events []uneventful.Event) error
}

// Relay publishes every event of a store's event log, in order, treating the
// log as an outbox: its position is a checkpoint in the store, so events
// recorded while the broker was down, or before a crash, are published once
// it is back. An event may be published more than once (after a crash
// between publishing and saving the checkpoint); it carries its event_id,
// so subscribers deduplicate.
type Relay struct {
	Store     uneventful.Store
	Publisher Publisher
	// Name is the checkpoint's name; default "relay".
	Name string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told the position published up to (Relayed),
	// e.g. to export how far publishing lags behind the event log.
	Observer Observer

	wake chan struct{}
}

// Wake tells the relay that events were committed. It never blocks; use it
// as (or from) Writer.Committed.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Init prepares the relay; call it before Wake or Run.
func (r *Relay) Init() *Relay {
	if r.Name == "" {
		r.Name = "relay"
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	r.wake = make(chan struct{}, 1)
	return r
}

// Run publishes until ctx ends, then publishes what is left (for up to 5 s)
// and saves its checkpoint.
func (r *Relay) Run(ctx context.Context) error {
	pos, err := r.Store.Checkpoint(ctx, r.Name)
	for err != nil {
		r.Logger.Warn("read relay checkpoint; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		pos, err = r.Store.Checkpoint(ctx, r.Name)
	}
	saved, savedAt := pos, time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		pos, err = r.flush(ctx, pos)
		if err != nil && ctx.Err() == nil {
			r.Logger.Warn("relay events; will retry", "after", pos, "err", err)
		}
		if r.Observer != nil {
			r.Observer.Relayed(pos)
		}
		// The checkpoint costs a durable write: save it at most once a
		// second. A crash republishes at most a second's events, which
		// subscribers deduplicate.
		if pos != saved && time.Since(savedAt) >= time.Second {
			if err := r.Store.SaveCheckpoint(ctx, r.Name, pos); err == nil {
				saved, savedAt = pos, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			pos, _ = r.flush(final, pos)
			if pos != saved {
				_ = r.Store.SaveCheckpoint(final, r.Name, pos)
			}
			cancel()
			return nil
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// flush publishes everything after pos and returns the new position.
func (r *Relay) flush(ctx context.Context, pos int64) (int64, error) {
	for {
		events, err := r.Store.Events(ctx, uneventful.EventQuery{AfterSequence: pos, Limit: 1000})
		if err != nil || len(events) == 0 {
			return pos, err
		}
		if err := r.Publisher.Publish(ctx, events); err != nil {
			return pos, err
		}
		pos = events[len(events)-1].Sequence
		if len(events) < 1000 {
			return pos, nil
		}
	}
}
