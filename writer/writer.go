// Package writer is the write path of a domain: it takes commands from a
// bus, decides them against each entity's state, records every attempt and
// the state after each accepted change in a Store (committing every command
// that queued during the previous commit in one transaction: group commit),
// projects the new states into a ReadModel, and only then replies.
package writer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/uneventful/uneventful"
)

// Writer is the write path of one domain. Set the fields, then call Run;
// give Handle to a bus (see nats.Serve).
type Writer struct {
	// Model is the domain. Required.
	Model uneventful.Model
	// Store records the event log and state log. Required.
	Store uneventful.Store
	// ReadModel, if set, receives each new state before the reply is sent,
	// so that a client reads its own writes.
	ReadModel uneventful.ReadModel
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxPending bounds the commands queued for the next commit; past it
	// Handle answers at once that the writer is overloaded. Default 4096.
	MaxPending int
	// MaxBatch bounds the commands in one transaction. Default 1024; 1
	// turns group commit off (one transaction and one fsync per command).
	MaxBatch int
	// MaxCache bounds the entity states kept in memory. Default 100000.
	MaxCache int
	// Committed, if set, is called after each commit with its records,
	// e.g. to wake a Relay. It must not block.
	Committed func([]uneventful.Record)
	// Observer, if set, is told about every batch (see Commit), e.g. to
	// export metrics.
	Observer Observer

	once   sync.Once
	mu     sync.RWMutex // guards closed against Handle's sends
	closed bool
	queue  chan *pending
	cache  map[string]*entity
}

var _ uneventful.CommandHandler = (*Writer)(nil)

type pending struct {
	event   *uneventful.Event
	respond func(*uneventful.Reply)
}

// entity is an entity's decided state.
type entity struct {
	state   any
	version int64
}

func (w *Writer) init() {
	w.once.Do(func() {
		if w.Logger == nil {
			w.Logger = slog.Default()
		}
		if w.MaxPending <= 0 {
			w.MaxPending = 4096
		}
		if w.MaxBatch <= 0 {
			w.MaxBatch = 1024
		}
		if w.MaxCache <= 0 {
			w.MaxCache = 100000
		}
		w.queue = make(chan *pending, w.MaxPending)
		w.cache = make(map[string]*entity)
	})
}

// Handle implements uneventful.CommandHandler. It queues the command for the
// next commit, or answers at once that the writer is overloaded or
// stopping; nothing is recorded then.
func (w *Writer) Handle(e *uneventful.Event, respond func(*uneventful.Reply)) {
	w.init()
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		respond(errorReply(e, uneventful.Errorf(uneventful.ErrUnavailable, "writer_stopping", "the %s writer is shutting down; nothing was applied, retry", w.Model.Name())))
		return
	}
	select {
	case w.queue <- &pending{event: e, respond: respond}:
	default:
		respond(errorReply(e, uneventful.Errorf(uneventful.ErrUnavailable, "overloaded", "the %s writer has %d commands queued; nothing was applied, retry shortly", w.Model.Name(), w.MaxPending)))
	}
}

// Run commits queued commands until ctx ends, then stops taking new ones,
// commits those already queued, and returns.
func (w *Writer) Run(ctx context.Context) error {
	w.init()
	if w.Model == nil || w.Store == nil {
		return errors.New("writer: Model and Store are required")
	}
	batch := make([]*pending, 0, w.MaxBatch)
	for {
		select {
		case p := <-w.queue:
			batch = w.fill(append(batch[:0], p))
			w.commit(batch)
		case <-ctx.Done():
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			for len(w.queue) > 0 {
				batch = w.fill(batch[:0])
				w.commit(batch)
			}
			return nil
		}
	}
}

