package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/metrics"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/redis"
)

// roleFlags are the flags every split role shares.
type roleFlags struct {
	http, nats, logLevel *string
	replicas             *int
	natsCreds, natsNkey  *string
	natsCA, natsCert     *string
	natsKey              *string
}

func (m *Main) roleFlags(fs *flagSet, httpDefault string) roleFlags {
	return roleFlags{
		http:      fs.String("http", httpDefault, "address to serve HTTP on (/healthz, /readyz)"),
		nats:      fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated; nats://user:password@host:4222 or nats://token@host:4222 to log in, tls:// to require TLS"),
		logLevel:  fs.String("log-level", "info", "debug, info, warn or error"),
		replicas:  fs.Int("replicas", 1, "JetStream replicas of the event stream (3 on a cluster)"),
		natsCreds: fs.String("nats-creds", "", "log in to NATS with this JWT credentials file (.creds)"),
		natsNkey:  fs.String("nats-nkey", "", "log in to NATS with the nkey whose seed is in this file"),
		natsCA:    fs.String("nats-ca", "", "trust the NATS server's certificate if signed by a CA in this PEM file (default: the system's CAs); turns TLS on"),
		natsCert:  fs.String("nats-cert", "", "client certificate (PEM) to present to NATS, with --nats-key; turns TLS on"),
		natsKey:   fs.String("nats-key", "", "private key (PEM) of --nats-cert"),
	}
}

// natsOptions checks the files of the --nats-* flags and returns the
// options of the connection.
func (f roleFlags) natsOptions() ([]natsgo.Option, error) {
	return natsSecurity{creds: *f.natsCreds, nkey: *f.natsNkey, ca: *f.natsCA, cert: *f.natsCert, key: *f.natsKey}.options()
}

// httpFlags are the flags of the roles that serve the API (serve, server).
type httpFlags struct {
	apiKeysFile *string
	maxInFlight *int
}

func (m *Main) httpFlags(fs *flagSet) httpFlags {
	return httpFlags{
		apiKeysFile: fs.String("api-keys-file", "", "require API keys from this file (lines of <name> <read|write|read,write> <key>); default: no keys"),
		maxInFlight: fs.Int("max-in-flight", uehttp.DefaultMaxInFlight, "commands the HTTP server waits on at once; past it a command is answered 503 overloaded with Retry-After at once"),
	}
}

// connectRole connects to NATS and makes sure the event stream exists. It
// waits for NATS to be there, but fails when NATS refuses the role (see
// refused), which waiting would not mend.
func (m *Main) connectRole(ctx context.Context, f roleFlags, opts []natsgo.Option, name string, logger *slog.Logger) (*natsConn, error) {
	nc, err := connect(*f.nats, name, opts, logger)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		nc.Close()
		return nil, err
	}
	// NATS may start after us: wait for it, saying so, until ctx ends.
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = uenats.EnsureStream(actx, js, uenats.StreamConfig{Replicas: *f.replicas})
		cancel()
		if err == nil {
			break
		}
		last := nc.LastError()
		if refused(last) {
			nc.Close()
			return nil, fmt.Errorf("nats %s refused the role: %w (check --nats and the --nats-* flags: credentials, permissions, TLS)", redact(*f.nats), last)
		}
		if ctx.Err() != nil {
			nc.Close()
			return nil, ctx.Err()
		}
		logger.Warn("waiting for NATS with JetStream", "url", redact(*f.nats), "status", nc.Status().String(), "err", err, "last_err", last)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return &natsConn{Conn: nc, js: js}, nil
}

// redisFlags are the flags of the roles that use the Redis read model.
type redisFlags struct {
	url, prefix, ca, cert, key *string
}

func (m *Main) redisFlags(fs *flagSet) redisFlags {
	return redisFlags{
		url:    fs.String("redis", "redis://127.0.0.1:6379", "Redis URL of the read model: redis://[user:password@]host:port/db, rediss:// for TLS"),
		prefix: fs.String("redis-prefix", "", "prefix of every Redis key, to share a Redis between deployments"),
		ca:     fs.String("redis-ca", "", "with rediss://, trust Redis's certificate if signed by a CA in this PEM file (default: the system's CAs)"),
		cert:   fs.String("redis-cert", "", "with rediss://, client certificate (PEM) to present to Redis, with --redis-key"),
		key:    fs.String("redis-key", "", "private key (PEM) of --redis-cert"),
	}
}

// options checks the files of the --redis-* flags and returns the options
// of the read model.
func (f redisFlags) options(logger *slog.Logger) ([]redis.Option, error) {
	tlsConfig, err := tlsFiles("redis", *f.ca, *f.cert, *f.key)
	if err != nil {
		return nil, err
	}
	opts := []redis.Option{redis.WithPrefix(*f.prefix), redis.WithLogger(logger)}
	if tlsConfig != nil {
		if !strings.HasPrefix(*f.url, "rediss://") {
			return nil, fmt.Errorf("--redis-ca, --redis-cert and --redis-key need a rediss:// URL; --redis is %s", redact(*f.url))
		}
		opts = append(opts, redis.WithTLS(tlsConfig))
	}
	return opts, nil
}

