package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/uneventful/uneventful/load"
)

const loadUsage = `Usage: uneventful load [flags] URL

Send HTTP requests to URL from --workers workers and print throughput,
latency percentiles, status codes and errors. Flags may come before or after
the URL.

  uneventful load -s --loop --workers 64 --period 0 --duration 10s \
      http://127.0.0.1:8080/wallet/{wallet}/balance --wallets 100 --seed-credit 100
  uneventful load -s -n 10000 --workers 16 -d '{"amount": 1}' --idempotency \
      http://127.0.0.1:8080/wallet/{wallet}/debit --wallets 100 --skew zipf --seed-credit 1000000
  uneventful load -s --rate 2000 --workers 256 --duration 30s http://127.0.0.1:8080/healthz

Without --loop, -n, --duration or --rate each worker sends one request; with
--loop alone it runs until interrupted. The summary goes to stdout, the
per-second lines to stderr.

Closed loop (default) measures latency from each send: when the server
stalls, the workers wait and stop sending, so the stall shows in a handful of
samples (coordinated omission). --rate R switches to open loop: requests are
due on a fixed timetable, R per second in all, and a request that had to
wait for a free worker counts its latency from when it was due, so a stall
shows in every request that was due during it. Workers then only cap the
requests in flight: make them at least R × worst latency.

Flags:
`

// load generates HTTP load against a URL and prints what it measured.
func (m *Main) load(ctx context.Context, args []string) error {
	fs := m.flags("load")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	// The curl-like short flags describe one request, so no environment
	// variable sets them.
	silent := fs.FlagSet.Bool("s", false, "silent: do not print response bodies")
	method := fs.FlagSet.String("X", "", "request `method` (default GET, or POST with -d)")
	body := fs.FlagSet.String("d", "", "request `body`, sent as application/json unless -H sets a Content-Type; {wallet} is replaced")
	var header loadHeaders
	fs.FlagSet.Var(&header, "H", "request header `Name: value`; repeatable")
	requests := fs.FlagSet.Int64("n", 0, "send this many requests in all, then stop")

	var envErrs []error
	loop := fs.Bool("loop", false, "repeat: each worker sends requests until -n, --duration or an interrupt stops it")
	workers := fs.Int("workers", 1, "concurrent requests, and connections; in open loop the cap on requests in flight")
	duration := loadDurationFlag(fs, &envErrs, "duration", 0, "stop sending after this `duration`, e.g. 30s (0: no limit)")
	period := loadDurationFlag(fs, &envErrs, "period", 0, "each worker sleeps this `duration` after each response (closed loop)")
	rate := loadFloatFlag(fs, &envErrs, "rate", 0, "open loop: send this many `requests/s` in all, on a timetable; latency counts from when each was due")
	timeout := loadDurationFlag(fs, &envErrs, "timeout", 30*time.Second, "give up on a request, body included, after this `duration`")
	wallets := fs.Int("wallets", 0, "make this many wallet ids and replace {wallet} in the URL and body with one of them")
	skew := fs.String("skew", load.Uniform, "how requests spread over the wallets: uniform, or zipf (a few hot wallets)")
	seedCredit := fs.String("seed-credit", "", "credit each wallet with this `amount` once before the run, by POST <base>/wallet/{id}/credit")
	idempotency := fs.Bool("idempotency", false, "send an Idempotency-Key header with a new KSUID on every request")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object (latencies in microseconds)")
	markdown := fs.Bool("markdown", false, "print the summary as Markdown tables")
	quiet := fs.Bool("quiet", false, `do not print "N requests per second" every second`)

	urls, err := loadParseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := errors.Join(envErrs...); err != nil {
		return err
	}
	if len(urls) != 1 {
		if len(urls) == 0 {
			fmt.Fprintln(fs.Output(), "load needs a URL")
		} else {
			fmt.Fprintf(fs.Output(), "load takes one URL, not %d: %q\n", len(urls), urls)
		}
		fs.Usage()
		return errUsage
	}
	if *asJSON && *markdown {
		return errors.New("--json and --markdown do not mix: pick one")
	}

	cfg := load.Config{
		URL:         urls[0],
		Method:      *method,
		Body:        *body,
		Header:      http.Header(header),
		Idempotency: *idempotency,
		Workers:     *workers,
		Loop:        *loop,
		Requests:    *requests,
		Duration:    *duration,
		Period:      *period,
		Rate:        *rate,
		Timeout:     *timeout,
		Wallets:     *wallets,
		Skew:        *skew,
		SeedCredit:  *seedCredit,
	}
	if *workers < 1 {
		return fmt.Errorf("--workers %d: want at least 1", *workers)
	}
	if !*silent {
		cfg.Bodies = m.Stdout
	}
	if !*quiet {
		cfg.Progress = m.Stderr
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s\n", b)
	case *markdown:
		fmt.Fprint(m.Stdout, res.Markdown())
	default:
		fmt.Fprint(m.Stdout, res.String())
	}
	return nil
}

// loadParseArgs parses flags that may come before and after the positional
// arguments, and returns those.
func loadParseArgs(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// loadHeaders collects repeated -H "Name: value" flags.
type loadHeaders http.Header

func (h *loadHeaders) String() string {
	if h == nil {
		return ""
	}
	var parts []string
	for k, vs := range *h {
		for _, v := range vs {
			parts = append(parts, k+": "+v)
		}
	}
	return strings.Join(parts, ", ")
}

func (h *loadHeaders) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want 'Name: value', not %q", s)
	}
	if *h == nil {
		*h = make(loadHeaders)
	}
	http.Header(*h).Add(name, strings.TrimSpace(value))
	return nil
}

type loadDuration time.Duration

func (d *loadDuration) String() string { return time.Duration(*d).String() }

func (d *loadDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 500ms, 10s or 2m")
	}
	*d = loadDuration(v)
	return nil
}

type loadFloat float64

func (f *loadFloat) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

func (f *loadFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number such as 500 or 2.5")
	}
	*f = loadFloat(v)
	return nil
}

// loadEnvVar defines a flag whose default comes from UNEVENTFUL_<NAME>; a
// malformed environment value is reported in errs rather than ignored.
func loadEnvVar(fs *flagSet, errs *[]error, v flag.Value, name, usage string) {
	if s := fs.getenv(envName(name)); s != "" {
		if err := v.Set(s); err != nil {
			*errs = append(*errs, fmt.Errorf("%s=%q: %w", envName(name), s, err))
		}
	}
	fs.FlagSet.Var(v, name, usage+" (env "+envName(name)+")")
}

func loadDurationFlag(fs *flagSet, errs *[]error, name string, def time.Duration, usage string) *time.Duration {
	d := loadDuration(def)
	loadEnvVar(fs, errs, &d, name, usage)
	return (*time.Duration)(&d)
}

func loadFloatFlag(fs *flagSet, errs *[]error, name string, def float64, usage string) *float64 {
	f := loadFloat(def)
	loadEnvVar(fs, errs, &f, name, usage)
	return (*float64)(&f)
}
