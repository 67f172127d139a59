package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
)

// TestWriterPaused: the writer is frozen with SIGSTOP for 10 s while
// clients send credits. Callers time out (504) and retry with the same
// Idempotency-Key until they get an answer; once the writer runs again
// every credit is applied exactly once.
func TestWriterPaused(t *testing.T) {
	redisURL, _ := startRedis(t)
	natsURL := startNATS(t)
	data := t.TempDir()
	common := []string{"--nats", natsURL, "--log-level", "warn"}
	var writer roleProcess
	startRoleWith(t, func(c *exec.Cmd) { writer.cmd = c }, append([]string{"writer", "--store", data + "/wallet.db", "--redis", redisURL}, common...)...)
	server := startRole(t, append([]string{"server", "--redis", redisURL}, common...)...)

	w := uneventful.NewID()
	client := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	var timeouts, credited int
	send := func(key string) {
		for attempt := 0; attempt < 20; attempt++ {
			req, _ := http.NewRequest("POST", server+"/wallet/"+w+"/credit", strings.NewReader(`{"amount": 1}`))
			req.Header.Set("Idempotency-Key", key)
			res, err := client.Do(req)
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			res.Body.Close()
			switch res.StatusCode {
			case 200:
				mu.Lock()
				credited++
				mu.Unlock()
				return
			case 504, 503:
				mu.Lock()
				timeouts++
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			default:
				t.Errorf("credit %s: %d", key, res.StatusCode)
				return
			}
		}
		t.Errorf("credit %s got no answer in 20 attempts", key)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				send(fmt.Sprintf("g%d-%d", g, i))
				if g == 0 && i == 1 {
					writer.cmd.Process.Signal(syscall.SIGSTOP)
					time.AfterFunc(10*time.Second, func() { writer.cmd.Process.Signal(syscall.SIGCONT) })
				}
			}
		}(g)
	}
	wg.Wait()
	if timeouts == 0 {
		t.Fatal("no caller timed out while the writer was stopped: the pause was not observed")
	}
	if credited != 40 {
		t.Fatalf("%d of 40 credits answered 200", credited)
	}
	// Stop the writer cleanly so the store can be read, then count.
	writer.cmd.Process.Signal(syscall.SIGTERM)
	writer.cmd.Wait()
	st, err := sqlite.OpenReadOnly(context.Background(), data+"/wallet.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Load(context.Background(), "wallet", w)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 40 || !strings.Contains(string(s.Data), `"balance":40`) {
		t.Fatalf("after %d timeouts and retries the wallet is %s at version %d, want balance 40 at version 40", timeouts, s.Data, s.Version)
	}
	t.Logf("%d timeouts retried; 40 credits applied once each", timeouts)
}
