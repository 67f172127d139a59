package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/inventory"
	"github.com/uneventful/uneventful/memory"
	"github.com/uneventful/uneventful/metrics"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
)

// domains are the domains this binary serves.
func domains() []uneventful.Model {
	return []uneventful.Model{wallet.New(wallet.DefaultScale), inventory.New()}
}

// domain returns the served domain called name.
func domain(name string) (uneventful.Model, error) {
	var names []string
	for _, d := range domains() {
		if d.Name() == name {
			return d, nil
		}
		names = append(names, d.Name())
	}
	return nil, fmt.Errorf("--domain %q: this binary serves %v", name, names)
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
	hf := m.httpFlags(fs)
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof under /debug/pprof/ on this separate `address` (e.g. 127.0.0.1:6060), for profiling; empty: off")
	// Only on the command line, never from the environment: it must not
	// be switched on by a forgotten variable.
	noSync := fs.FlagSet.Bool("unsafe-no-sync", false, "BENCHMARKS ONLY: do not sync SQLite commits to disk (synchronous=OFF); a power loss or OS crash can lose acknowledged commands")
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
	var sqliteOpts []sqlite.Option
	if *noSync {
		sqliteOpts = append(sqliteOpts, sqlite.WithSync(sqlite.SyncOff))
		fmt.Fprintln(m.Stderr, "!!! UNSAFE: --unsafe-no-sync: SQLite commits are NOT synced to disk. A power loss or an")
		fmt.Fprintln(m.Stderr, "!!! operating system crash can lose acknowledged commands. For benchmarks only; never for real data.")
		logger.Warn("UNSAFE: --unsafe-no-sync: acknowledged commands are not durable; for benchmarks only", "data", *dataDir)
	}
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stop()
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
	// A full disk leaves JetStream refusing publishes until it restarts:
	// the watch restarts it once it can write again.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	go ns.Watch(watchCtx, time.Second, logger.With("role", "nats"))
	closers = append(closers, stopWatch)
	if *natsPort >= 0 {
		logger.Info("embedded NATS listening", "url", ns.URL())
	}
	nc, err := ns.Connect("uneventful serve")
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	closers = append(closers, nc.Close)
	mets := metrics.New()
	watchNATS(nc, mets)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := uenats.EnsureStream(ctx, js, uenats.StreamConfig{}); err != nil {
		return err
	}
	watchHistory(js, mets)

	models := domains()
	stores := make(map[string]uneventful.Store)
	for _, d := range models {
		st, err := sqlite.Open(ctx, filepath.Join(*dataDir, d.Name()+".db"), sqliteOpts...)
		if err != nil {
			return err
		}
		closers = append(closers, func() { st.Close() })
		stores[d.Name()] = st
	}
	hist, err := sqlite.OpenHistory(ctx, filepath.Join(*dataDir, "history.db"), sqliteOpts...)
	if err != nil {
		return err
	}
	closers = append(closers, func() { hist.Close() })
	rm := memory.New(stores)

	var parts []*writerPart
	defer func() {
		for _, p := range parts {
			p.stop()
		}
	}()
	for _, d := range models {
		p, err := startWriter(writerConfig{model: d, store: stores[d.Name()], readModel: rm, nc: nc, js: js, groupCommit: *groupCommit, logger: logger, metrics: mets,
			relayDurableAfter: ns.DurableAfter()})
		if err != nil {
			return err
		}
		parts = append(parts, p)
	}
	stopTransfers := startTransfers(wallet.Name, js, uenats.NewBus(nc), logger)
	defer stopTransfers()
	histCtx, stopHist := context.WithCancel(context.WithoutCancel(ctx))
	var histWG sync.WaitGroup
	histWG.Add(1)
	go func() { defer histWG.Done(); runHistory(histCtx, js, hist, logger) }()
	defer func() { stopHist(); histWG.Wait() }()

	keys, err := apiKeys(*hf.apiKeysFile)
	if err != nil {
		return err
	}
	srv := &uehttp.Server{
		APIKeys:     keys,
		Domains:     models,
		Routes:      webRoutes(ctx, nc, stores, "uneventful serve", logger),
		Bus:         uenats.NewBus(nc),
		Reader:      rm,
		Logger:      logger.With("role", "server"),
		Metrics:     mets,
		MaxInFlight: *hf.maxInFlight,
		SourceName:  "serve",
		SourceID:    fmt.Sprintf("%s:%d", hostname(), os.Getpid()),
		Ready: map[string]func(context.Context) error{
			"nats":  natsReady(nc),
			"store": storesReady(stores),
		},
	}
	err = m.listen(ctx, srv, *httpAddr, logger, "data", *dataDir)
	// In order: commands taken are committed and relayed, then the
	// history writer records what was relayed.
	stopTransfers()
	for _, p := range parts {
		p.stop()
	}
	stopHist()
	histWG.Wait()
	return err
}

// listen serves srv on addr until ctx ends and in-flight requests finish.
func (m *Main) listen(ctx context.Context, srv *uehttp.Server, addr string, logger interface {
	Info(string, ...any)
}, attrs ...any) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	bound := ln.Addr().String()
	logger.Info("serving", append([]any{"http", "http://" + bound}, attrs...)...)
	if m.Ready != nil {
		m.Ready <- bound
	}
	err = srv.ListenAndServe(ctx, ln)
	logger.Info("shutting down")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// servePprof serves net/http/pprof's handlers on their own listener, apart
// from the public API, until stop is called.
func servePprof(addr string, logger interface{ Info(string, ...any) }) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	logger.Info("serving pprof", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close() }, nil
}

// storesReady checks that each store answers a read.
func storesReady(stores map[string]uneventful.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		for name, st := range stores {
			if _, err := st.Checkpoint(ctx, "relay"); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
}
