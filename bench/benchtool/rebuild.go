package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/redis/rueidis"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/redis"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/writer"
)

// rebuild times a full rebuild of the Redis read model from a SQLite event
// store, as the catch-up projector does it after a flush or on a new Redis:
// it projects every accepted record under a fresh key prefix (deleted
// afterwards), and prints the records per second.
func rebuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	redisURL := fs.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the rebuild to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: benchtool rebuild [-redis URL] [-cpuprofile FILE] STORE.db")
	}
	if _, err := os.Stat(fs.Arg(0)); err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer store.Close()
	prefix := "benchtool-rebuild-" + uneventful.NewID() + ":"
	rm, err := redis.Open(ctx, *redisURL, redis.WithPrefix(prefix))
	if err != nil {
		return err
	}
	defer rm.Close()
	defer func() {
		if err := deletePrefix(*redisURL, prefix); err != nil {
			fmt.Fprintf(os.Stderr, "benchtool rebuild: delete keys %s*: %v\n", prefix, err)
		}
	}()
	p := &writer.Projector{Domain: "wallet", Store: store, ReadModel: rm, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
	}
	start := time.Now()
	err = p.CatchUp(ctx)
	took := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	pos, ok, err := rm.Position(ctx, "wallet")
	if err != nil || !ok {
		return fmt.Errorf("after the rebuild the read model has no position (%v)", err)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"records": pos, "seconds": took.Seconds(),
		"records_per_second": float64(pos) / took.Seconds()})
}

// deletePrefix deletes the keys under prefix that a rebuild made.
func deletePrefix(url, prefix string) error {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		r, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(10000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		if len(r.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(r.Elements...).Build()).Error(); err != nil {
				return err
			}
		}
		if cursor = r.Cursor; cursor == 0 {
			return nil
		}
	}
}
