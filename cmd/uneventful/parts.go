package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/metrics"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/postgres"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/writer"
)

// writerPart is one domain's write path running: the command subscription,
// the writer, the relay to the event stream, and optionally the catch-up
// projector of a read model.
type writerPart struct {
	sub     *natsgo.Subscription
	stopW   context.CancelFunc
	stopBg  context.CancelFunc
	writers sync.WaitGroup
	bg      sync.WaitGroup
}

type writerConfig struct {
	model       uneventful.Model
	store       uneventful.Store
	readModel   uneventful.ReadModel
	nc          *natsgo.Conn
	js          jetstream.JetStream
	groupCommit bool
	logger      *slog.Logger
	metrics     *metrics.Metrics // nil: none
}

// startWriter starts a domain's write path. Stop it with stop.
func startWriter(cfg writerConfig) (*writerPart, error) {
	name := cfg.model.Name()
	p := &writerPart{}
	wctx, stopW := context.WithCancel(context.Background())
	bgctx, stopBg := context.WithCancel(context.Background())
	p.stopW, p.stopBg = stopW, stopBg
	relay := (&writer.Relay{Store: cfg.store, Publisher: &uenats.Publisher{JS: cfg.js},
		Logger: cfg.logger.With("role", "relay", "domain", name)}).Init()
	w := &writer.Writer{Model: cfg.model, Store: cfg.store, ReadModel: cfg.readModel,
		Logger:    cfg.logger.With("role", "writer"),
		Committed: func([]uneventful.Record) { relay.Wake() }}
	if !cfg.groupCommit {
		w.MaxBatch = 1
	}
	var observer writer.Observer
	if cfg.metrics != nil {
		observer = cfg.metrics.Domain(name)
		w.Observer, relay.Observer = observer, observer
	}
	p.writers.Add(1)
	go func() { defer p.writers.Done(); w.Run(wctx) }()
	p.bg.Add(1)
	go func() { defer p.bg.Done(); relay.Run(bgctx) }()
	if prm, ok := cfg.readModel.(writer.PositionedReadModel); ok {
		proj := &writer.Projector{Domain: name, Store: cfg.store, ReadModel: prm, Logger: cfg.logger.With("role", "projector"), Observer: observer}
		p.bg.Add(1)
		go func() { defer p.bg.Done(); proj.Run(bgctx) }()
	}
	sub, err := uenats.Serve(cfg.nc, name, w, cfg.logger)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.sub = sub
	return p, nil
}

// stop takes no new commands, commits those taken, relays them, and returns.
func (p *writerPart) stop() {
	if p.sub != nil {
		if err := p.sub.Drain(); err == nil {
			deadline := time.Now().Add(10 * time.Second)
			for p.sub.IsValid() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	p.stopW()
	p.writers.Wait()
	p.stopBg()
	p.bg.Wait()
}

// openStore opens an event store: a SQLite path (or sqlite://path), or a
// postgres:// URL.
func openStore(ctx context.Context, url string) (uneventful.Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return postgres.Open(ctx, url)
	case url == "":
		return nil, errors.New("--store is required: a SQLite file path or a postgres:// URL")
	default:
		return sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite://"))
	}
}

// openHistory opens a history store, like openStore.
func openHistory(ctx context.Context, url string) (uneventful.HistoryStore, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return postgres.OpenHistory(ctx, url)
	case url == "":
		return nil, errors.New("--store is required: a SQLite file path or a postgres:// URL")
	default:
		return sqlite.OpenHistory(ctx, strings.TrimPrefix(url, "sqlite://"))
	}
}

// runHistory records the event stream into the history store until ctx ends.
func runHistory(ctx context.Context, js jetstream.JetStream, hist uneventful.HistoryStore, logger *slog.Logger) {
	uenats.Consume(ctx, js, "history", logger.With("role", "history"), func(ctx context.Context, events []uneventful.Event) error {
		_, err := hist.Record(ctx, events)
		return err
	})
}

// connect connects to an external NATS server, reconnecting forever.
func connect(url, name string, logger *slog.Logger) (*natsgo.Conn, error) {
	nc, err := natsgo.Connect(url, natsgo.Name(name), natsgo.MaxReconnects(-1), natsgo.RetryOnFailedConnect(true),
		natsgo.ReconnectWait(250*time.Millisecond),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil { // nil: closed on purpose
				logger.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) { logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }))
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redact(url), err)
	}
	return nc, nil
}

// natsReady is the readiness check of a NATS connection.
func natsReady(nc *natsgo.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected (%s)", nc.Status())
		}
		return nil
	}
}

// redact hides a URL's password for logs and messages.
func redact(url string) string {
	if at := strings.LastIndex(url, "@"); at > 0 {
		if scheme := strings.Index(url, "://"); scheme > 0 && scheme < at {
			if colon := strings.Index(url[scheme+3:at], ":"); colon >= 0 {
				return url[:scheme+3+colon+1] + "xxxxx" + url[at:]
			}
		}
	}
	return url
}
