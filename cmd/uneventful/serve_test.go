package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
)

// service is `uneventful serve` running in-process on 127.0.0.1:0.
type service struct {
	t      *testing.T
	url    string
	data   string
	stop   context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServe(t *testing.T, data string, extra ...string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	s := &service{t: t, data: data, stop: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	m := &Main{Stdout: io.Discard, Stderr: s.stderr, Ready: ready}
	args := append([]string{"serve", "--http", "127.0.0.1:0", "--data", data, "--nats-port", "-1"}, extra...)
	go func() { s.done <- m.Run(ctx, args) }()
	select {
	case addr := <-ready:
		s.url = "http://" + addr
	case err := <-s.done:
		t.Fatalf("serve exited: %v\n%s", err, s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve not ready after 30s\n%s", s.stderr)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// close stops the service the way SIGTERM does and waits for it.
func (s *service) close() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("serve: %v\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("serve did not stop within 30s")
	}
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (s *service) do(method, path, body string, header ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, raw: string(b)}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&r.body); err != nil {
		s.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, res.StatusCode, b)
	}
	return r
}

func want(t *testing.T, r response, status int, fields map[string]string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	for k, v := range fields {
		if got := fmt.Sprint(r.body[k]); got != v {
			t.Fatalf("%s = %s, want %s in %s", k, got, v, r.raw)
		}
	}
}

// TestWalkthrough plays the README's walkthrough through real HTTP against
// `uneventful serve` and then reads the logs with the CLI.
func TestWalkthrough(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()

	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 5}`), 409, map[string]string{"success": "false", "code": "insufficient_funds"})
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`), 200, map[string]string{"success": "true", "balance": "5", "version": "1"})
	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 5}`), 200, map[string]string{"success": "true", "balance": "0", "version": "2"})
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "0", "version": "2"})
	r := s.do("GET", "/wallet/"+w+"/transactions", "")
	want(t, r, 200, nil)
	txs, _ := r.body["transactions"].([]any)
	if len(txs) != 2 {
		t.Fatalf("transactions: got %d, want 2: %s", len(txs), r.raw)
	}
	if got := fmt.Sprint(txs[0].(map[string]any)["amount"], " ", txs[1].(map[string]any)["amount"]); got != "5 -5" {
		t.Fatalf("transaction amounts %s, want 5 -5", got)
	}

	// Exact money: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 0.1}`), 200, nil)
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 0.2}`), 200, map[string]string{"balance": "0.3"})
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 0.001}`), 400, map[string]string{"code": "too_many_decimals"})

	events := cli(t, "events", "--data", data, "--entity", "wallet."+w)
	if n := strings.Count(events, "\n"); n != 5 {
		t.Fatalf("events: %d lines, want 5 attempts:\n%s", n, events)
	}
	for _, sub := range []string{"debit", "rejected (insufficient_funds)", "accepted"} {
		if !strings.Contains(events, sub) {
			t.Fatalf("events lack %q:\n%s", sub, events)
		}
	}
	states := cli(t, "states", "--data", data, "--entity", "wallet."+w, "--json")
	if n := strings.Count(states, "\n"); n != 4 {
		t.Fatalf("states: %d lines, want 4:\n%s", n, states)
	}
	if !strings.Contains(states, `"version":4`) || !strings.Contains(states, `"balance":0.3`) {
		t.Fatalf("states lack the last state:\n%s", states)
	}
	// The history writer records every attempt exactly once.
	waitFor(t, func() string {
		h := cli(t, "history", "--data", data, "--entity", "wallet."+w)
		if n := strings.Count(h, "\n"); n != 5 {
			return fmt.Sprintf("history has %d lines, want 5:\n%s", n, h)
		}
		return ""
	})
}

func cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	if err := m.Run(context.Background(), args); err != nil {
		t.Fatalf("uneventful %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func waitFor(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestart stops and starts serve on the same data directory: balance,
// event log, state log and history survive, and versions continue.
func TestRestart(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	for i := 0; i < 10; i++ {
		want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 1.5}`), 200, nil)
	}
	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 100}`), 409, nil)
	waitFor(t, func() string {
		if h := cli(t, "history", "--data", data); strings.Count(h, "\n") != 11 {
			return "history incomplete before restart:\n" + h
		}
		return ""
	})
	s.close()

	s = startServe(t, data)
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "15", "version": "10"})
	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 15}`), 200, map[string]string{"balance": "0", "version": "11"})
	waitFor(t, func() string {
		if h := cli(t, "history", "--data", data); strings.Count(h, "\n") != 12 {
			return "history after restart is not every event exactly once:\n" + h
		}
		return ""
	})
	if n := strings.Count(cli(t, "events", "--data", data, "--entity", "wallet."+w), "\n"); n != 12 {
		t.Fatalf("event log has %d attempts, want 12", n)
	}
}

// TestConcurrentInvariant: 64 clients credit and debit one wallet at once;
// the balance equals accepted credits minus accepted debits, never goes
// negative, and the state log's versions are 1..n with no gap (contracts 3, 4).
func TestConcurrentInvariant(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	const clients, each = 64, 15
	var mu sync.Mutex
	var credited, debited, accepted int
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				cmd, amount := "credit", 2
				if (c+i)%2 == 1 {
					cmd, amount = "debit", 3
				}
				r := s.do("POST", "/wallet/"+w+"/"+cmd, fmt.Sprintf(`{"amount": %d}`, amount))
				mu.Lock()
				switch {
				case r.status == 200 && cmd == "credit":
					credited += amount
					accepted++
				case r.status == 200:
					debited += amount
					accepted++
				case r.status == 409 && cmd == "debit":
				default:
					t.Errorf("%s: %d %s", cmd, r.status, r.raw)
				}
				if bal, ok := r.body["balance"].(json.Number); ok && strings.HasPrefix(string(bal), "-") {
					t.Errorf("negative balance %s", bal)
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200,
		map[string]string{"balance": fmt.Sprint(credited - debited), "version": fmt.Sprint(accepted)})

	st, err := sqlite.OpenReadOnly(context.Background(), data+"/wallet.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	states, err := st.States(context.Background(), "wallet", w, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != accepted {
		t.Fatalf("state log has %d rows, want %d", len(states), accepted)
	}
	for i, s := range states {
		if s.Version != int64(i+1) {
			t.Fatalf("state %d has version %d: versions have a gap", i, s.Version)
		}
	}
	events, err := st.Events(context.Background(), uneventful.EventQuery{Domain: "wallet", EntityID: w, AfterVersion: -1, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != clients*each {
		t.Fatalf("event log has %d attempts, want %d", len(events), clients*each)
	}
}
