package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// touch GETs the balance of every wallet listed in -ids once, from -workers
// connections, so that a server's read model holds them all (or, with
// -credit, credits each with 1, so that the server's writer has touched
// them all); it prints how many answered 200 and how long it took.
func touch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("touch", flag.ContinueOnError)
	idsFile := fs.String("ids", "", "file of wallet ids, one a line")
	workers := fs.Int("workers", 64, "concurrent connections")
	credit := fs.Bool("credit", false, "POST a credit of 1 to each wallet instead of reading its balance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *idsFile == "" {
		return errors.New("usage: benchtool touch -ids FILE [-workers N] [-credit] BASEURL")
	}
	base := fs.Arg(0)
	f, err := os.Open(*idsFile)
	if err != nil {
		return err
	}
	defer f.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers, Proxy: nil}}
	ids := make(chan string, 1024)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			for id := range ids {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/wallet/"+id+"/balance", nil)
				if *credit {
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/wallet/"+id+"/credit", strings.NewReader(`{"amount": 1}`))
					req.Header.Set("Content-Type", "application/json")
				}
				res, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() && ctx.Err() == nil {
		ids <- sc.Text()
	}
	close(ids)
	wg.Wait()
	if err := sc.Err(); err != nil {
		return err
	}
	took := time.Since(start)
	if failed.Load() > 0 {
		fmt.Fprintf(os.Stderr, "benchtool touch: %d requests failed\n", failed.Load())
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": ok.Load(), "failed": failed.Load(), "seconds": took.Seconds()})
}
