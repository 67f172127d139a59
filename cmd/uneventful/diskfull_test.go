package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
)

// TestDiskFull fills the disk under serve's data directory (its SQLite
// files and JetStream's store) with credits. Every acknowledged credit is
// recorded; once the disk is full, credits fail at once with a retryable
// 503 naming the full disk and record nothing; serve neither crashes nor
// hangs; once space returns, commands succeed again without a restart, and
// retrying each failed credit with its key applies it once. After a restart
// the files pass SQLite's integrity check and the history is complete.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("the sqlite3 shell is not on PATH (apt-get install sqlite3)")
	}
	data := t.TempDir()
	mountTmpfs(t, data, "4m")
	s := startServe(t, data)
	w := uneventful.NewID()
	credit := "/wallet/" + w + "/credit"

	// Fill: unique 255-byte keys make each event row big.
	key := func(g, i int) string {
		k := fmt.Sprintf("diskfull-%d-%d-", g, i)
		return k + strings.Repeat("k", 255-len(k))
	}
	var mu sync.Mutex
	acked := map[string]bool{}   // 200
	refused := map[string]bool{} // 503: nothing applied
	unknown := map[string]bool{} // no answer, or 504: may have applied
	var diskFull string          // a 503 that names the full disk
	client := &http.Client{Timeout: 10 * time.Second}
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	began := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				k := key(g, i)
				start := time.Now()
				r, h, err := post(client, s.url+credit, `{"amount": 1}`, k)
				if d := time.Since(start); d > 8*time.Second {
					t.Errorf("a credit took %s on a full disk", d)
				}
				mu.Lock()
				switch {
				case err != nil || r.status == 504:
					unknown[k] = true
				case r.status == 200:
					acked[k] = true
				case r.status == 503:
					refused[k] = true
					if r.body["code"] == nil || r.body["detail"] == "" || h.Get("Retry-After") == "" {
						t.Errorf("503 without a code, a message and Retry-After: %s", r.raw)
					}
					if d := fmt.Sprint(r.body["detail"]); strings.Contains(d, "disk") && strings.Contains(d, "full") {
						diskFull = r.raw
					}
				default:
					t.Errorf("credit on a filling disk: %d %s", r.status, r.raw)
				}
				// Enough: the disk has been full for a while.
				if len(refused) >= 50 {
					stop()
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(refused) < 50 {
		t.Fatalf("the disk did not fill in 20s: %d credits acknowledged, %d refused", len(acked), len(refused))
	}
	if diskFull == "" {
		t.Fatalf("no 503 named the full disk")
	}
	t.Logf("4 MiB full within %s: %d credits acknowledged, %d refused, %d unknown; e.g. %s",
		time.Since(began).Round(100*time.Millisecond), len(acked), len(refused), len(unknown), diskFull)

	running(t, s)

	// Still answering on a full disk: reads, and a clear 503 for writes.
	r := s.do("GET", "/wallet/"+w+"/balance", "")
	want(t, r, 200, nil)
	if b := balance(t, r); b < len(acked) || b > len(acked)+len(unknown) {
		t.Fatalf("balance %d on a full disk, want %d acknowledged plus at most %d unknown", b, len(acked), len(unknown))
	}
	r = s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "on-a-full-disk")
	want(t, r, 503, map[string]string{"code": "unavailable"})
	if d := fmt.Sprint(r.body["detail"]); !strings.Contains(d, "disk") || !strings.Contains(d, "is full") {
		t.Fatalf("the 503 on a full disk does not say so: %s", r.raw)
	}
	refused["on-a-full-disk"] = true

	// Acknowledged means recorded; refused means not recorded.
	recorded := recordedKeys(t, data, w)
	for k := range acked {
		if recorded[k] != uneventful.Accepted {
			t.Errorf("acknowledged credit %s is not recorded as accepted (%q)", abbrev(k), recorded[k])
		}
	}
	for k := range refused {
		if recorded[k] != "" {
			t.Errorf("credit %s answered 503 but is recorded", abbrev(k))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Space returns: no restart.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", data).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	want(t, s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "after-space-returns"), 200, nil)
	acked["after-space-returns"] = true
	for _, set := range []map[string]bool{refused, unknown} {
		for k := range set {
			want(t, s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", k), 200, nil)
			acked[k] = true
		}
	}
	// Each applied once: a second retry replays the answer, and the
	// balance is the number of distinct keys.
	first := s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "on-a-full-disk")
	if again := s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "on-a-full-disk"); again.status != 200 || again.raw != first.raw {
		t.Fatalf("second retry answered %d %s, want the first retry's 200 %s", again.status, again.raw, first.raw)
	}
	n := fmt.Sprint(len(acked))
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": n, "version": n})
	running(t, s)
	// The history catches up without a restart: JetStream's store may
	// have hit the full disk too, and nats-server keeps a stream's write
	// error until JetStream restarts, which serve's watch does once it
	// sees it; the relay publishes again from its outbox (the event log).
	waitFor(t, func() string {
		if h := strings.Count(cli(t, "history", "--data", data, "--entity", "wallet."+w), "\n"); h != len(acked) {
			return fmt.Sprintf("without a restart the history holds %d events, want %d; serve's log ends:\n%s", h, len(acked), tail(s.stderr.String(), 20))
		}
		return ""
	})
	s.close()

	for _, f := range []string{"wallet.db", "history.db"} {
		out, err := exec.Command("sqlite3", filepath.Join(data, f), "PRAGMA integrity_check").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("integrity_check of %s: %v %s", f, err, out)
		}
	}
	s = startServe(t, data)
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": n, "version": n})
	recorded = recordedKeys(t, data, w)
	if len(recorded) != len(acked) {
		t.Fatalf("after a restart the event log holds %d credits, want %d", len(recorded), len(acked))
	}
	for k := range acked {
		if recorded[k] != uneventful.Accepted {
			t.Fatalf("after a restart credit %s is recorded as %q", abbrev(k), recorded[k])
		}
	}
	// The relay republishes from its checkpoint; the history holds every
	// event once.
	waitFor(t, func() string {
		if h := strings.Count(cli(t, "history", "--data", data, "--entity", "wallet."+w), "\n"); h != len(acked) {
			return fmt.Sprintf("after a restart the history holds %d events, want %d", h, len(acked))
		}
		return ""
	})
	want(t, s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "after-restart"), 200, nil)
}

