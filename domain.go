package uneventful

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Model is a domain as the framework sees it: its state is opaque, its
// commands and changes travel as JSON. Build one with Domain; implement it
// by hand only when Domain does not fit.
//
// Every method must be safe for concurrent use and pure: Decide and Apply may
// look only at their arguments, so that a writer can restore state from the
// state log and replay never re-decides.
type Model interface {
	// Name is the domain's name, e.g. "wallet": lowercase letters, digits
	// and underscores.
	Name() string
	// Commands lists the command names, e.g. ["credit", "debit"].
	Commands() []string
	// Parse validates a command's request body and returns it normalised.
	// It returns an *Error of kind ErrInvalid for bad input and of kind
	// ErrNotFound for an unknown command.
	Parse(command string, body []byte) (json.RawMessage, error)
	// Initial returns the state of an entity that has no accepted change.
	Initial() any
	// Decide decides a parsed command against the current state. It
	// returns the change to record, or an *Error of kind ErrRejected.
	Decide(state any, command string, data json.RawMessage) (json.RawMessage, error)
	// Apply applies an accepted change to the state and returns the new
	// state. It must not fail for a change that Decide returned.
	Apply(state any, command string, change json.RawMessage) (any, error)
	// EncodeState and DecodeState convert the state to and from the JSON
	// kept in the state log and the read model.
	EncodeState(state any) (json.RawMessage, error)
	DecodeState(data json.RawMessage) (any, error)
	// View returns the public fields of a state as a JSON object, merged
	// into command replies and state reads (e.g. {"balance":5}).
	View(state any) (json.RawMessage, error)
	// Queries lists the named read endpoints, GET /<domain>/<id>/<query>.
	Queries() map[string]Query
}

// Query answers GET /<domain>/<id>/<name> from the read model.
type Query func(ctx context.Context, r Reader, entityID string, params url.Values) (any, error)

// Reader is the read side as queries see it.
type Reader interface {
	// State returns the entity's latest state, or ErrNotFound.
	State(ctx context.Context, domain, entityID string) (State, error)
	// Events returns up to limit accepted events of the entity's stream
	// with a version above after, oldest first.
	Events(ctx context.Context, domain, entityID string, after int64, limit int) ([]Event, error)
}

// Domain defines a domain with a typed state S. Its zero value is not
// usable; fill Name, Initial and Commands.
type Domain[S any] struct {
	// DomainName is the domain's name, e.g. "wallet".
	DomainName string
	// InitialState is the state of a new entity.
	InitialState S
	// Handlers maps each command name to its handler, built with Handle.
	Handlers map[string]Handler[S]
	// ViewFunc returns the public fields of a state, a value that
	// encodes as a JSON object; nil means none.
	ViewFunc func(S) any
	// QueryFuncs maps query names to read endpoints.
	QueryFuncs map[string]Query
	// API, if set, describes the commands' request bodies, the view and
	// the queries' answers for the OpenAPI document (GET /openapi.json);
	// what it leaves out is described as any JSON object.
	API *API
}

var _ Model = (*Domain[int])(nil)

// Handler is one command of a Domain. Build it with Handle.
type Handler[S any] struct {
	parse  func(body []byte) (json.RawMessage, error)
	decide func(s S, data json.RawMessage) (json.RawMessage, error)
	apply  func(s S, change json.RawMessage) (S, error)
}

// Handle builds a command handler from three typed functions: parse
// validates the request body into an input In; decide decides In against the
// state and returns the change C to record, or a rejection made with Reject;
// apply applies an accepted change to the state. In and C must round-trip
// through encoding/json.
func Handle[S, In, C any](
	parse func(body []byte) (In, error),
	decide func(s S, in In) (C, error),
	apply func(s S, c C) S,
) Handler[S] {
	return Handler[S]{
		parse: func(body []byte) (json.RawMessage, error) {
			in, err := parse(body)
			if err != nil {
				return nil, err
			}
			return json.Marshal(in)
		},
		decide: func(s S, data json.RawMessage) (json.RawMessage, error) {
			var in In
			if err := json.Unmarshal(data, &in); err != nil {
				return nil, Errorf(ErrInvalid, "invalid_command", "the command's data cannot be read: %v", err)
			}
			c, err := decide(s, in)
			if err != nil {
				return nil, err
			}
			return json.Marshal(c)
		},
		apply: func(s S, change json.RawMessage) (S, error) {
			var c C
			if err := json.Unmarshal(change, &c); err != nil {
				return s, fmt.Errorf("decode change: %v", err)
			}
			return apply(s, c), nil
		},
	}
}

