package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// TestServeUnsafeNoSync checks that --unsafe-no-sync, the benchmarks' ceiling,
// says loudly what it gives up, still serves commands, and cannot be switched
// on from the environment.
func TestServeUnsafeNoSync(t *testing.T) {
	s := startServe(t, t.TempDir(), "--unsafe-no-sync")
	if !strings.Contains(s.stderr.String(), "UNSAFE") {
		t.Errorf("no warning on stderr:\n%s", s.stderr)
	}
	id := uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+id+"/credit", `{"amount": 5}`), 200, map[string]string{"balance": "5"})
	want(t, s.do("GET", "/wallet/"+id+"/balance", ""), 200, map[string]string{"balance": "5", "version": "1"})

	// UNEVENTFUL_UNSAFE_NO_SYNC is no default for the flag.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr syncBuffer
	ready := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: &stderr, Ready: ready, Getenv: func(k string) string {
		if k == "UNEVENTFUL_UNSAFE_NO_SYNC" {
			return "true"
		}
		return ""
	}}
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--nats-port", "-1"})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, &stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("serve not ready after 30s")
	}
	if strings.Contains(stderr.String(), "UNSAFE") {
		t.Errorf("UNEVENTFUL_UNSAFE_NO_SYNC switched the sync off:\n%s", &stderr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestServePprof checks that --pprof serves the profiler on its own
// address, and that the public address does not.
func TestServePprof(t *testing.T) {
	s := startServe(t, t.TempDir(), "--pprof", "127.0.0.1:0")
	m := regexp.MustCompile(`serving pprof" url=(\S+)`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no pprof address logged:\n%s", s.stderr)
	}
	res, err := http.Get(m[1] + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Errorf("pprof goroutine profile: %d %.200s", res.StatusCode, b)
	}
	if r := s.do("GET", "/debug/pprof/", ""); r.status != 404 {
		t.Errorf("public address serves /debug/pprof/: %d", r.status)
	}
}
