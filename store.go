package uneventful

import (
	"context"
	"encoding/json"
)

// Store is a domain's event log and state log. Implementations: sqlite,
// postgres. Every Store passes the suite in package storetest.
//
// All methods are safe for concurrent use. Append is the only write.
type Store interface {
	// Append writes a batch of records in one transaction and makes it
	// durable before returning: every event row, and for each accepted
	// attempt its state row. Sequences are assigned in batch order and
	// written back into the records' events.
	//
	// For each accepted record the state's Version must be exactly one
	// more than the stream's latest version (expected-version check);
	// otherwise Append writes nothing and returns an error wrapping
	// ErrConflict. An event whose IdempotencyKey or EventID is recorded
	// already makes Append write nothing and return an error wrapping
	// ErrDuplicate. A store that cannot take the write now (locked, disk
	// full, connection lost) returns an error wrapping ErrUnavailable;
	// then nothing was written.
	Append(ctx context.Context, records []Record) error

	// Load returns the stream's latest state, or an error wrapping
	// ErrNotFound if it has no accepted change.
	Load(ctx context.Context, domain, entityID string) (State, error)

	// Lookup returns the event recorded with the idempotency key, or an
	// error wrapping ErrNotFound.
	Lookup(ctx context.Context, idempotencyKey string) (Event, error)

	// Events returns events in sequence order matching the query.
	Events(ctx context.Context, q EventQuery) ([]Event, error)

	// Records returns up to limit accepted records (event and the state
	// after it) with a sequence above after, in sequence order: the feed
	// that rebuilds a read model.
	Records(ctx context.Context, after int64, limit int) ([]Record, error)

	// States returns up to limit state rows of a stream with a version
	// above after, oldest first.
	States(ctx context.Context, domain, entityID string, after int64, limit int) ([]State, error)

	// Checkpoint returns the position saved under name, 0 if none.
	Checkpoint(ctx context.Context, name string) (int64, error)
	// SaveCheckpoint durably saves a position under name.
	SaveCheckpoint(ctx context.Context, name string, position int64) error

	// Close releases the store's connections.
	Close() error
}

// HistoryStore is the global log of every recorded event of every domain.
// All methods are safe for concurrent use.
type HistoryStore interface {
	// Record durably appends the events not recorded yet, deduplicating
	// on EventID, in one transaction, and returns how many were new. Each
	// new event gets the next history sequence.
	Record(ctx context.Context, events []Event) (int, error)
	// History returns up to limit events with a history sequence above
	// after, oldest first; Event.Sequence holds the history sequence.
	History(ctx context.Context, after int64, limit int) ([]Event, error)
	// Close releases the store's connections.
	Close() error
}

// EventQuery selects events from an event log.
type EventQuery struct {
	// Domain and EntityID restrict to one stream when EntityID is set.
	Domain   string
	EntityID string
	// AfterSequence returns only events with a higher sequence (all
	// streams), for tails and relays.
	AfterSequence int64
	// AfterVersion returns only events with a higher version (one
	// stream), for paging.
	AfterVersion int64
	// AcceptedOnly skips rejected attempts.
	AcceptedOnly bool
	// Limit caps the result; 0 means 100.
	Limit int
}

// ReadModel holds the latest state of each entity for readers. It is a
// cache that can always be rebuilt from the state log. Implementations:
// memory (in-process), redis.
type ReadModel interface {
	Reader
	// Project records the accepted records' states and events; rejected
	// records (State == nil) are ignored. It is monotonic and idempotent:
	// a state replaces the held one only if its version is higher, and an
	// event already held is not added again, so a late or repeated update
	// never moves an entity backwards.
	Project(ctx context.Context, records []Record) error
}

// Bus carries commands from servers to writers.
type Bus interface {
	// Send delivers a command event to a writer of its domain and waits
	// for the reply. It returns an error wrapping ErrUnavailable when no
	// writer is there, and ErrTimeout when the context ends first (the
	// command may still be applied; retry with the same idempotency key).
	Send(ctx context.Context, e *Event) (*Reply, error)
}

// CommandHandler takes the commands that arrive on a Bus; a writer is one.
type CommandHandler interface {
	// Handle takes a command and calls respond exactly once with its
	// reply, possibly later and from another goroutine, so that commands
	// can be committed in groups. It must not block for long: a handler
	// that is saturated responds at once with an ErrUnavailable error.
	Handle(e *Event, respond func(*Reply))
}

// MarshalReply encodes a reply for the wire and for the event log.
func MarshalReply(r *Reply) json.RawMessage {
	b, err := json.Marshal(r)
	if err != nil {
		// A Reply holds only strings, numbers and a view of plain
		// values; failing here is a bug in a domain's View.
		b, _ = json.Marshal(&Reply{EventID: r.EventID, Error: NewReplyError(Errorf(ErrInternal, "internal", "encode reply: %v", err))})
	}
	return b
}

// UnmarshalReply decodes a reply from the wire or the event log.
func UnmarshalReply(b []byte) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
