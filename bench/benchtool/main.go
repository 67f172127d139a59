// Command benchtool holds the small helpers of bench/run, so that the script
// needs nothing but Go and a shell:
//
//	benchtool freeport                 print a free TCP port on 127.0.0.1
//	benchtool wait [-timeout D] URL    wait until URL answers 200
//	benchtool fsync [-n N] DIR         time N appends of 4 KiB + fsync in DIR; JSON
//	benchtool report [flags] WORKDIR   the table, the chart and docs/PERFORMANCE.md
//	benchtool fill [flags] STORE       append events straight to a SQLite event store
//	benchtool rss PID                  print a process's resident set size in bytes
//	benchtool touch -ids FILE BASEURL  GET the balance of every wallet in FILE once
//	benchtool memstats PPROF_URL       a Go process's live heap after a GC; JSON
//	benchtool rebuild [-redis URL] DB  time a full rebuild of the Redis read model; JSON
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: benchtool freeport|wait|fsync|report|fill|rss|touch|memstats|rebuild ...")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "freeport":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		return nil
	case "wait":
		return wait(ctx, args)
	case "fsync":
		return fsync(args)
	case "report":
		return report(args)
	case "fill":
		return fill(ctx, args)
	case "rss":
		return rss(args)
	case "touch":
		return touch(ctx, args)
	case "memstats":
		return memstats(args)
	case "rebuild":
		return rebuild(ctx, args)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// wait polls a URL until it answers 200, for at most -timeout.
func wait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: benchtool wait [-timeout D] URL")
	}
	url := fs.Arg(0)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(*timeout)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %s", url, *timeout, last)
}

// fsyncResult is what fsync prints, in microseconds.
type fsyncResult struct {
	N       int       `json:"n"`
	P50     float64   `json:"p50_us"`
	P90     float64   `json:"p90_us"`
	P99     float64   `json:"p99_us"`
	Mean    float64   `json:"mean_us"`
	Samples []float64 `json:"samples_us,omitempty"`
}

// summariseSamples fills in the statistics of samples, which it sorts.
func summariseSamples(samples []float64) fsyncResult {
	slices.Sort(samples)
	var sum float64
	for _, t := range samples {
		sum += t
	}
	q := func(p float64) float64 { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	return fsyncResult{N: len(samples), P50: q(0.5), P90: q(0.9), P99: q(0.99), Mean: sum / float64(len(samples)), Samples: samples}
}

// fsync times appending 4 KiB to a file and syncing it, as a WAL commit
// does, N times, after a few unmeasured warm-up rounds.
func fsync(args []string) error {
	fs := flag.NewFlagSet("fsync", flag.ContinueOnError)
	n := fs.Int("n", 200, "number of measured write+fsync rounds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *n < 1 {
		return errors.New("usage: benchtool fsync [-n N] DIR")
	}
	f, err := os.CreateTemp(fs.Arg(0), "fsync-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte(i)
	}
	times := make([]float64, 0, *n)
	for i := -5; i < *n; i++ {
		start := time.Now()
		if _, err := f.Write(block); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if i >= 0 {
			times = append(times, float64(time.Since(start).Nanoseconds())/1e3)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(summariseSamples(times))
}

// rss prints the resident set size of a process, from /proc.
func rss(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: benchtool rss PID")
	}
	b, err := os.ReadFile(filepath.Join("/proc", args[0], "status"))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return err
			}
			fmt.Println(kb * 1024)
			return nil
		}
	}
	return errors.New("no VmRSS in /proc/" + args[0] + "/status")
}

// memstats prints the live heap of a Go process after a garbage collection,
// from its /debug/pprof/heap?gc=1&debug=1 (the runtime.MemStats at the end
// of the text), as JSON: heap_alloc and sys in bytes.
func memstats(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: benchtool memstats PPROF_URL")
	}
	client := &http.Client{Timeout: 60 * time.Second}
	res, err := client.Get(strings.TrimSuffix(args[0], "/") + "/heap?gc=1&debug=1")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		for _, k := range []string{"HeapAlloc", "HeapInuse", "Sys"} {
			if v, ok := strings.CutPrefix(sc.Text(), "# "+k+" = "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err == nil {
					out[k] = n
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(out) == 0 {
		return errors.New("no MemStats in the heap profile")
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
