package main

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// TestExternalLock is the original project's bug: a sqlite3 shell holds
// BEGIN IMMEDIATE on the database while commands arrive. They wait or fail
// with a retryable 503 and no acknowledgement; once the lock is released,
// writes succeed without a restart.
func TestExternalLock(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("the sqlite3 shell is not on PATH (apt-get install sqlite3)")
	}
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 1}`), 200, nil)

	shell := childCommand("sqlite3", data+"/wallet.db")
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	shell.Stdout, shell.Stderr = io.Discard, io.Discard
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shell.Process.Kill(); shell.Wait() })
	fmt.Fprintln(stdin, "BEGIN IMMEDIATE; INSERT INTO checkpoint(name, position) VALUES ('held-by-test', 1);")
	time.Sleep(200 * time.Millisecond) // let the shell take the lock
	release := time.Now().Add(3 * time.Second)

	acked := 1
	var unavailable int
	for time.Now().Before(release) {
		start := time.Now()
		r := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 1}`)
		switch r.status {
		case 200:
			acked++
		case 503:
			unavailable++
			if r.body["code"] == nil || r.body["detail"] == "" {
				t.Fatalf("503 without a code and a message: %s", r.raw)
			}
		default:
			t.Fatalf("while locked: %d %s", r.status, r.raw)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("a command hung for %s while the database was locked", d)
		}
	}
	if unavailable == 0 {
		t.Fatalf("no command was refused while the database was locked for 3s")
	}
	fmt.Fprintln(stdin, "ROLLBACK;")
	stdin.Close()
	shell.Wait()

	// Recovers by itself: no restart.
	r := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 1}`)
	want(t, r, 200, nil)
	acked++
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": fmt.Sprint(acked), "version": fmt.Sprint(acked)})
	events := cli(t, "events", "--data", data, "--entity", "wallet."+w)
	if n := strings.Count(events, "accepted"); n != acked {
		t.Fatalf("event log holds %d accepted attempts, want the %d acknowledged:\n%s", n, acked, events)
	}
}

// TestIdempotencyKey: a retry with the same key returns the identical
// answer and applies nothing; the same key with another body is 422; this
// holds across a restart (contract 2).
func TestIdempotencyKey(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	first := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`, "Idempotency-Key", "k-1")
	want(t, first, 200, map[string]string{"balance": "5"})
	again := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`, "Idempotency-Key", "k-1")
	if again.status != first.status || again.raw != first.raw {
		t.Fatalf("retry answered %d %s, want the original %d %s", again.status, again.raw, first.status, first.raw)
	}
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 6}`, "Idempotency-Key", "k-1"), 422, map[string]string{"code": "idempotency_key_reused"})
	rejected := s.do("POST", "/wallet/"+w+"/debit", `{"amount": 50}`, "Idempotency-Key", "k-2")
	want(t, rejected, 409, nil)
	s.close()

	s = startServe(t, data)
	again = s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`, "Idempotency-Key", "k-1")
	if again.raw != first.raw {
		t.Fatalf("retry after restart answered %s, want %s", again.raw, first.raw)
	}
	if r := s.do("POST", "/wallet/"+w+"/debit", `{"amount": 50}`, "Idempotency-Key", "k-2"); r.raw != rejected.raw || r.status != 409 {
		t.Fatalf("rejected retry after restart answered %d %s, want 409 %s", r.status, r.raw, rejected.raw)
	}
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "5", "version": "1"})
}

// TestConcurrentDuplicates: the same command sent 16 times at once with one
// Idempotency-Key (a client retrying while the first is still in flight)
// applies once, and every copy gets the identical answer.
func TestConcurrentDuplicates(t *testing.T) {
	s := startServe(t, t.TempDir())
	w := uneventful.NewID()
	answers := make(chan response, 16)
	for i := 0; i < 16; i++ {
		go func() { answers <- s.do("POST", "/wallet/"+w+"/credit", `{"amount": 7}`, "Idempotency-Key", "same") }()
	}
	first := <-answers
	want(t, first, 200, nil)
	for i := 1; i < 16; i++ {
		if r := <-answers; r.status != first.status || r.raw != first.raw {
			t.Fatalf("duplicate answered %d %s, first %d %s", r.status, r.raw, first.status, first.raw)
		}
	}
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "7", "version": "1"})
}
