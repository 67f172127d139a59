package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
)

// natsProcess is a nats-server the test can stop and start again on the
// same port and store.
type natsProcess struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func (n *natsProcess) start() {
	n.t.Helper()
	n.cmd = childCommand("nats-server", "-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-js", "-sd", n.dir)
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port)); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatal("nats-server did not start")
		}
	}
}

func (n *natsProcess) stop() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// TestNATSRestart: the NATS server is killed and started again mid-load.
// Commands fail with 503 or 504 while it is down (nothing is acknowledged
// that is not recorded), clients recover by themselves once it is back,
// and the history still ends up with every event exactly once.
func TestNATSRestart(t *testing.T) {
	redisURL, _ := startRedis(t)
	pgURL := pgSchema(t)
	if _, err := exec.LookPath("nats-server"); err != nil {
		t.Fatal("nats-server is not on PATH")
	}
	n := &natsProcess{t: t, port: freePort(t), dir: t.TempDir()}
	n.start()
	t.Cleanup(n.stop)
	common := []string{"--nats", fmt.Sprintf("nats://127.0.0.1:%d", n.port), "--log-level", "warn"}
	startRole(t, append([]string{"writer", "--store", pgURL, "--redis", redisURL}, common...)...)
	startRole(t, append([]string{"history-writer", "--store", pgURL}, common...)...)
	server := startRole(t, append([]string{"server", "--redis", redisURL}, common...)...)

	w := uneventful.NewID()
	client := &http.Client{Timeout: 5 * time.Second}
	var mu sync.Mutex
	acked := map[string]bool{}
	statuses := map[int]int{}
	var afterRestart int
	restarted := make(chan struct{})
	ctx, stop := context.WithTimeout(context.Background(), 8*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequest("POST", server+"/wallet/"+w+"/credit", strings.NewReader(`{"amount": 1}`))
				req.Header.Set("Idempotency-Key", key)
				res, err := client.Do(req)
				status := 0
				if err == nil {
					status = res.StatusCode
					res.Body.Close()
				}
				mu.Lock()
				statuses[status]++
				if status == 200 {
					acked[key] = true
					select {
					case <-restarted:
						afterRestart++
					default:
					}
				}
				mu.Unlock()
				if status != 200 {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}(g)
	}
	time.Sleep(2 * time.Second)
	n.stop()
	time.Sleep(2 * time.Second)
	n.start()
	close(restarted)
	wg.Wait()
	t.Logf("statuses %v; %d acknowledged after the restart", statuses, afterRestart)
	if afterRestart == 0 {
		t.Fatal("no command succeeded after NATS came back: clients did not recover")
	}
	for s := range statuses {
		if s != 200 && s != 503 && s != 504 && s != 0 {
			t.Errorf("unexpected status %d", s)
		}
	}

	store, err := postgres.Open(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	events, err := store.Events(context.Background(), uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, e := range events {
		recorded[e.IdempotencyKey] = true
	}
	for k := range acked {
		if !recorded[k] {
			t.Errorf("acknowledged %s is not recorded", k)
		}
	}
	hist, err := postgres.OpenHistory(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	waitFor(t, func() string {
		h, err := hist.History(context.Background(), 0, 100000)
		if err != nil {
			return err.Error()
		}
		if len(h) != len(events) {
			return fmt.Sprintf("history holds %d events, the event log %d", len(h), len(events))
		}
		return ""
	})
}
