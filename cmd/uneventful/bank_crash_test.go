package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
	"github.com/uneventful/uneventful/sqlite"
)

// The crash tests, in the style of Jepsen's bank workload: 64 workers send
// random credits and debits over 20 wallets, logging each operation as ok
// (200), failed (a definite 4xx, or 503: nothing applied) or unknown (504,
// transport error), while the process that writes is killed with SIGKILL
// and restarted, at least 10 times. The checker then verifies: every ok
// operation is recorded exactly once with its outcome; no operation
// answered 503 is recorded; unknown ones at most once; balance = accepted
// credits - accepted debits >= 0 at every version; versions are gap-free;
// every accepted event has its state row; the read model converges.
// UNEVENTFUL_CRASH_KILLS sets the number of kills (default 10).

// crashKills is the number of kills of a crash test.
func crashKills() int {
	if v, err := strconv.Atoi(os.Getenv("UNEVENTFUL_CRASH_KILLS")); err == nil && v > 0 {
		return v
	}
	return 10
}

// TestCrashWriterPostgres: the writer role on PostgreSQL is killed, behind
// a server and Redis.
func TestCrashWriterPostgres(t *testing.T) {
	redisURL, _ := startRedis(t)
	pgURL := pgSchema(t)
	natsURL := startNATS(t)
	common := []string{"--nats", natsURL, "--log-level", "warn"}
	writerArgs := append([]string{"writer", "--store", pgURL, "--redis", redisURL}, common...)
	var writer *exec.Cmd
	startRoleWith(t, func(c *exec.Cmd) { writer = c }, writerArgs...)
	server := startRole(t, append([]string{"server", "--redis", redisURL}, common...)...)
	bankCrash(t, server, crashKills(), func() {
		writer.Process.Signal(syscall.SIGKILL)
		writer.Wait()
		startRoleWith(t, func(c *exec.Cmd) { writer = c }, writerArgs...)
	}, func() uneventful.Store {
		store, err := postgres.Open(context.Background(), pgURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
}

// TestCrashServeSQLite: `serve` on SQLite is killed, everything in it (the
// HTTP server, the writer, the embedded NATS server, the read model), and
// restarted on the same data and port.
func TestCrashServeSQLite(t *testing.T) {
	data := t.TempDir()
	args := []string{"serve", "--http", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data", data, "--nats-port", "-1", "--log-level", "info"}
	serve := startChild(t, args...)
	bankCrash(t, serve.url, crashKills(), func() {
		serve.kill()
		serve = startChild(t, args...)
	}, func() uneventful.Store {
		store, err := sqlite.OpenReadOnly(context.Background(), filepath.Join(data, "wallet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
}

// bankCrash runs the workload against server, calling crash (kill and
// restart) kills times, 0.7 to 1.5 s apart, then checks store.
func bankCrash(t *testing.T, server string, kills int, crash func(), openStore func() uneventful.Store) {
	wallets := make([]string, 20)
	for i := range wallets {
		wallets[i] = uneventful.NewID()
	}
	type op struct {
		key, wallet, cmd string
		amount, status   int
	}
	var mu sync.Mutex
	var ops []op
	ctx, stop := context.WithCancel(context.Background())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := 0; ctx.Err() == nil; i++ {
				o := op{key: fmt.Sprintf("w%d-%d", g, i), wallet: wallets[rng.IntN(len(wallets))], cmd: "credit", amount: 1 + rng.IntN(5)}
				if rng.IntN(2) == 0 {
					o.cmd, o.amount = "debit", 1+rng.IntN(8)
				}
				req, _ := http.NewRequest("POST", server+"/wallet/"+o.wallet+"/"+o.cmd, strings.NewReader(fmt.Sprintf(`{"amount": %d}`, o.amount)))
				req.Header.Set("Idempotency-Key", o.key)
				if res, err := client.Do(req); err == nil {
					o.status = res.StatusCode
					res.Body.Close()
				}
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
				if o.status != 200 && o.status != 409 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(g)
	}
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(700+rand.IntN(800)) * time.Millisecond)
		crash()
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	status := map[int]int{}
	byKey := map[string]op{}
	for _, o := range ops {
		status[o.status]++
		byKey[o.key] = o
	}
	t.Logf("%d operations over %d kills: %v", len(ops), kills, status)
	if status[200] == 0 || status[409] == 0 {
		t.Fatal("the workload did not get both accepted and rejected operations")
	}
	store := openStore()
	seen := map[string]bool{}
	for _, w := range wallets {
		events, err := store.Events(context.Background(), uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		states, err := store.States(context.Background(), "wallet", w, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		balance, version := 0, int64(0)
		for _, e := range events {
			o, ok := byKey[e.IdempotencyKey]
			if !ok || seen[e.IdempotencyKey] {
				t.Errorf("event %s: key %q unknown or recorded twice", e.EventID, e.IdempotencyKey)
				continue
			}
			seen[e.IdempotencyKey] = true
			switch {
			case o.status == 200 && e.Outcome != uneventful.Accepted, o.status == 409 && e.Outcome != uneventful.Rejected:
				t.Errorf("%s answered %d, recorded %s", o.key, o.status, e.Outcome)
			case o.status == 503:
				t.Errorf("%s answered 503 (nothing applied) but is recorded %s", o.key, e.Outcome)
			}
			if e.Outcome != uneventful.Accepted {
				continue
			}
			version++
			if e.Version != version {
				t.Fatalf("wallet %s: accepted version %d, want %d", w, e.Version, version)
			}
			if o.cmd == "credit" {
				balance += o.amount
			} else {
				balance -= o.amount
			}
			if balance < 0 {
				t.Fatalf("wallet %s negative at version %d", w, version)
			}
			if int(version) > len(states) || states[version-1].EventID != e.EventID {
				t.Fatalf("wallet %s: accepted event %s at version %d has no state row: event and state split", w, e.EventID, version)
			}
		}
		if int64(len(states)) != version {
			t.Fatalf("wallet %s: %d state rows for %d accepted events", w, len(states), version)
		}
		waitFor(t, func() string {
			res, err := client.Get(server + "/wallet/" + w + "/balance")
			if err != nil {
				return err.Error()
			}
			body := readAll(res)
			if version > 0 && !strings.Contains(body, fmt.Sprintf(`"version":%d,`, version)) {
				return fmt.Sprintf("read model of %s: %s, want version %d", w, body, version)
			}
			return ""
		})
	}
	for key, o := range byKey {
		if (o.status == 200 || o.status == 409) && !seen[key] {
			t.Errorf("%s answered %d but is not recorded", key, o.status)
		}
	}
}
