package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
)

// StreamName is the JetStream stream that holds every recorded event.
const StreamName = "UNEVENTFUL_EVENTS"

// RecordedSubject is the subject a recorded event is published on:
// recorded.<domain>.<command>. The entity is in the event, not in the
// subject: JetStream keeps an index entry in memory for every distinct
// subject of a stream, which with one subject per entity cost ~270 bytes
// per entity ever written (a writer that had credited 1M wallets held
// ~300 MiB of it).
func RecordedSubject(e *uneventful.Event) string {
	return "recorded." + e.Domain + "." + e.Command
}

// StreamConfig says how the event stream is kept.
type StreamConfig struct {
	// Replicas is the number of copies in a JetStream cluster; default 1,
	// use 3 on a cluster.
	Replicas int
	// MaxAge is how long an event stays in the stream; a subscriber such
	// as the history writer may be down this long and still catch up.
	// Default 7 days.
	MaxAge time.Duration
}

// EnsureStream creates the event stream, or updates it to cfg.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "every recorded command attempt of every uneventful domain",
		Subjects:    []string{"recorded.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Publisher publishes recorded events to the event stream.
type Publisher struct {
	JS jetstream.JetStream
}

// Publish publishes the events and waits until JetStream has stored every
// one. Each carries its event_id as the message id, so that a repeat within
// the stream's duplicate window is stored once; subscribers dedupe on
// event_id beyond that.
func (p *Publisher) Publish(ctx context.Context, events []uneventful.Event) error {
	// A publish whose ack is lost (the stream leader died after taking
	// it) never resolves: bound the wait, the relay retries and the
	// stream deduplicates on the message id.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		data, err := json.Marshal(&events[i])
		if err != nil {
			return fmt.Errorf("encode %s: %w", events[i].EventID, err)
		}
		m := &nats.Msg{Subject: RecordedSubject(&events[i]), Data: data}
		f, err := p.JS.PublishMsgAsync(m, jetstream.WithMsgID(events[i].EventID))
		if err != nil {
			return fmt.Errorf("publish %s: %w", events[i].EventID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Consume feeds the events of the stream to fn in batches through the
// durable consumer named durable, from the first event the durable has not
// acknowledged, until ctx ends. A batch is acknowledged only after fn
// returns nil; on an error it is redelivered, so fn must be idempotent
// (dedupe on event_id).
func Consume(ctx context.Context, js jetstream.JetStream, durable string, logger *slog.Logger, fn func(context.Context, []uneventful.Event) error) error {
	if logger == nil {
		logger = slog.Default()
	}
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			// Events handed to a subscriber that died come back after
			// this; a slow subscriber gets them twice, which it dedupes.
			AckWait:       5 * time.Second,
			MaxAckPending: 10000,
		})
		if err == nil {
			break
		}
		logger.Warn("create consumer; retrying", "durable", durable, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("consume %s: %w", durable, err)
	}
	defer it.Stop()
	for ctx.Err() == nil {
		// Block for one event, then take whatever else is buffered, so a
		// lone event is recorded at once and a burst in one batch.
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("next event", "err", err)
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		msgs := []jetstream.Msg{m}
		for len(msgs) < 1000 {
			m, err := it.Next(jetstream.NextMaxWait(time.Millisecond))
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		events := make([]uneventful.Event, 0, len(msgs))
		kept := msgs[:0]
		for _, m := range msgs {
			var e uneventful.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				logger.Error("drop undecodable event", "subject", m.Subject(), "err", err)
				_ = m.Term()
				continue
			}
			kept = append(kept, m)
			events = append(events, e)
		}
		msgs = kept
		if len(events) == 0 {
			continue
		}
		if err := fn(ctx, events); err != nil {
			if ctx.Err() != nil {
				break // stopping: unacknowledged, so redelivered on the next start
			}
			logger.Warn("record events; they will be redelivered", "count", len(events), "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(time.Second)
			}
			continue
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				logger.Debug("ack", "err", err)
			}
		}
	}
	return ctx.Err()
}
