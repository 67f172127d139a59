package nats

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a nats-server running inside this process.
type Embedded struct {
	Server *server.Server
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
}

// StartEmbedded starts a nats-server with JetStream in this process. Its
// JetStream syncs every write to disk before acknowledging it, so that an
// acknowledged publish survives power loss.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("embedded nats: StoreDir is required")
	}
	opts := &server.Options{
		ServerName: "uneventful-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		DontListen: cfg.Port < 0,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		NoSigs:     true,
		NoLog:      true,
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
	return &Embedded{Server: ns}, nil
}

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
