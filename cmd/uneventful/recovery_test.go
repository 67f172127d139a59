package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
)

// startRedis starts a private redis-server on a free port, so that a test
// may flush and restart it without touching anyone else's keys.
func startRedis(t *testing.T) (url string, flush func()) {
	t.Helper()
	r := newRedis(t)
	return r.url(), r.flush
}

// redisProcess is a private redis-server without persistence, on a free
// port, that a test may flush, kill, and start again on the same port
// (empty).
type redisProcess struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// newRedis starts a redisProcess, stopped when the test ends.
func newRedis(t *testing.T) *redisProcess {
	t.Helper()
	if os.Getenv("UNEVENTFUL_REDIS_URL") == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH; install it (Debian package redis-server)")
	}
	r := &redisProcess{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisProcess) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }
func (r *redisProcess) url() string  { return "redis://" + r.addr() }

// start starts redis-server and waits until it takes connections.
func (r *redisProcess) start() {
	r.t.Helper()
	r.cmd = childCommand(r.bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(r.port), "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr()); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not start")
		}
	}
}

// stop kills redis-server (SIGKILL: no goodbye to its clients) and waits
// for it to exit. Stopping a stopped one does nothing.
func (r *redisProcess) stop() {
	if r.cmd != nil && r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// flush sends FLUSHALL.
func (r *redisProcess) flush() {
	c, err := net.Dial("tcp", r.addr())
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "FLUSHALL\r\n")
	buf := make([]byte, 16)
	if n, _ := c.Read(buf); !strings.HasPrefix(string(buf[:n]), "+OK") {
		r.t.Fatalf("FLUSHALL answered %q", buf[:n])
	}
}

// TestRecovery: the history writer is killed and misses a thousand
// commands, and Redis is flushed mid-load. Once the history writer is back
// the history holds every event exactly once; while the read model is
// rebuilt, reads answer 503 or the right data, never a 404 for a wallet
// that exists or a version older than one already read; then it converges.
func TestRecovery(t *testing.T) {
	redisURL, flush := startRedis(t)
	pgURL := pgSchema(t)
	natsURL := startNATS(t)
	common := []string{"--nats", natsURL, "--log-level", "warn"}
	startRole(t, append([]string{"writer", "--store", pgURL, "--redis", redisURL}, common...)...)
	server := startRole(t, append([]string{"server", "--redis", redisURL}, common...)...)
	history := startRoleProcess(t, append([]string{"history-writer", "--store", pgURL}, common...)...)

	wallets := make([]string, 10)
	for i := range wallets {
		wallets[i] = uneventful.NewID()
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	credit := func(w string) int {
		res, err := client.Post(server+"/wallet/"+w+"/credit", "application/json", strings.NewReader(`{"amount": 1}`))
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	run := func(n int, during func(i int)) (ok int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		next := 0
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= n {
						return
					}
					if during != nil {
						during(i)
					}
					if credit(wallets[i%len(wallets)]) == 200 {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return ok
	}
	if ok := run(200, nil); ok != 200 {
		t.Fatalf("%d of 200 credits succeeded before any fault", ok)
	}

	history.kill()
	// Reads during the flush and rebuild: 503 or the truth, never a 404
	// nor a version going backwards.
	var seenMu sync.Mutex
	seen := map[string]int64{}
	var wrong []string
	var unavailable int
	var flushOnce sync.Once
	ok := run(1000, func(i int) {
		if i == 300 {
			flushOnce.Do(flush)
		}
		w := wallets[i%len(wallets)]
		// A read may not be older than any read that ended before it
		// began (reads that overlap may end in either order).
		seenMu.Lock()
		floor := seen[w]
		seenMu.Unlock()
		res, err := client.Get(server + "/wallet/" + w + "/balance")
		if err != nil {
			return
		}
		body := readAll(res)
		seenMu.Lock()
		defer seenMu.Unlock()
		switch res.StatusCode {
		case 200:
			var v int64
			if j := strings.Index(body, `"version":`); j >= 0 {
				fmt.Sscan(body[j+len(`"version":`):], &v)
			}
			if v < floor {
				wrong = append(wrong, fmt.Sprintf("%s went back from version %d to %d", w, floor, v))
			}
			seen[w] = max(seen[w], v)
		case 503:
			unavailable++
		default:
			wrong = append(wrong, fmt.Sprintf("GET balance of %s answered %d %s", w, res.StatusCode, body))
		}
	})
	if len(wrong) > 0 {
		t.Fatalf("reads during the rebuild were wrong:\n%s", strings.Join(wrong, "\n"))
	}
	if unavailable == 0 {
		t.Fatal("no read answered 503 after the flush: the rebuild was not observed, the test proved nothing")
	}
	t.Logf("%d reads answered 503 while the read model was rebuilt", unavailable)
	if ok < 900 {
		t.Fatalf("only %d of 1000 credits succeeded while Redis was flushed: writes must continue", ok)
	}

	startRole(t, append([]string{"history-writer", "--store", pgURL}, common...)...)
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var total int
	for _, w := range wallets {
		events, err := store.Events(ctx, uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		total += len(events)
		waitFor(t, func() string {
			res, err := client.Get(server + "/wallet/" + w + "/balance")
			if err != nil {
				return err.Error()
			}
			body := readAll(res)
			if want := fmt.Sprintf(`"version":%d`, len(events)); !strings.Contains(body, want) {
				return fmt.Sprintf("read model of %s: %d %s, want %s", w, res.StatusCode, body, want)
			}
			return ""
		})
	}
	hist, err := postgres.OpenHistory(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	waitFor(t, func() string {
		events, err := hist.History(ctx, 0, 100000)
		if err != nil {
			return err.Error()
		}
		ids := map[string]bool{}
		for _, e := range events {
			if ids[e.EventID] {
				t.Fatalf("history holds %s twice", e.EventID)
			}
			ids[e.EventID] = true
		}
		if len(events) != total {
			return fmt.Sprintf("history holds %d events, the event log %d", len(events), total)
		}
		return ""
	})
}

// roleProcess is a role started by startRoleProcess, to be killed.
type roleProcess struct{ cmd *exec.Cmd }

func (p *roleProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// startRoleProcess is startRole that also returns the process.
func startRoleProcess(t *testing.T, args ...string) *roleProcess {
	t.Helper()
	var p roleProcess
	startRoleWith(t, func(c *exec.Cmd) { p.cmd = c }, args...)
	return &p
}
