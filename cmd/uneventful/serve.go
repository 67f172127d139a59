package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/memory"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
	"github.com/uneventful/uneventful/writer"
)

// domains are the domains this binary serves.
func domains() []uneventful.Model {
	return []uneventful.Model{wallet.New(wallet.DefaultScale)}
}

// serve runs every role in one process on embedded defaults.
func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address to serve HTTP on")
	dataDir := fs.String("data", "./data", "directory for the SQLite files and JetStream")
	natsHost := fs.String("nats-host", "127.0.0.1", "address the embedded NATS server listens on")
	natsPort := fs.Int("nats-port", 0, "port of the embedded NATS server: 0 picks a free one, -1 listens on none")
	groupCommit := fs.Bool("group-commit", true, "commit every command that queued during the previous commit in one transaction")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.parse(args); err != nil {
		return err
	}
	logger, err := m.logger(*logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	ns, err := uenats.StartEmbedded(uenats.EmbeddedConfig{Host: *natsHost, Port: *natsPort, StoreDir: filepath.Join(*dataDir, "nats")})
	if err != nil {
		return err
	}
	closers = append(closers, ns.Close)
	if *natsPort >= 0 {
		logger.Info("embedded NATS listening", "url", ns.URL())
	}
	nc, err := ns.Connect("uneventful serve")
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	closers = append(closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := uenats.EnsureStream(ctx, js, uenats.StreamConfig{}); err != nil {
		return err
	}

	models := domains()
	stores := make(map[string]uneventful.Store)
	for _, d := range models {
		st, err := sqlite.Open(ctx, filepath.Join(*dataDir, d.Name()+".db"))
		if err != nil {
			return err
		}
		closers = append(closers, func() { st.Close() })
		stores[d.Name()] = st
	}
	hist, err := sqlite.OpenHistory(ctx, filepath.Join(*dataDir, "history.db"))
	if err != nil {
		return err
	}
	closers = append(closers, func() { hist.Close() })
	rm := memory.New(stores)

	// Background roles stop after HTTP and the command subscriptions, so
	// that every command taken is committed and relayed.
	roles, stopRoles := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopRoles(); wg.Wait() }()
	var subs []*natsgo.Subscription
	var writersWG sync.WaitGroup
	writersCtx, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopWriters(); writersWG.Wait() }()
	for _, d := range models {
		relay := (&writer.Relay{Store: stores[d.Name()], Publisher: &uenats.Publisher{JS: js}, Logger: logger.With("role", "relay", "domain", d.Name())}).Init()
		w := &writer.Writer{Model: d, Store: stores[d.Name()], ReadModel: rm, Logger: logger.With("role", "writer", "domain", d.Name()),
			Committed: func([]uneventful.Record) { relay.Wake() }}
		if !*groupCommit {
			w.MaxBatch = 1
		}
		writersWG.Add(1)
		go func() { defer writersWG.Done(); w.Run(writersCtx) }()
		wg.Add(1)
		go func() { defer wg.Done(); relay.Run(roles) }()
		sub, err := uenats.Serve(nc, d.Name(), w, logger)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		uenats.Consume(roles, js, "history", logger.With("role", "history"), func(ctx context.Context, events []uneventful.Event) error {
			_, err := hist.Record(ctx, events)
			return err
		})
	}()

	srv := &uehttp.Server{
		Domains:    models,
		Bus:        uenats.NewBus(nc),
		Reader:     rm,
		Logger:     logger.With("role", "server"),
		SourceName: "serve",
		SourceID:   fmt.Sprintf("%s:%d", hostname(), os.Getpid()),
		Ready: map[string]func(context.Context) error{
			"nats": func(context.Context) error {
				if !nc.IsConnected() {
					return errors.New("not connected")
				}
				return nil
			},
			"store": func(ctx context.Context) error {
				for name, st := range stores {
					if _, err := st.Checkpoint(ctx, "relay"); err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
				}
				return nil
			},
		},
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *httpAddr, err)
	}
	addr := ln.Addr().String()
	logger.Info("serving", "http", "http://"+addr, "data", *dataDir, "domains", len(models))
	if m.Ready != nil {
		m.Ready <- addr
	}
	err = srv.ListenAndServe(ctx, ln) // returns once ctx ends and in-flight requests finish
	logger.Info("shutting down")
	for _, sub := range subs {
		if derr := sub.Drain(); derr != nil {
			logger.Warn("drain command subscription", "err", derr)
		}
	}
	waitDrained(subs, 10*time.Second)
	stopWriters()
	writersWG.Wait()
	stopRoles()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// waitDrained waits until the subscriptions have handed every taken message
// to their handlers.
func waitDrained(subs []*natsgo.Subscription, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, s := range subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