// abbrev shortens a long idempotency key for messages.
func abbrev(k string) string {
	if len(k) > 24 {
		return k[:24] + "…"
	}
	return k
}

// running fails the test if serve has stopped.
func running(t *testing.T, s *service) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for close
		t.Fatalf("serve exited: %v\n%s", err, tail(s.stderr.String(), 20))
	default:
	}
}

// mountTmpfs mounts a tmpfs of the given size at dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root and a kernel that allows it): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s; detaching it lazily", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

// post sends a command with an Idempotency-Key from any goroutine (unlike
// service.do), returning an error when there is no answer.
func post(client *http.Client, url, body, key string) (response, http.Header, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return response{}, nil, err
	}
	req.Header.Set("Idempotency-Key", key)
	res, err := client.Do(req)
	if err != nil {
		return response{}, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, nil, err
	}
	r := response{status: res.StatusCode, raw: string(b)}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&r.body); err != nil {
		return r, nil, fmt.Errorf("%d, body not JSON: %q", res.StatusCode, b)
	}
	return r, res.Header, nil
}

// balance is the balance in an answer, in whole units.
func balance(t *testing.T, r response) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(r.body["balance"]))
	if err != nil {
		t.Fatalf("balance in %s: %v", r.raw, err)
	}
	return n
}

// recordedKeys returns the outcome of each event of a wallet by its
// idempotency key, read from the SQLite file.
func recordedKeys(t *testing.T, data, w string) map[string]uneventful.Outcome {
	t.Helper()
	st, err := sqlite.OpenReadOnly(context.Background(), filepath.Join(data, "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys := map[string]uneventful.Outcome{}
	var after int64
	for {
		events, err := st.Events(context.Background(), uneventful.EventQuery{Domain: "wallet", EntityID: w, AfterSequence: after, AfterVersion: -1, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			return keys
		}
		for _, e := range events {
			keys[e.IdempotencyKey] = e.Outcome
		}
		after = events[len(events)-1].Sequence
	}
}