// fill adds what queued while the last commit was syncing: no timer, so a
// lone command commits at once.
func (w *Writer) fill(batch []*pending) []*pending {
	for len(batch) < w.MaxBatch {
		select {
		case p := <-w.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// RequestHash fingerprints a command for idempotency: same type and data,
// same hash.
func RequestHash(e *uneventful.Event) string {
	h := sha256.New()
	h.Write([]byte(e.TypeName))
	h.Write([]byte{'\n'})
	h.Write(e.Data)
	return hex.EncodeToString(h.Sum(nil))
}

// commit decides and records one batch, retrying when another writer took
// a version first.
func (w *Writer) commit(batch []*pending) {
	const attempts = 10
	c := Commit{Commands: len(batch)}
	if w.Observer != nil {
		start := time.Now()
		defer func() {
			c.Took = time.Since(start)
			w.Observer.Committed(c)
		}()
	}
	// The first attempt does not look the commands' idempotency keys up:
	// the store's unique index refuses a key recorded before, failing the
	// whole transaction with ErrDuplicate, and only then does the next
	// attempt look every key up and answer retries with their recorded
	// replies. A batch without retries costs no lookups.
	lookup := false
	for i := 1; ; i++ {
		c.Attempts = i
		err := w.try(batch, &c, lookup)
		if err == nil {
			return
		}
		if errors.Is(err, uneventful.ErrDuplicate) && !lookup {
			lookup, c.Lookup = true, true
			continue
		}
		retry := errors.Is(err, uneventful.ErrConflict) || errors.Is(err, uneventful.ErrDuplicate)
		if !retry || i == attempts {
			w.Logger.Warn("commit failed; nothing was written", "domain", w.Model.Name(), "commands", len(batch), "err", err)
			if retry {
				err = &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "contention", Err: err,
					Message: "other writers kept taking the same entities' versions; nothing was applied, retry"}
			} else if !errors.Is(err, uneventful.ErrUnavailable) && !errors.Is(err, uneventful.ErrTimeout) {
				err = &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "store_unavailable", Err: err,
					Message: "the event store could not record the command; nothing was applied, retry"}
			}
			for _, p := range batch {
				p.respond(errorReply(p.event, err))
			}
			c.Err = err
			return
		}
		// Our cached states are stale: another writer appended. Reload,
		// after a random pause so that writers racing for the same
		// entities fall out of step.
		for _, p := range batch {
			delete(w.cache, p.event.Stream())
		}
		time.Sleep(time.Duration(rand.IntN(1000*i)) * time.Microsecond)
	}
}

// outcome is what one command of a batch came to before the commit.
type outcome struct {
	reply  *uneventful.Reply // reply to send; nil until decided
	record int               // index into records, or -1
	same   int               // index of an earlier command with the same key, or -1
}

// try decides and records a batch once, noting in c what it appended. With
// lookup, it answers each command whose idempotency key is recorded with
// the recorded reply instead of deciding it again.
func (w *Writer) try(batch []*pending, c *Commit, lookup bool) error {
	c.Append = 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	model := w.Model
	work := make(map[string]*entity)
	keys := make(map[string]int)
	outs := make([]outcome, len(batch))
	records := make([]uneventful.Record, 0, len(batch))
	hashes := make([]string, len(batch))
	for i, p := range batch {
		// Work on a copy: a retry after a conflict starts from the
		// command as it arrived.
		ev := *p.event
		e := &ev
		outs[i] = outcome{record: -1, same: -1}
		if err := w.validate(e); err != nil {
			outs[i].reply = errorReply(e, err)
			continue
		}
		e.RequestHash = RequestHash(e)
		hashes[i] = e.RequestHash
		if j, ok := keys[e.IdempotencyKey]; ok {
			if hashes[j] != e.RequestHash {
				outs[i].reply = errorReply(e, mismatch(e))
			} else {
				outs[i].same = j
			}
			continue
		}
		if lookup {
			prior, err := w.Store.Lookup(ctx, e.IdempotencyKey)
			switch {
			case err == nil:
				outs[i].reply = replay(e, &prior)
				continue
			case !errors.Is(err, uneventful.ErrNotFound):
				return fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		keys[e.IdempotencyKey] = i
		stream := e.Stream()
		ent, ok := work[stream]
		if !ok {
			var err error
			if ent, err = w.load(ctx, e.Domain, e.EntityID); err != nil {
				return err
			}
			work[stream] = ent
		}
		e.Version = ent.version
		change, err := model.Decide(ent.state, e.Command, e.Data)
		var st *uneventful.State
		switch {
		case err == nil:
			next, err := model.Apply(ent.state, e.Command, change)
			if err != nil {
				return fmt.Errorf("apply %s: %w", e.TypeName, err)
			}
			data, err := model.EncodeState(next)
			if err != nil {
				return fmt.Errorf("encode state: %w", err)
			}
			ent = &entity{state: next, version: ent.version + 1}
			work[stream] = ent
			e.Version, e.Data, e.Outcome, e.Reason, e.Message = ent.version, change, uneventful.Accepted, "", ""
			st = &uneventful.State{Domain: e.Domain, EntityID: e.EntityID, Version: ent.version, Timestamp: e.Timestamp, EventID: e.EventID, Data: data}
		case errors.Is(err, uneventful.ErrRejected):
			e.Outcome, e.Reason, e.Message = uneventful.Rejected, uneventful.ErrorCode(err), uneventful.ErrorMessage(err)
		default:
			outs[i].reply = errorReply(e, err)
			delete(keys, e.IdempotencyKey)
			continue
		}
		view, err := model.View(ent.state)
		if err != nil {
			return fmt.Errorf("view %s: %w", stream, err)
		}
		r := &uneventful.Reply{EventID: e.EventID, Outcome: e.Outcome, Version: e.Version, Timestamp: e.Timestamp,
			Code: e.Reason, Message: e.Message, View: view}
		e.Reply = uneventful.MarshalReply(r)
		outs[i].reply = r
		outs[i].record = len(records)
		records = append(records, uneventful.Record{Event: *e, State: st})
	}
	if len(records) > 0 {
		start := time.Now()
		err := w.Store.Append(ctx, records)
		c.Append = time.Since(start)
		if err != nil {
			return err
		}
		c.Records, c.First, c.Last = len(records), records[0].Event.Sequence, records[len(records)-1].Event.Sequence
	}
	// Durable: now the cache, the read model, and the replies.
	for stream, ent := range work {
		if len(w.cache) >= w.MaxCache {
			for k := range w.cache { // evict an arbitrary entry
				delete(w.cache, k)
				break
			}
		}
		w.cache[stream] = ent
	}
	if w.ReadModel != nil && len(records) > 0 {
		if err := w.ReadModel.Project(ctx, records); err != nil {
			c.ProjectErr = err
			w.Logger.Warn("project states; the read model will catch up", "domain", model.Name(), "err", err)
		} else {
			c.Projected = true
		}
	}
	if w.Committed != nil && len(records) > 0 {
		w.Committed(records)
	}
	for i, p := range batch {
		r := outs[i].reply
		if outs[i].same >= 0 {
			r = outs[outs[i].same].reply
		}
		p.respond(r)
	}
	return nil
}

// load returns an entity's state: cached, else restored from its latest
// state-log row (never by replaying its history), else the initial state.
func (w *Writer) load(ctx context.Context, domain, id string) (*entity, error) {
	stream := uneventful.StreamName(domain, id)
	if ent, ok := w.cache[stream]; ok {
		return ent, nil
	}
	st, err := w.Store.Load(ctx, domain, id)
	if errors.Is(err, uneventful.ErrNotFound) {
		return &entity{state: w.Model.Initial()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	s, err := w.Model.DecodeState(st.Data)
	if err != nil {
		return nil, err
	}
	return &entity{state: s, version: st.Version}, nil
}

// validate checks an envelope from the bus: the writer trusts no server.
// The data, parsed by the server, is checked again by Decide as it decodes.
func (w *Writer) validate(e *uneventful.Event) error {
	name := w.Model.Name()
	if e.Domain != name {
		return uneventful.Errorf(uneventful.ErrInvalid, "wrong_domain", "this writer takes %s commands, not %q", name, e.Domain)
	}
	if err := uneventful.ValidID(e.EntityID); err != nil {
		return err
	}
	if err := uneventful.ValidID(e.EventID); err != nil {
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_event_id", "the command's event_id is not a KSUID")
	}
	if e.IdempotencyKey == "" {
		return uneventful.Errorf(uneventful.ErrInvalid, "missing_idempotency_key", "the command has no idempotency key")
	}
	if want := e.Domain + "." + e.EntityID + "." + e.Command; e.TypeName != want {
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_type_name", "type_name %q does not match %q", e.TypeName, want)
	}
	if len(e.Data) == 0 {
		return uneventful.Errorf(uneventful.ErrInvalid, "missing_data", "the command has no data")
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now().UTC()
	}
	return nil
}

// replay answers a retry of a recorded command with its original reply.
func replay(e *uneventful.Event, prior *uneventful.Event) *uneventful.Reply {
	if prior.RequestHash != e.RequestHash {
		return errorReply(e, mismatch(e))
	}
	r, err := uneventful.UnmarshalReply(prior.Reply)
	if err != nil {
		return errorReply(e, fmt.Errorf("decode recorded reply of %s: %w", prior.EventID, err))
	}
	return r
}

func mismatch(e *uneventful.Event) error {
	return uneventful.Errorf(uneventful.ErrIdempotencyMismatch, "idempotency_key_reused",
		"the Idempotency-Key %q was already used for a different request; use a new key for a new command", e.IdempotencyKey)
}

func errorReply(e *uneventful.Event, err error) *uneventful.Reply {
	return &uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(err)}
}