// Name implements Model.
func (d *Domain[S]) Name() string { return d.DomainName }

// Commands implements Model.
func (d *Domain[S]) Commands() []string {
	names := make([]string, 0, len(d.Handlers))
	for n := range d.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (d *Domain[S]) handler(command string) (Handler[S], error) {
	h, ok := d.Handlers[command]
	if !ok {
		return h, Errorf(ErrNotFound, "unknown_command", "%s has no command %q; its commands are %s", d.DomainName, command, strings.Join(d.Commands(), ", "))
	}
	return h, nil
}

// Parse implements Model.
func (d *Domain[S]) Parse(command string, body []byte) (json.RawMessage, error) {
	h, err := d.handler(command)
	if err != nil {
		return nil, err
	}
	return h.parse(body)
}

// Initial implements Model.
func (d *Domain[S]) Initial() any { return d.InitialState }

// Decide implements Model.
func (d *Domain[S]) Decide(state any, command string, data json.RawMessage) (json.RawMessage, error) {
	h, err := d.handler(command)
	if err != nil {
		return nil, err
	}
	s, ok := state.(S)
	if !ok {
		return nil, fmt.Errorf("%s: state is %T, want %T", d.DomainName, state, d.InitialState)
	}
	return h.decide(s, data)
}

// Apply implements Model.
func (d *Domain[S]) Apply(state any, command string, change json.RawMessage) (any, error) {
	h, err := d.handler(command)
	if err != nil {
		return nil, err
	}
	s, ok := state.(S)
	if !ok {
		return nil, fmt.Errorf("%s: state is %T, want %T", d.DomainName, state, d.InitialState)
	}
	return h.apply(s, change)
}

// EncodeState implements Model.
func (d *Domain[S]) EncodeState(state any) (json.RawMessage, error) { return json.Marshal(state) }

// DecodeState implements Model.
func (d *Domain[S]) DecodeState(data json.RawMessage) (any, error) {
	var s S
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode %s state: %v", d.DomainName, err)
	}
	return s, nil
}

// View implements Model.
func (d *Domain[S]) View(state any) (json.RawMessage, error) {
	if d.ViewFunc == nil {
		return json.RawMessage("{}"), nil
	}
	s, ok := state.(S)
	if !ok {
		return nil, fmt.Errorf("%s: state is %T, want %T", d.DomainName, state, d.InitialState)
	}
	return json.Marshal(d.ViewFunc(s))
}

// Queries implements Model.
func (d *Domain[S]) Queries() map[string]Query { return d.QueryFuncs }

// Reply is a writer's answer to a command, sent back over the bus and kept
// with the event so that a retry with the same idempotency key gets the
// identical answer.
type Reply struct {
	EventID   string          `json:"event_id"`
	Outcome   Outcome         `json:"outcome,omitempty"`
	Version   int64           `json:"version"`
	Timestamp time.Time       `json:"timestamp"`
	Code      string          `json:"code,omitempty"`
	Message   string          `json:"message,omitempty"`
	View      json.RawMessage `json:"view,omitempty"`
	// Error is set when the command was not decided at all (invalid,
	// unavailable, internal); Kind names the sentinel.
	Error *ReplyError `json:"error,omitempty"`
}

// ReplyError carries a typed error across the bus.
type ReplyError struct {
	Kind    string `json:"kind"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

var kinds = []struct {
	name string
	err  error
}{
	{"invalid", ErrInvalid}, {"not_found", ErrNotFound}, {"rejected", ErrRejected}, {"conflict", ErrConflict},
	{"idempotency_mismatch", ErrIdempotencyMismatch}, {"duplicate", ErrDuplicate}, {"unavailable", ErrUnavailable},
	{"timeout", ErrTimeout}, {"internal", ErrInternal},
}

// NewReplyError turns err into its wire form.
func NewReplyError(err error) *ReplyError {
	// An *Error's own kind wins over the kinds of the causes it wraps: a
	// conflict that exhausted its retries is reported as unavailable.
	var target error = err
	var e *Error
	if errors.As(err, &e) && e.Kind != nil {
		target = e.Kind
	}
	kind := "internal"
	for _, k := range kinds {
		if errors.Is(target, k.err) {
			kind = k.name
			break
		}
	}
	return &ReplyError{Kind: kind, Code: ErrorCode(err), Message: ErrorMessage(err)}
}

// Err turns a wire error back into an *Error of the right kind.
func (r *ReplyError) Err() error {
	kind := ErrInternal
	for _, k := range kinds {
		if k.name == r.Kind {
			kind = k.err
		}
	}
	return &Error{Kind: kind, Code: r.Code, Message: r.Message}
}
