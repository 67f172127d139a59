package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uenats "github.com/uneventful/uneventful/nats"
)

// Command is a command that follows from a recorded event.
type Command struct {
	// Step names the command among those that follow from one event,
	// e.g. "receive". With the manager's name and the event's id it
	// makes the command's idempotency key, so it must come out the same
	// every time the event is handled. Default: Command.
	Step string
	// Domain, EntityID and Command say where the command goes.
	Domain   string
	EntityID string
	Command  string
	// Data is the command's data, as the domain's Decide takes it: a
	// manager's commands do not go through Parse.
	Data json.RawMessage
	// CorrelationID, if set, is the command's correlation id; default:
	// the causing event's.
	CorrelationID string
}

// React returns the commands that follow from a recorded event, none for
// most events. It must be pure: the same event gives the same commands,
// in the same order with the same data, so that handling an event again
// sends the same commands with the same keys. An error means the event
// cannot be handled at all; it is logged and the event is dropped, since
// handling it again would fail again.
type React func(e *uneventful.Event) ([]Command, error)

// Defaults of a Manager's settings.
const (
	DefaultSubject     = "recorded.>"
	DefaultWorkers     = 32
	DefaultAckWait     = 2 * time.Second
	DefaultSendTimeout = 5 * time.Second
	DefaultMinBackoff  = 50 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

// Manager is a process manager. Fill its fields, then call Run.
type Manager struct {
	// Name names the durable consumer and prefixes every idempotency
	// key, e.g. "transfers". Letters, digits, '-' and '_'. Managers with
	// the same name share the work; renaming a manager makes it start
	// over from the stream's first event, with new keys. Required.
	Name string
	// JS is the JetStream of the event stream. Required.
	JS jetstream.JetStream
	// Bus carries the commands to the writers. Required.
	Bus uneventful.Bus
	// React says which commands follow from an event. Required.
	React React
	// Subject filters the events the manager reads, e.g.
	// "recorded.wallet.>". Default DefaultSubject: every event.
	Subject string
	// Workers is how many events are handled at once; their commands
	// are sent in parallel. Default DefaultWorkers.
	Workers int
	// AckWait is how long an event handed to a manager that died waits
	// before it is handed to another; while the manager works on an
	// event it keeps telling the server so. Default DefaultAckWait.
	AckWait time.Duration
	// SendTimeout bounds each attempt to send a command. Default
	// DefaultSendTimeout.
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause before a command is sent
	// again; it doubles from one to the other. Defaults DefaultMinBackoff
	// and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// SourceID names this process in the commands it sends. Default
	// "<hostname>:<pid>".
	SourceID string
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	log *slog.Logger
}

// Key returns the idempotency key of the command that the manager named
// name sends at step after the event eventID:
// "process.<name>.<event id>.<step>".
func Key(name, eventID, step string) string {
	return "process." + name + "." + eventID + "." + step
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (m *Manager) init() error {
	switch {
	case !nameRE.MatchString(m.Name):
		return fmt.Errorf("process: Manager.Name %q: want letters, digits, '-' and '_'", m.Name)
	case m.JS == nil || m.Bus == nil || m.React == nil:
		return fmt.Errorf("process: manager %s: JS, Bus and React are required", m.Name)
	}
	if m.Subject == "" {
		m.Subject = DefaultSubject
	}
	if m.Workers <= 0 {
		m.Workers = DefaultWorkers
	}
	if m.AckWait <= 0 {
		m.AckWait = DefaultAckWait
	}
	if m.SendTimeout <= 0 {
		m.SendTimeout = DefaultSendTimeout
	}
	if m.MinBackoff <= 0 {
		m.MinBackoff = DefaultMinBackoff
	}
	if m.MaxBackoff < m.MinBackoff {
		m.MaxBackoff = max(DefaultMaxBackoff, m.MinBackoff)
	}
	if m.SourceID == "" {
		host, _ := os.Hostname()
		m.SourceID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	m.log = m.Logger.With("process", m.Name)
	return nil
}

// Run handles events until ctx ends, then stops taking events, lets those
// it is handling go back to the stream unacknowledged (they are
// redelivered, to another manager of the same name if one runs), and
// returns. It returns an error only for a Manager that is not filled in
// right.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.init(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, m.Workers)
	for ctx.Err() == nil {
		cons, err := m.consumer(ctx)
		if err != nil {
			break // ctx ended
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(m.Workers))
		if err != nil {
			m.log.Warn("read the event stream; retrying", "err", err)
			pause(ctx, time.Second)
			continue
		}
		m.log.Info("process manager running", "subject", m.Subject, "workers", m.Workers)
		m.consume(ctx, it, slots, &wg)
		it.Stop()
	}
	return nil
}

// consumer creates or updates the durable consumer, retrying until ctx
// ends.
func (m *Manager) consumer(ctx context.Context) (jetstream.Consumer, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := m.JS.CreateOrUpdateConsumer(cctx, uenats.StreamName, jetstream.ConsumerConfig{
			Durable:       m.Name,
			Description:   "uneventful process manager " + m.Name,
			FilterSubject: m.Subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait:       m.AckWait,
			MaxAckPending: 1000,
		})
		cancel()
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m.log.Warn("create the durable consumer; retrying", "err", err)
		pause(ctx, time.Second)
	}
}

// consume hands events to workers until ctx ends or the iterator fails for
// good.
func (m *Manager) consume(ctx context.Context, it jetstream.MessagesContext, slots chan struct{}, wg *sync.WaitGroup) {
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-slots
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrBadRequest):
				m.log.Warn("the event stream's iterator stopped; starting again", "err", err)
				pause(ctx, time.Second)
				return
			}
			m.log.Warn("next event", "err", err)
			pause(ctx, 200*time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			m.handle(ctx, msg)
		}()
	}
}

