// Command baseline is the bare net/http handler that bench/run measures the
// wallet's GET balance against: it fetches one answer from a running
// service once, then serves its body and JSON headers to every request,
// doing nothing else. Its throughput is the floor of one HTTP exchange on
// this machine, which no real handler can beat.
//
//	baseline --addr 127.0.0.1:0 --from http://127.0.0.1:8080/wallet/ID/balance
//
// It prints "listening http://ADDR" once it serves, and stops on SIGINT or
// SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve on")
	from := flag.String("from", "", "URL whose answer to serve (required)")
	flag.Parse()
	if err := run(*addr, *from); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(addr, from string) error {
	if from == "" {
		return fmt.Errorf("--from is required")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(from)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", from, res.Status, body)
	}
	// The same headers as the service's answer, so that the same bytes go
	// over the wire (Date and Content-Length net/http sets itself).
	header := make(http.Header)
	for _, k := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options"} {
		if v := res.Header.Values(k); len(v) > 0 {
			header[k] = v
		}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	fmt.Fprintf(os.Stderr, "baseline: serving %d bytes from %s\n", len(body), from)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
