package uneventful

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends translate their drivers' errors into these at
// their boundary; the http package maps them to status codes with errors.Is.
var (
	// ErrInvalid: the input is malformed or out of range (HTTP 400).
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound: no such entity, route or record (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrRejected: the domain rejected the command against the entity's
	// current state; the attempt is recorded (HTTP 409).
	ErrRejected = errors.New("rejected")
	// ErrInsufficientFunds: a debit would overdraw. It is a rejection:
	// errors.Is(ErrInsufficientFunds, ErrRejected) holds.
	ErrInsufficientFunds error = &Error{Kind: ErrRejected, Code: "insufficient_funds", Message: "insufficient funds"}
	// ErrConflict: the expected stream version was taken by another writer,
	// or an equal request is still in flight (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrIdempotencyMismatch: an idempotency key was reused with a
	// different request (HTTP 422).
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrDuplicate: the idempotency key or event id is recorded already.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnavailable: a dependency (writer, store, read model) cannot take
	// the request now; nothing was acknowledged and a retry may succeed
	// (HTTP 503).
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: no answer in time; the command may or may not have been
	// applied, and a retry with the same idempotency key is safe (HTTP 504).
	ErrTimeout = errors.New("timeout")
	// ErrInternal: a bug or an unexpected failure (HTTP 500).
	ErrInternal = errors.New("internal error")
)

// Error is an error with a stable machine-readable code and a message for
// people. Kind is one of the sentinel errors above, so that
// errors.Is(err, ErrInvalid) works on an *Error.
type Error struct {
	Kind    error  // a sentinel such as ErrInvalid
	Code    string // stable, snake_case, e.g. "insufficient_funds"
	Message string // a sentence a user understands
	Err     error  // the underlying cause, if any
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Is reports whether target is the error's kind.
func (e *Error) Is(target error) bool { return e.Kind == target }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind and code.
func Errorf(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Reject returns the rejection of a command: an *Error of kind ErrRejected.
func Reject(code, format string, args ...any) *Error {
	return Errorf(ErrRejected, code, format, args...)
}

// ErrorCode returns err's stable code: the Code of an *Error in its chain,
// else a code derived from its sentinel kind.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	for _, k := range []struct {
		err  error
		code string
	}{
		{ErrInvalid, "invalid"}, {ErrNotFound, "not_found"}, {ErrInsufficientFunds, "insufficient_funds"},
		{ErrRejected, "rejected"}, {ErrConflict, "conflict"}, {ErrIdempotencyMismatch, "idempotency_key_reused"},
		{ErrDuplicate, "duplicate"}, {ErrUnavailable, "unavailable"}, {ErrTimeout, "timeout"},
	} {
		if errors.Is(err, k.err) {
			return k.code
		}
	}
	return "internal"
}

// ErrorMessage returns err's message for people: the Message of an *Error
// in its chain, else err's text.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}
