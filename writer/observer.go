package writer

import "time"

// Observer is told what the write path does, e.g. to export it as metrics
// (package metrics implements it for Prometheus). A Writer, a Projector and
// a Relay each call their own methods. Methods are called synchronously on
// the commit loop, the projector and the relay: they must be cheap, must not
// block, and must be safe for concurrent use. Embed NopObserver to implement
// only some of them.
type Observer interface {
	// Committed is called by a Writer once per batch, after every
	// command of it has its reply.
	Committed(Commit)
	// Projecting is called by a Projector at the start of each catch-up
	// pass with the read model's position; lost is true when the read
	// model had none (it is new, or lost its data) and is rebuilt from 0.
	Projecting(position int64, lost bool)
	// Projected is called by a Projector after each batch of records it
	// projected, and at the end of each pass with done true: the read
	// model then holds every record the store held when the pass began.
	// On a failed pass it is called with err set and done false.
	Projected(position int64, done bool, err error)
	// Relayed is called by a Relay with the position of the event log up
	// to which it has published every event: when it starts and after
	// each flush.
	Relayed(position int64)
}

// Commit is what one batch came to.
type Commit struct {
	// Commands is the number of commands in the batch.
	Commands int
	// Records is the number of events appended: one per decided command
	// (accepted or rejected); 0 when none needed recording (retries of
	// recorded commands, invalid envelopes) or the batch failed.
	Records int
	// First and Last are the event-log sequences of the first and last
	// event appended; 0 when none was.
	First, Last int64
	// Attempts is the number of transactions tried: more than 1 when
	// other writers took the same entities' versions first, or when the
	// batch held a retry of a recorded command (see Lookup).
	Attempts int
	// Lookup is true when the first attempt failed because a command's
	// idempotency key was recorded already, and the batch was tried again
	// looking every key up (one of the Attempts).
	Lookup bool
	// Append is how long the last Store.Append took, durable sync
	// included; 0 when there was nothing to append.
	Append time.Duration
	// Took is how long the batch took, from taking it off the queue to
	// its last reply.
	Took time.Duration
	// Projected is true when the appended records were projected into
	// the Writer's ReadModel; ProjectErr is set when that failed (the
	// read model lags until the catch-up projector repairs it).
	Projected  bool
	ProjectErr error
	// Err is set when the batch failed: nothing was written and every
	// command got an error reply.
	Err error
}

// NopObserver is an Observer that does nothing; embed it in an Observer
// that implements only some methods.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Committed implements Observer.
func (NopObserver) Committed(Commit) {}

// Projecting implements Observer.
func (NopObserver) Projecting(int64, bool) {}

// Projected implements Observer.
func (NopObserver) Projected(int64, bool, error) {}

// Relayed implements Observer.
func (NopObserver) Relayed(int64) {}
