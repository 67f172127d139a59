package nats

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// maxStore is the embedded JetStream's storage limit: none but the disk's.
const maxStore = server.JetStreamMaxStoreDefault

// Embedded is a nats-server running inside this process.
type Embedded struct {
	Server *server.Server

	syncInterval time.Duration
	storeDir     string
}

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// Host to listen on; default 127.0.0.1, so that no other machine
	// can reach it unless asked.
	Host string
	// Port to listen on; 0 picks a free one, -1 listens on no port at
	// all (in-process connections only).
	Port int
	// StoreDir holds JetStream's files.
	StoreDir string
	// SyncInterval is how often JetStream syncs its files to disk; default
	// 1s. (Syncing every write would cost one fsync per event relayed,
	// which caps the relay below the writer's group commit; the relay's
	// checkpoint covers the interval instead: see DurableAfter.)
	SyncInterval time.Duration
}

// StartEmbedded starts a nats-server with JetStream in this process. Its
// JetStream syncs its files every SyncInterval: a publish it acknowledged
// survives a crash of the process at once, and a crash of the machine once
// DurableAfter has passed. A relay with writer.Relay.DurableAfter set to
// it keeps its checkpoint behind that, so nothing acknowledged to a client
// is lost from the event stream either way.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("embedded nats: StoreDir is required")
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	opts := &server.Options{
		ServerName:   "uneventful-embedded",
		Host:         cfg.Host,
		Port:         cfg.Port,
		DontListen:   cfg.Port < 0,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		// No storage limit of its own: left unset, JetStream takes 75% of
		// the disk free at start as its limit and refuses publishes
		// ("insufficient resources") once there, until it restarts, even
		// after space returns. The disk is the limit; Watch recovers from
		// a full one.
		JetStreamMaxStore: maxStore,
		NoSigs:            true,
		NoLog:             true,
		// Commands and replies are small; keep the default payload cap.
	}
	if cfg.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 30s")
	}
	return &Embedded{Server: ns, syncInterval: cfg.SyncInterval, storeDir: cfg.StoreDir}, nil
}

// DurableAfter is how long after acknowledging a publish the server may
// still lose it in a crash of the machine: its sync interval, with room
// for a sync delayed by a busy machine.
func (e *Embedded) DurableAfter() time.Duration { return 5 * e.syncInterval }

// Connect opens an in-process client connection (no TCP).
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(e.Server), nats.Name(name), nats.MaxReconnects(-1))
}

// URL is the address other processes connect to, if it listens.
func (e *Embedded) URL() string { return e.Server.ClientURL() }

// Close shuts the server down and waits for it.
func (e *Embedded) Close() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// Watch keeps JetStream able to store: once a write to its store failed (a
// full disk), nats-server refuses every publish to that stream until
// JetStream restarts, and it computed its storage limit from the free disk
// when it started. So every interval Watch asks the server's health and,
// on a stream's write error, restarts JetStream in this process (streams
// and consumers are recovered from StoreDir, and the limit is computed
// again), trying again each interval until it is back. Clients stay
// connected; the relay publishes again what it could not. It returns when
// ctx ends.
func (e *Embedded) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if logger == nil {
		logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if e.Server.JetStreamEnabled() {
			h := e.Server.Healthz(nil)
			if !strings.Contains(h.Error, "write error") {
				continue
			}
			logger.Warn("JetStream cannot write its store; restarting it", "err", h.Error)
			if err := e.Server.ShutdownJetStream(); err != nil {
				logger.Warn("stop JetStream", "err", err)
				continue
			}
		}
		cfg := &server.JetStreamConfig{StoreDir: e.storeDir, MaxStore: maxStore}
		if err := e.Server.EnableJetStream(cfg); err != nil {
			logger.Warn("start JetStream; will retry", "err", err)
			continue
		}
		logger.Info("JetStream restarted")
	}
}
