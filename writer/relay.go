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
	// DurableAfter is how long after acknowledging a publish the broker
	// may still lose it in a crash of the machine: a broker that syncs its
	// store every interval rather than on every write (the embedded NATS
	// server). The checkpoint moves past an event only that long after it
	// was published, so a relay restarted after such a crash publishes
	// again what the broker may have lost. 0: acknowledged means durable.
	DurableAfter time.Duration

	wake chan struct{}
}

// published is a position the broker acknowledged, and when.
type published struct {
	pos int64
	at  time.Time
}

// durable returns the last position of marks that is DurableAfter old at
// now, and the marks still younger.
func (r *Relay) durable(marks []published, now time.Time) (int64, []published, bool) {
	var pos int64
	found := false
	i := 0
	for ; i < len(marks) && !marks[i].at.After(now.Add(-r.DurableAfter)); i++ {
		pos, found = marks[i].pos, true
	}
	return pos, marks[i:], found
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
	var marks []published // positions published, not yet durable
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		before := pos
		pos, err = r.flush(ctx, pos)
		if err != nil && ctx.Err() == nil {
			r.Logger.Warn("relay events; will retry", "after", pos, "err", err)
		}
		if pos != before {
			marks = append(marks, published{pos, time.Now()})
		}
		if r.Observer != nil {
			r.Observer.Relayed(pos)
		}
		// The checkpoint costs a durable write: save it at most once a
		// second. A crash republishes at most a second's events (plus
		// DurableAfter), which subscribers deduplicate.
		if time.Since(savedAt) >= time.Second {
			if durable, rest, ok := r.durable(marks, time.Now()); ok && durable != saved {
				if err := r.Store.SaveCheckpoint(ctx, r.Name, durable); err == nil {
					saved, savedAt, marks = durable, time.Now(), rest
				}
			}
		}
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if end, _ := r.flush(final, pos); end != pos {
				pos = end
				marks = append(marks, published{pos, time.Now()})
			}
			// Only what is durable in the broker: the rest is
			// published again on the next start.
			if durable, _, ok := r.durable(marks, time.Now()); ok && durable != saved {
				_ = r.Store.SaveCheckpoint(final, r.Name, durable)
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
