package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

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
	// relayDurableAfter: see writer.Relay.DurableAfter (the embedded
	// NATS server's; 0 for a NATS server run by the operator).
	relayDurableAfter time.Duration
}

// startWriter starts a domain's write path. Stop it with stop.
func startWriter(cfg writerConfig) (*writerPart, error) {
	name := cfg.model.Name()
	p := &writerPart{}
	wctx, stopW := context.WithCancel(context.Background())
	bgctx, stopBg := context.WithCancel(context.Background())
	p.stopW, p.stopBg = stopW, stopBg
	relay := (&writer.Relay{Store: cfg.store, Publisher: &uenats.Publisher{JS: cfg.js}, DurableAfter: cfg.relayDurableAfter,
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

// natsSecurity is how a role proves who it is to NATS and checks that NATS
// is who it says, beyond what the URL holds (user:password@ or token@, and
// tls:// to require TLS).
type natsSecurity struct {
	creds, nkey   string // a JWT credentials file, or an nkey seed file
	ca, cert, key string // PEM files: CAs to trust, the client certificate and its key
}

// options checks every file now, so that a missing or malformed one is
// reported at start naming its flag, and returns the nats.go options. The
// files are read again on each reconnect, so that rotated ones are taken
// up without a restart.
func (s natsSecurity) options() ([]natsgo.Option, error) {
	var opts []natsgo.Option
	switch {
	case s.creds != "" && s.nkey != "":
		return nil, errors.New("--nats-creds and --nats-nkey are alternatives: give one")
	case s.creds != "":
		if err := checkCreds(s.creds); err != nil {
			return nil, fmt.Errorf("--nats-creds %s: %w", s.creds, err)
		}
		opts = append(opts, natsgo.UserCredentials(s.creds))
	case s.nkey != "":
		o, err := natsgo.NkeyOptionFromSeed(s.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", s.nkey, err)
		}
		opts = append(opts, o)
	}
	if _, err := tlsFiles("nats", s.ca, s.cert, s.key); err != nil {
		return nil, err
	}
	if s.ca != "" {
		opts = append(opts, natsgo.RootCAs(s.ca))
	}
	if s.cert != "" {
		opts = append(opts, natsgo.ClientCert(s.cert, s.key))
	}
	return opts, nil
}

// checkCreds checks that a credentials file holds a user JWT and a seed.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer clear(b)
	jwt, err := nkeys.ParseDecoratedJWT(b)
	if err != nil || !strings.HasPrefix(jwt, "eyJ") {
		return errors.New("no user JWT in it (want a .creds file from nsc or your NATS operator)")
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("no nkey seed in it: %w", err)
	}
	kp.Wipe()
	return nil
}

// tlsFiles loads the PEM files of --<system>-ca, --<system>-cert and
// --<system>-key into a TLS client configuration, or returns nil when none
// is given. Errors name the flag.
func tlsFiles(system, ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--%s-ca: %w", system, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-ca %s: no PEM certificate in it", system, ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("--%s-cert and --%s-key go together: give both or neither", system, system)
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--%s-cert %s / --%s-key %s: %w", system, cert, system, key, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// connect connects to an external NATS server, reconnecting forever, also
// after NATS refused the credentials (they may be fixed on the server's
// side); connectRole fails at start on a refusal instead.
func connect(url, name string, opts []natsgo.Option, logger *slog.Logger) (*natsgo.Conn, error) {
	opts = append(opts[:len(opts):len(opts)], natsgo.Name(name), natsgo.MaxReconnects(-1), natsgo.RetryOnFailedConnect(true),
		natsgo.ReconnectWait(250*time.Millisecond), natsgo.IgnoreAuthErrorAbort(),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil { // nil: closed on purpose
				logger.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) { logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if sub != nil {
				logger.Warn("nats error", "err", err, "subject", sub.Subject)
				return
			}
			logger.Warn("nats error", "err", err)
		}))
	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redact(url), err)
	}
	return nc, nil
}

// refused reports whether a NATS connection error means that NATS is
// there and will not have us: wrong or missing credentials, too few
// permissions, or a TLS mismatch (a certificate that does not verify, on
// either side). Waiting does not mend these.
func refused(err error) bool {
	var op *net.OpError
	return errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) ||
		errors.Is(err, natsgo.ErrAuthRevoked) || errors.Is(err, natsgo.ErrAccountAuthExpired) ||
		errors.Is(err, natsgo.ErrPermissionViolation) || errors.Is(err, natsgo.ErrTLS) ||
		errors.Is(err, natsgo.ErrSecureConnWanted) ||
		errors.As(err, &op) && op.Op == "remote error" // a TLS alert from the server, e.g. "certificate required"
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

// redact hides the secrets of a URL, or of comma-separated URLs, for logs
// and messages: a password, and a NATS token (a user without a password).
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, at := strings.Index(u, "://"), strings.LastIndex(u, "@")
		if scheme <= 0 || at < scheme+3 {
			continue
		}
		if user, _, ok := strings.Cut(u[scheme+3:at], ":"); ok {
			parts[i] = u[:scheme+3] + user + ":xxxxx" + u[at:]
			continue
		}
		switch strings.ToLower(u[:scheme]) {
		case "nats", "tls", "ws", "wss":
			parts[i] = u[:scheme+3] + "xxxxx" + u[at:]
		}
	}
	return strings.Join(parts, ",")
}
