package uneventful

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/ksuid"
)

// Outcome is what became of a recorded command attempt.
type Outcome string

// The outcomes of a command attempt.
const (
	Accepted Outcome = "accepted"
	Rejected Outcome = "rejected"
)

// Event is the envelope of one command attempt as it travels from the server
// to a writer and as it is recorded in the event log. The server fills the
// identity, tracing and request fields; the writer fills Version, Outcome,
// Reason and Message; the store fills Sequence.
type Event struct {
	// EventID is a KSUID that names this attempt everywhere (event log,
	// history log, replies).
	EventID string `json:"event_id"`
	// CorrelationID ties together every event caused by one user action.
	CorrelationID string `json:"correlation_id"`
	// CausationID is the event_id of the event that caused this one, or
	// its own event_id for a command straight from a user.
	CausationID string `json:"causation_id"`
	// Timestamp is when the server accepted the request, in UTC.
	Timestamp time.Time `json:"timestamp"`
	// SourceName and SourceID name the process that made the command.
	SourceName string `json:"source_name"`
	SourceID   string `json:"source_id"`
	// TypeName is "<domain>.<entity>.<command>", e.g. "wallet.<id>.credit".
	TypeName string `json:"type_name"`
	// Domain, EntityID and Command are the parts of TypeName.
	Domain   string `json:"domain"`
	EntityID string `json:"entity_id"`
	Command  string `json:"command"`
	// Data is the command's input, normalised by the domain's parser, and
	// for an accepted attempt the change that was decided.
	Data json.RawMessage `json:"data"`
	// IdempotencyKey makes a retry of the same command return the original
	// reply instead of applying again. Unique across the event log.
	IdempotencyKey string `json:"idempotency_key"`
	// RequestHash fingerprints (type, data) so that the same key with a
	// different request is detected.
	RequestHash string `json:"request_hash,omitempty"`
	// Version is the stream version after this attempt: for an accepted
	// attempt the new version, for a rejected one the version it was
	// decided against.
	Version int64 `json:"version"`
	// Sequence is the event's position in its store's event log.
	Sequence int64 `json:"sequence,omitempty"`
	// Outcome, Reason and Message say what became of the attempt.
	Outcome Outcome `json:"outcome,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Message string  `json:"message,omitempty"`
	// Reply is the writer's reply to the attempt, kept so that a retry
	// gets the identical answer.
	Reply json.RawMessage `json:"reply,omitempty"`
}

// Stream is the name of the entity's stream, "<domain>.<entity>".
func (e *Event) Stream() string { return StreamName(e.Domain, e.EntityID) }

// StreamName joins a domain and an entity id into a stream name.
func StreamName(domain, entityID string) string { return domain + "." + entityID }

// SplitStream splits "<domain>.<entity>" into its parts.
func SplitStream(stream string) (domain, entityID string, err error) {
	domain, entityID, ok := strings.Cut(stream, ".")
	if !ok || domain == "" || entityID == "" {
		return "", "", Errorf(ErrInvalid, "invalid_stream", "%q is not a stream name; want <domain>.<entity id>", stream)
	}
	return domain, entityID, nil
}

// State is an entity's state after an accepted change, as recorded in the
// state log and held by the read model.
type State struct {
	Domain    string          `json:"name"`
	EntityID  string          `json:"entity_id"`
	Version   int64           `json:"version"`
	Timestamp time.Time       `json:"timestamp"`
	EventID   string          `json:"event_id"`
	Data      json.RawMessage `json:"data"`
}

// Stream is the name of the state's stream, "<domain>.<entity>".
func (s *State) Stream() string { return StreamName(s.Domain, s.EntityID) }

// Record is what one command attempt writes: its event, and for an accepted
// attempt the state after it.
type Record struct {
	Event Event
	State *State // nil for a rejected attempt
}

// NewID returns a new KSUID as a string.
func NewID() string { return ksuid.New().String() }

// ValidID reports whether id is a KSUID in its canonical 27-character form:
// 27 base62 digits (0-9, A-Z, a-z) of a value that fits in 20 bytes. Ids
// become path segments, NATS subject tokens and stream names, so no other
// character may pass.
func ValidID(id string) error {
	if len(id) != 27 {
		return Errorf(ErrInvalid, "invalid_id", "%q is not a valid id: want a 27-character KSUID such as %s", truncate(id, 64), NewID())
	}
	for i := 0; i < len(id); i++ {
		// ksuid.Parse reads any byte as some digit: check them here.
		if c := id[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return Errorf(ErrInvalid, "invalid_id", "%q is not a valid id: a KSUID has only the letters A-Z and a-z and the digits 0-9; want one such as %s", id, NewID())
		}
	}
	if _, err := ksuid.Parse(id); err != nil {
		return Errorf(ErrInvalid, "invalid_id", "%q is not a valid id: want a 27-character KSUID such as %s", truncate(id, 64), NewID())
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// String renders an event for logs.
func (e *Event) String() string {
	return fmt.Sprintf("%s v%d %s %s", e.TypeName, e.Version, e.Outcome, e.EventID)
}
