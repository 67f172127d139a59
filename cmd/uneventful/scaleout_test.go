package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
)

// freePort returns a free loopback TCP port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNATS starts a private nats-server with JetStream on a free port, so
// that the test's stream and durable consumers are its own.
func startNATS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatal("nats-server is not on PATH; install it (Debian package nats-server)")
	}
	port := freePort(t)
	cmd := childCommand(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatal("nats-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pgSchema creates a schema of its own for the test and returns a URL whose
// connections use it.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("UNEVENTFUL_POSTGRES_URL")
	if base == "" {
		t.Skip("UNEVENTFUL_POSTGRES_URL is not set; set it to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	schema := "t_" + strings.ToLower(uneventful.NewID()[:12])
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestScaleOut runs the split roles as separate processes on real NATS,
// PostgreSQL and Redis: 3 writers, 2 servers and the history writer. 64
// clients hammer 5 wallets with credits and debits through both servers.
// Afterwards, for every wallet, balance = accepted credits - accepted
// debits >= 0, state versions are 1..n with no gap, every acknowledged
// command is recorded exactly once, the history holds every event exactly
// once, and the read model converged to the store.
func TestScaleOut(t *testing.T) {
	redisURL := os.Getenv("UNEVENTFUL_REDIS_URL")
	if redisURL == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	pgURL := pgSchema(t)
	natsURL := startNATS(t)
	prefix := "test-" + uneventful.NewID()[:10] + ":"
	t.Cleanup(func() { deleteRedisKeys(t, redisURL, prefix) })
	common := []string{"--nats", natsURL, "--log-level", "warn"}
	// Children log at warn; the address line is at info, so give each
	// role its own --http and find it by asking.
	for i := 0; i < 3; i++ {
		startRole(t, append([]string{"writer", "--domain", "wallet", "--store", pgURL, "--redis", redisURL, "--redis-prefix", prefix}, common...)...)
	}
	startRole(t, append([]string{"history-writer", "--store", pgURL}, common...)...)
	var servers []string
	for i := 0; i < 2; i++ {
		servers = append(servers, startRole(t, append([]string{"server", "--redis", redisURL, "--redis-prefix", prefix}, common...)...))
	}

	wallets := make([]string, 5)
	for i := range wallets {
		wallets[i] = uneventful.NewID()
	}
	type op struct {
		wallet, cmd, key string
		amount           int
		status           int // 0: unknown (transport error)
	}
	var mu sync.Mutex
	var ops []op
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for i := 0; i < 30; i++ {
				o := op{wallet: wallets[rng.IntN(len(wallets))], cmd: "credit", amount: 1 + rng.IntN(5), key: fmt.Sprintf("c%d-%d", c, i)}
				if rng.IntN(2) == 0 {
					o.cmd, o.amount = "debit", 1+rng.IntN(9)
				}
				req, _ := http.NewRequest("POST", servers[(c+i)%2]+"/wallet/"+o.wallet+"/"+o.cmd, strings.NewReader(fmt.Sprintf(`{"amount": %d}`, o.amount)))
				req.Header.Set("Idempotency-Key", o.key)
				if res, err := client.Do(req); err == nil {
					o.status = res.StatusCode
					res.Body.Close()
				}
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()

	byKey := map[string]op{}
	var ok, rejected int
	for _, o := range ops {
		byKey[o.key] = o
		switch o.status {
		case 200:
			ok++
		case 409:
			rejected++
		case 0, 503, 504:
		default:
			t.Errorf("%s %s %d: unexpected status %d", o.cmd, o.wallet, o.amount, o.status)
		}
	}
	if ok == 0 || rejected == 0 {
		t.Fatalf("%d accepted and %d rejected: the load did not exercise both", ok, rejected)
	}

	ctx := context.Background()
	store, err := postgres.Open(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	total := 0
	for _, w := range wallets {
		events, err := store.Events(ctx, uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		total += len(events)
		balance, version := 0, int64(0)
		for _, e := range events {
			o, known := byKey[e.IdempotencyKey]
			if !known {
				t.Errorf("recorded event %s has key %q that no client sent", e.EventID, e.IdempotencyKey)
				continue
			}
			delete(byKey, e.IdempotencyKey) // a second event with the key fails below
			switch {
			case o.status == 200 && e.Outcome != uneventful.Accepted, o.status == 409 && e.Outcome != uneventful.Rejected:
				t.Errorf("%s answered %d but recorded %s", o.key, o.status, e.Outcome)
			}
			if e.Outcome == uneventful.Accepted {
				version++
				if e.Version != version {
					t.Errorf("wallet %s: accepted event has version %d, want %d (gap or repeat)", w, e.Version, version)
				}
				if o.cmd == "credit" {
					balance += o.amount
				} else {
					balance -= o.amount
				}
				if balance < 0 {
					t.Errorf("wallet %s went negative (%d) at version %d", w, balance, e.Version)
				}
			}
		}
		states, err := store.States(ctx, "wallet", w, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range states {
			if s.Version != int64(i+1) {
				t.Fatalf("wallet %s: state %d has version %d: the state log has a gap", w, i, s.Version)
			}
		}
		if int64(len(states)) != version {
			t.Errorf("wallet %s: %d states for %d accepted events", w, len(states), version)
		}
		// The read model converges to the store, through either server.
		waitFor(t, func() string {
			for _, srv := range servers {
				res, err := client.Get(srv + "/wallet/" + w + "/balance")
				if err != nil {
					return err.Error()
				}
				body := readAll(res)
				if !strings.Contains(body, fmt.Sprintf(`"balance":%d`, balance)) || !strings.Contains(body, fmt.Sprintf(`"version":%d`, version)) {
					return fmt.Sprintf("%s reads %s, want balance %d at version %d", srv, body, balance, version)
				}
			}
			return ""
		})
	}
	for key, o := range byKey {
		if o.status == 200 || o.status == 409 {
			t.Errorf("%s %s answered %d but is not recorded", o.cmd, key, o.status)
		}
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
		seen := map[string]int{}
		for _, e := range events {
			seen[e.EventID]++
			if seen[e.EventID] > 1 {
				t.Fatalf("history holds event %s twice", e.EventID)
			}
		}
		if len(events) != total {
			return fmt.Sprintf("history holds %d events, the event log %d", len(events), total)
		}
		return ""
	})
	t.Logf("%d commands: %d accepted, %d rejected, %d events recorded", len(ops), ok, rejected, total)
}

func readAll(res *http.Response) string {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// startRole starts a role as a child process with --http on a free port,
// waits until its /readyz answers 200, and returns its base URL.
func startRole(t *testing.T, args ...string) string {
	t.Helper()
	return startRoleWith(t, nil, args...)
}

// startRoleWith is startRole, handing the started process to started.
func startRoleWith(t *testing.T, started func(*exec.Cmd), args ...string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := childCommand(os.Args[0], append(args, "--http", addr)...)
	cmd.Env = append(os.Environ(), "UNEVENTFUL_TEST_MAIN=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if started != nil {
		started(cmd)
	}
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // killed by the test
		}
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], stderr.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			body := readAll(res)
			if res.StatusCode == 200 {
				return base
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready: %s\n%s", args[0], body, stderr.String())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s did not serve: %v\n%s", args[0], err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deleteRedisKeys deletes the keys under prefix, speaking RESP directly.
func deleteRedisKeys(t *testing.T, redisURL, prefix string) {
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Error(err)
		return
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	script := "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1"
	args := []string{"EVAL", script, "0", prefix + "*"}
	fmt.Fprintf(c, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _ := c.Read(buf); !strings.HasPrefix(string(buf[:n]), ":1") {
		t.Errorf("deleting test keys answered %q", buf[:n])
	}
}
