package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/uneventful/uneventful"
)

// CommandSubject is the subject a command for an entity travels on.
func CommandSubject(domain, entityID, command string) string {
	return "event." + domain + "." + entityID + "." + command
}

// Bus sends commands to writers with NATS request/reply.
type Bus struct {
	Conn *nats.Conn
}

var _ uneventful.Bus = (*Bus)(nil)

// NewBus returns a Bus on the connection.
func NewBus(nc *nats.Conn) *Bus { return &Bus{Conn: nc} }

// Send implements uneventful.Bus.
func (b *Bus) Send(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	msg, err := b.Conn.RequestWithContext(ctx, CommandSubject(e.Domain, e.EntityID, e.Command), data)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return nil, uneventful.Errorf(uneventful.ErrUnavailable, "no_writer",
			"no %s writer is running; nothing was applied, retry later", e.Domain)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.Canceled):
		return nil, &uneventful.Error{Kind: uneventful.ErrTimeout, Code: "timeout", Err: err,
			Message: "the writer did not answer in time; the command may or may not have been applied, retry with the same Idempotency-Key"}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		return nil, &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "bus_unavailable", Err: err,
			Message: "the message bus is not connected; nothing was applied, retry later"}
	default:
		return nil, &uneventful.Error{Kind: uneventful.ErrUnavailable, Code: "bus_unavailable", Err: err,
			Message: "the command could not be sent to a writer; retry later"}
	}
	var r uneventful.Reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return &r, nil
}

// Serve subscribes a writer of domain to its command subjects in the queue
// group "writers.<domain>", so that each command reaches one writer. It
// returns the subscription; drain it to stop taking commands and let the
// ones taken finish.
func Serve(nc *nats.Conn, domain string, h uneventful.CommandHandler, logger *slog.Logger) (*nats.Subscription, error) {
	if logger == nil {
		logger = slog.Default()
	}
	prefix := "event." + domain + "."
	sub, err := nc.QueueSubscribe(prefix+">", "writers."+domain, func(m *nats.Msg) {
		respond := func(r *uneventful.Reply) {
			if m.Reply == "" {
				return
			}
			if err := m.Respond(uneventful.MarshalReply(r)); err != nil {
				logger.Warn("reply to command", "subject", m.Subject, "err", err)
			}
		}
		var e uneventful.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			respond(&uneventful.Reply{Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrInvalid, "malformed_command", "the command envelope cannot be read: %v", err))})
			return
		}
		if want := CommandSubject(e.Domain, e.EntityID, e.Command); want != m.Subject || !strings.HasPrefix(m.Subject, prefix) {
			respond(&uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrInvalid, "subject_mismatch", "the command envelope names %s but arrived on %s", want, m.Subject))})
			return
		}
		h.Handle(&e, respond)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s writers: %w", domain, err)
	}
	// Commands queue in the client while the writer commits; let a burst
	// queue instead of being dropped as a slow consumer, the writer's own
	// bound answers 503 past that.
	if err := sub.SetPendingLimits(1<<16, 64<<20); err != nil {
		return nil, err
	}
	return sub, nil
}
