// Package process runs process managers: the glue of a business process
// that spans several entities, such as a transfer between two wallets,
// driven by recorded events.
//
// A Manager reads the event stream (nats.StreamName) through a durable
// JetStream consumer of its own. For each recorded event it asks a pure
// function of the domain, React, which commands follow from the event,
// and sends them over an uneventful.Bus to the writers, like any other
// command. Each command's idempotency key is derived from the manager's
// name, the causing event's id and the command's step (Key), so that the
// same event handled twice, after a redelivery, a crash and a restart,
// or by two managers at once, sends commands that the writers apply once.
//
// Delivery is at least once and application exactly once:
//
//   - An event is acknowledged only after every command that follows
//     from it got a definite answer: accepted, rejected, or a failure
//     that no retry can change (invalid, internal). Until then it is
//     redelivered, after AckWait or at once when the manager stops.
//   - A command that meets ErrUnavailable or ErrTimeout (no writer, a
//     writer overloaded or stopping, no reply in time), or ErrNotFound (a
//     writer that does not know the command yet, during a rollout), is
//     sent again with the same key after a backoff, for as long as the
//     manager runs.
//   - Several managers with the same Name share the durable consumer, so
//     each event goes to one of them: run one per writer and they share
//     the work.
//
// The commands carry the causing event's id as causation_id and, unless
// React names another, its correlation_id, so that the event log shows
// the chain of a process.
package process