// handle sends the commands that follow from one event and acknowledges
// it once each got a definite answer.
func (m *Manager) handle(ctx context.Context, msg jetstream.Msg) {
	var e uneventful.Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		m.log.Error("drop an event that cannot be read", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	commands, err := m.React(&e)
	if err == nil {
		err = check(commands)
	}
	if err != nil {
		m.log.Error("drop an event that cannot be handled; the process does not go on from it", "event", e.String(), "err", err)
		_ = msg.Term()
		return
	}
	if len(commands) > 0 {
		stop := keepAlive(msg, m.AckWait/3)
		defer stop()
	}
	for i := range commands {
		if err := m.send(ctx, &e, &commands[i]); err != nil {
			// Stopping: give the event back now, so that another
			// manager takes it without waiting for AckWait.
			_ = msg.Nak()
			return
		}
	}
	if err := msg.Ack(); err != nil {
		// Redelivered then; its commands are replayed, not applied.
		m.log.Debug("ack", "event", e.EventID, "err", err)
	}
}

// check fills in default steps and checks that the steps are distinct.
func check(commands []Command) error {
	seen := make(map[string]bool, len(commands))
	for i := range commands {
		c := &commands[i]
		if c.Step == "" {
			c.Step = c.Command
		}
		if c.Domain == "" || c.EntityID == "" || c.Command == "" {
			return fmt.Errorf("command %d (step %q) lacks its domain, entity or command", i, c.Step)
		}
		if seen[c.Step] {
			return fmt.Errorf("two commands have the step %q; each needs its own, for its idempotency key", c.Step)
		}
		seen[c.Step] = true
	}
	return nil
}

// keepAlive tells the server that msg is being worked on every period,
// until stop is called, so that it is not handed to another manager.
func keepAlive(msg jetstream.Msg, period time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// send sends one command until it gets a definite answer. It returns an
// error only when ctx ends first.
func (m *Manager) send(ctx context.Context, cause *uneventful.Event, c *Command) error {
	key := Key(m.Name, cause.EventID, c.Step)
	correlation := c.CorrelationID
	if correlation == "" {
		correlation = cause.CorrelationID
	}
	log := m.log.With("cause", cause.EventID, "step", c.Step, "entity", c.Domain+"."+c.EntityID, "idempotency_key", key)
	backoff := m.MinBackoff
	for attempt := 1; ; attempt++ {
		e := &uneventful.Event{
			EventID:        uneventful.NewID(),
			CorrelationID:  correlation,
			CausationID:    cause.EventID,
			Timestamp:      time.Now().UTC(),
			SourceName:     "process." + m.Name,
			SourceID:       m.SourceID,
			TypeName:       c.Domain + "." + c.EntityID + "." + c.Command,
			Domain:         c.Domain,
			EntityID:       c.EntityID,
			Command:        c.Command,
			Data:           c.Data,
			IdempotencyKey: key,
		}
		sctx, cancel := context.WithTimeout(ctx, m.SendTimeout)
		r, err := m.Bus.Send(sctx, e)
		cancel()
		if err == nil && r.Error != nil {
			err = r.Error.Err()
		}
		switch {
		case err == nil:
			log.Debug("sent", "outcome", r.Outcome, "code", r.Code, "event_id", r.EventID, "version", r.Version, "attempts", attempt)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !retryable(err):
			log.Error("a command of the process failed for good; it is not sent again", "err", err, "code", uneventful.ErrorCode(err))
			return nil
		}
		level := slog.LevelDebug
		if attempt%10 == 0 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "send again", "attempt", attempt, "err", err)
		// Full jitter, so that managers retrying together fall apart.
		if !pause(ctx, backoff/2+rand.N(backoff/2+1)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, m.MaxBackoff)
	}
}

// retryable reports whether sending again may give another answer:
// nothing was applied (unavailable, conflict) or no one knows (timeout);
// the writer that answered does not know the command (not found), as an
// older writer does while a new version is rolled out; or the error did
// not come from a writer at all. Invalid and internal errors are bugs
// that no retry fixes.
func retryable(err error) bool {
	var e *uneventful.Error
	return errors.Is(err, uneventful.ErrUnavailable) || errors.Is(err, uneventful.ErrTimeout) ||
		errors.Is(err, uneventful.ErrConflict) || errors.Is(err, uneventful.ErrNotFound) || !errors.As(err, &e)
}

// pause waits for d or until ctx ends, and reports whether ctx is still
// live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
