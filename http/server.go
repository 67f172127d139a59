package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/metrics"
)

// Defaults of the Server's settings.
const (
	DefaultSourceName      = "server"
	DefaultCommandTimeout  = 10 * time.Second
	DefaultQueryTimeout    = 5 * time.Second
	DefaultReadyTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 15 * time.Second
	DefaultMaxBodyBytes    = 64 << 10
	DefaultMaxInFlight     = 4096

	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Server is the HTTP server of a set of domains. Fill its fields, then call
// Handler or ListenAndServe. The first of those (or Open) validates
// the fields and fills zero ones with their defaults; later changes to the
// fields are not seen. A Server is safe for concurrent use once opened.
type Server struct {
	// Domains are the domains served, each under /<name>/; names must be
	// unique. None serves only /healthz and /readyz.
	Domains []uneventful.Model
	// Bus carries commands to the writers. Required with Domains.
	Bus uneventful.Bus
	// Reader is the read model the queries read. Required with Domains.
	Reader uneventful.Reader
	// Logger receives request logs (Debug) and failures (Warn, Error).
	// Default slog.Default().
	Logger *slog.Logger
	// Metrics counts requests by route and status and commands by
	// outcome, and is served at GET /metrics. Default: a new
	// metrics.New(), private to this server; give it the process's to
	// serve the writers' and NATS metrics too.
	Metrics *metrics.Metrics
	// SourceName and SourceID name this process in the events it makes.
	// Defaults "server" and "<hostname>:<pid>".
	SourceName string
	SourceID   string
	// CommandTimeout bounds how long a command waits for its writer's
	// reply; after it the answer is 504 and the command may or may not
	// have been applied. Default 10s.
	CommandTimeout time.Duration
	// QueryTimeout bounds a query's reads of the read model. Default 5s.
	QueryTimeout time.Duration
	// MaxBodyBytes caps a command's request body; a larger body gets
	// 413. Default 64 KiB.
	MaxBodyBytes int64
	// MaxInFlight bounds the commands this server waits on at once; past
	// it a command is answered at once with 503 and Retry-After instead
	// of queueing without bound. Default 4096.
	MaxInFlight int
	// APIKeys, if set, are required: queries need the read scope and
	// commands the write scope (401 without a valid key, 403 without the
	// scope). /healthz, /readyz and /metrics stay open. Default: none.
	APIKeys *APIKeys
	// Ready holds named dependency checks run by GET /readyz, e.g.
	// {"nats": bus.Ping}. Each gets ReadyTimeout; one failing makes the
	// server not ready (503). Nil means no checks.
	Ready map[string]func(context.Context) error
	// ReadyTimeout bounds each Ready check. Default 2s.
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown of ListenAndServe:
	// in-flight requests get this long to finish before their
	// connections are closed. Default 15s.
	ShutdownTimeout time.Duration
	// Routes are more routes served beside the domains', such as the web
	// page's (package web). A pattern that conflicts with another route
	// makes Open fail. Default: none.
	Routes []Route

	once     sync.Once
	inFlight chan struct{} // a slot per command waiting on the bus
	openErr  error
	handler  nethttp.Handler
	domains  map[string]*route
	names    []string // domain names, sorted, for messages
	addr     atomic.Pointer[net.Addr]
	draining atomic.Bool
}

// nameRE is what a domain, command or query name may be: one path segment
// with no characters that need escaping or that net/http patterns reserve.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Open validates the settings and fills zero ones with their defaults. It
// is called by Handler and ListenAndServe; calling it first only
// moves the error earlier. Only the first call does anything.
func (s *Server) Open() error {
	s.once.Do(func() { s.openErr = s.open() })
	return s.openErr
}

func (s *Server) open() error {
	// No domains is a role that serves only /healthz and /readyz.
	if len(s.Domains) > 0 && s.Bus == nil {
		return errors.New("http: Server.Bus is nil")
	}
	if len(s.Domains) > 0 && s.Reader == nil {
		return errors.New("http: Server.Reader is nil")
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = metrics.New()
	}
	if s.SourceName == "" {
		s.SourceName = DefaultSourceName
	}
	if s.SourceID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		s.SourceID = host + ":" + strconv.Itoa(os.Getpid())
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"CommandTimeout", &s.CommandTimeout, DefaultCommandTimeout},
		{"QueryTimeout", &s.QueryTimeout, DefaultQueryTimeout},
		{"ReadyTimeout", &s.ReadyTimeout, DefaultReadyTimeout},
		{"ShutdownTimeout", &s.ShutdownTimeout, DefaultShutdownTimeout},
	}
	for _, d := range durations {
		if *d.d < 0 {
			return fmt.Errorf("http: Server.%s is negative (%v)", d.name, *d.d)
		}
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if s.MaxBodyBytes < 0 {
		return fmt.Errorf("http: Server.MaxBodyBytes is negative (%d)", s.MaxBodyBytes)
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.MaxInFlight < 0 {
		return fmt.Errorf("http: Server.MaxInFlight is negative (%d)", s.MaxInFlight)
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	s.inFlight = make(chan struct{}, s.MaxInFlight)
	for name, check := range s.Ready {
		if check == nil {
			return fmt.Errorf("http: Server.Ready[%q] is nil", name)
		}
	}
	h, err := s.routes()
	if err != nil {
		return err
	}
	s.handler = h
	return nil
}

// Handler returns the server's handler, for tests and for embedding in
// another server. It panics if the settings are invalid (a programming
// error); call Open first to get the error instead.
func (s *Server) Handler() nethttp.Handler {
	if err := s.Open(); err != nil {
		panic(err)
	}
	return s.handler
}

// Addr returns the address ListenAndServe is serving on, or nil before it
// serves. With a ":0" port it tells which port was bound.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// ListenAndServe serves HTTP on ln (made with net.Listen, e.g. on
// "127.0.0.1:0"; Addr then tells the bound address) until ctx ends, then
// shuts down gracefully: it stops accepting connections, reports not ready
// on /readyz, and waits up to ShutdownTimeout for in-flight requests to
// finish before closing what is left. It returns nil after a shutdown asked
// for by ctx, else the error that stopped serving. It closes ln.
//
// The server sets ReadHeaderTimeout 5s, ReadTimeout 30s, WriteTimeout
// CommandTimeout+30s, IdleTimeout 2m and MaxHeaderBytes 64 KiB.
func (s *Server) ListenAndServe(ctx context.Context, ln net.Listener) error {
	if err := s.Open(); err != nil {
		ln.Close()
		return err
	}
	a := ln.Addr()
	s.addr.Store(&a)
	srv := &nethttp.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// A command may wait CommandTimeout for its reply; leave room to
		// write the answer after that.
		WriteTimeout:   s.CommandTimeout + readTimeout,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
	s.Logger.Info("http server listening", "addr", a.String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.Logger.Info("http server shutting down", "addr", a.String(), "timeout", s.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-errc
		return fmt.Errorf("http: shutdown: in-flight requests did not finish within %v: %w", s.ShutdownTimeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
		return fmt.Errorf("http: serve: %w", err)
	}
	return nil
}