// server runs the HTTP role: stateless, reads the read model, sends
// commands over NATS.
func (m *Main) server(ctx context.Context, args []string) error {
	fs := m.flags("server")
	f := m.roleFlags(fs, "127.0.0.1:8080")
	rf := m.redisFlags(fs)
	hf := m.httpFlags(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	logger, err := m.logger(*f.logLevel)
	if err != nil {
		return err
	}
	natsOpts, err := f.natsOptions()
	if err != nil {
		return err
	}
	redisOpts, err := rf.options(logger)
	if err != nil {
		return err
	}
	nc, err := m.connectRole(ctx, f, natsOpts, "uneventful server", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	mets := metrics.New()
	watchNATS(nc.Conn, mets)
	rm, err := redis.Open(ctx, *rf.url, redisOpts...)
	if err != nil {
		return err
	}
	defer rm.Close()
	keys, err := apiKeys(*hf.apiKeysFile)
	if err != nil {
		return err
	}
	srv := &uehttp.Server{
		APIKeys:     keys,
		Domains:     domains(),
		Routes:      webRoutes(ctx, nc.Conn, nil, "the server role", logger),
		Bus:         uenats.NewBus(nc.Conn),
		Reader:      rm,
		Logger:      logger.With("role", "server"),
		Metrics:     mets,
		SourceName:  "server",
		MaxInFlight: *hf.maxInFlight,
		SourceID:    fmt.Sprintf("%s:%d", hostname(), os.Getpid()),
		Ready: map[string]func(context.Context) error{
			"nats":  natsReady(nc.Conn),
			"redis": redisReady(rm),
		},
	}
	return m.listen(ctx, srv, *f.http, logger, "nats", redact(*f.nats), "redis", redact(*rf.url))
}

// writer runs one domain's write path.
func (m *Main) writer(ctx context.Context, args []string) error {
	fs := m.flags("writer")
	f := m.roleFlags(fs, "127.0.0.1:0")
	domainName := fs.String("domain", "wallet", "the domain whose commands to take")
	storeURL := fs.String("store", "", "event store: a SQLite file path (one writer per file) or a postgres:// URL (any number of writers)")
	rf := m.redisFlags(fs)
	groupCommit := fs.Bool("group-commit", true, "commit every command that queued during the previous commit in one transaction")
	if err := fs.parse(args); err != nil {
		return err
	}
	logger, err := m.logger(*f.logLevel)
	if err != nil {
		return err
	}
	natsOpts, err := f.natsOptions()
	if err != nil {
		return err
	}
	redisOpts, err := rf.options(logger)
	if err != nil {
		return err
	}
	model, err := domain(*domainName)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer store.Close()
	rm, err := redis.Open(ctx, *rf.url, redisOpts...)
	if err != nil {
		return err
	}
	defer rm.Close()
	nc, err := m.connectRole(ctx, f, natsOpts, "uneventful writer "+model.Name(), logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	mets := metrics.New()
	watchNATS(nc.Conn, mets)
	p, err := startWriter(writerConfig{model: model, store: store, readModel: rm, nc: nc.Conn, js: nc.js, groupCommit: *groupCommit, logger: logger, metrics: mets})
	if err != nil {
		return err
	}
	defer p.stop()
	defer startTransfers(model.Name(), nc.js, uenats.NewBus(nc.Conn), logger)()
	srv := m.healthServer(logger, "writer", map[string]func(context.Context) error{
		"nats":  natsReady(nc.Conn),
		"store": storesReady(map[string]uneventful.Store{model.Name(): store}),
		"redis": redisReady(rm),
	})
	srv.Metrics = mets
	return m.listen(ctx, srv, *f.http, logger, "domain", model.Name(), "store", redact(*storeURL))
}

// history runs the history writer.
func (m *Main) historyRole(ctx context.Context, args []string) error {
	fs := m.flags("history-writer")
	f := m.roleFlags(fs, "127.0.0.1:0")
	storeURL := fs.String("store", "./data/history.db", "history store: a SQLite file path or a postgres:// URL")
	if err := fs.parse(args); err != nil {
		return err
	}
	logger, err := m.logger(*f.logLevel)
	if err != nil {
		return err
	}
	natsOpts, err := f.natsOptions()
	if err != nil {
		return err
	}
	hist, err := openHistory(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer hist.Close()
	nc, err := m.connectRole(ctx, f, natsOpts, "uneventful history", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	mets := metrics.New()
	watchNATS(nc.Conn, mets)
	watchHistory(nc.js, mets)
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); runHistory(hctx, nc.js, hist, logger) }()
	defer func() { stop(); <-done }()
	srv := m.healthServer(logger, "history", map[string]func(context.Context) error{"nats": natsReady(nc.Conn)})
	srv.Metrics = mets
	return m.listen(ctx, srv, *f.http, logger, "store", redact(*storeURL))
}

// healthServer is the HTTP server of a role without domain routes.
func (m *Main) healthServer(logger *slog.Logger, role string, ready map[string]func(context.Context) error) *uehttp.Server {
	return &uehttp.Server{Logger: logger.With("role", role), SourceName: role, Ready: ready}
}

func redisReady(rm *redis.ReadModel) func(context.Context) error {
	return func(ctx context.Context) error { return rm.Ping(ctx) }
}

// natsConn is a NATS connection with its JetStream context.
type natsConn struct {
	*natsgo.Conn
	js jetstream.JetStream
}

// apiKeys loads the API keys file, if one is named.
func apiKeys(path string) (*uehttp.APIKeys, error) {
	if path == "" {
		return nil, nil
	}
	return uehttp.LoadAPIKeys(path)
}
