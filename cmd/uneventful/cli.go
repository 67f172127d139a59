package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/uneventful/uneventful"
)

// Main is the program, with its outside world on fields so that tests run
// it in-process.
type Main struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; flags default from UNEVENTFUL_*.
	Getenv func(string) string
	// Ready, if set, receives the HTTP address once serve is listening.
	Ready chan<- string
}

// errUsage means the usage was printed already; errHelp that help was
// asked for and printed, which is no failure.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

const usage = `uneventful: event-sourced domains over NATS, with a wallet service.

Usage:
  uneventful serve     [--http ADDR] [--data DIR]   run everything in one process (embedded NATS, SQLite, in-process read model)
  uneventful server    [--http ADDR] [--nats URL] [--redis URL]              split roles: the stateless HTTP server
  uneventful writer    [--domain wallet] --store PATH|postgres://... [--nats URL] [--redis URL] [--http ADDR]
                                                    split roles: a domain's writer (see docs/DEPLOY.md)
  uneventful history-writer [--store PATH|postgres://...] [--nats URL] [--http ADDR]
                                                    split roles: the history writer
  uneventful ksuid                                  print a new entity id
  uneventful events    [--data DIR] [--entity wallet.ID] [--follow] [--json]   the event log: every attempt, with outcome
  uneventful states    [--data DIR] [--entity wallet.ID] [--follow] [--json]   the state log: the state after each accepted change
  uneventful history   [--data DIR] [--follow] [--json]                        the global history of every domain
  uneventful load      [-s] [--loop] [--workers N] [--duration D] [--rate R] [--wallets N] URL   HTTP load: throughput, latency percentiles, statuses
  uneventful version                                print the version
  uneventful help [COMMAND]                         this text, or a command's flags

Every flag defaults from an environment variable UNEVENTFUL_<FLAG> (e.g. UNEVENTFUL_DATA); flags win.
The split roles log in to NATS and Redis with the credentials in --nats and --redis (better set
through UNEVENTFUL_NATS_URL and UNEVENTFUL_REDIS_URL than on the command line), --nats-creds or
--nats-nkey, and use TLS with tls:// and rediss:// URLs, --nats-ca, --nats-cert, --nats-key,
--redis-ca, --redis-cert and --redis-key (docs/DEPLOY.md, Security).
`

// Run runs one subcommand.
func (m *Main) Run(ctx context.Context, args []string) error {
	if err := m.run(ctx, args); err != errHelp {
		return err
	}
	return nil
}

func (m *Main) run(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return m.serve(ctx, rest)
	case "server":
		return m.server(ctx, rest)
	case "writer":
		return m.writer(ctx, rest)
	case "history-writer":
		return m.historyRole(ctx, rest)
	case "ksuid":
		fmt.Fprintln(m.Stdout, uneventful.NewID())
		return nil
	case "events", "states", "history":
		return m.tail(ctx, cmd, rest)
	case "load":
		return m.load(ctx, rest)
	case "version", "--version":
		fmt.Fprintln(m.Stdout, "uneventful", version())
		return nil
	case "help", "-h", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return m.Run(ctx, []string{rest[0], "--help"})
		}
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "uneventful: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// flags returns a flag set whose defaults come from the environment.
func (m *Main) flags(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return &flagSet{FlagSet: fs, getenv: m.Getenv}
}

type flagSet struct {
	*flag.FlagSet
	getenv func(string) string
}

// envName is the environment variable a flag defaults from:
// UNEVENTFUL_<FLAG>, and UNEVENTFUL_<FLAG>_URL for the URL flags.
func envName(flagName string) string {
	name := "UNEVENTFUL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	switch flagName {
	case "nats", "redis", "store":
		name += "_URL"
	}
	return name
}

// String defines a string flag defaulting from UNEVENTFUL_<NAME>.
func (f *flagSet) String(name, def, usage string) *string {
	if v := f.getenv(envName(name)); v != "" {
		def = v
	}
	return f.FlagSet.String(name, def, usage+" (env "+envName(name)+")")
}

// Bool defines a bool flag defaulting from UNEVENTFUL_<NAME>.
func (f *flagSet) Bool(name string, def bool, usage string) *bool {
	if v := f.getenv(envName(name)); v != "" {
		def = v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
	}
	return f.FlagSet.Bool(name, def, usage+" (env "+envName(name)+")")
}

// Int defines an int flag defaulting from UNEVENTFUL_<NAME>.
func (f *flagSet) Int(name string, def int, usage string) *int {
	if v := f.getenv(envName(name)); v != "" {
		fmt.Sscan(v, &def)
	}
	return f.FlagSet.Int(name, def, usage+" (env "+envName(name)+")")
}

// parse parses args; errUsage after printing help or an error.
func (f *flagSet) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(f.Output(), "unexpected argument %q\n", f.Arg(0))
		f.Usage()
		return errUsage
	}
	return nil
}

// logger builds the process's logger from --log-level.
func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "unknown"
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
