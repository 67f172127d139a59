package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadTarget answers every request with "ok" and remembers paths and
// headers.
type loadTarget struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	heads []http.Header
}

func newLoadTarget(t *testing.T) *loadTarget {
	lt := &loadTarget{}
	lt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lt.mu.Lock()
		lt.paths = append(lt.paths, r.Method+" "+r.URL.Path)
		lt.heads = append(lt.heads, r.Header.Clone())
		lt.mu.Unlock()
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(lt.Close)
	return lt
}

func runLoad(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = m.Run(ctx, append([]string{"load"}, args...))
	return out.String(), errOut.String(), err
}

func TestLoadCommandJSONSummaryWithFlagsAfterTheURL(t *testing.T) {
	lt := newLoadTarget(t)
	stdout, stderr, err := runLoad(t, nil, "-s", "-n", "25", "--workers", "4", "--json",
		lt.URL+"/wallet/{wallet}/balance", "--wallets", "5", "--skew", "zipf", "--quiet")
	if err != nil {
		t.Fatalf("load: %v\n%s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("--quiet run wrote to stderr: %q", stderr)
	}
	var sum struct {
		Requests int64            `json:"requests"`
		Workers  int              `json:"workers"`
		Wallets  int              `json:"wallets"`
		Skew     string           `json:"skew"`
		Status   map[string]int64 `json:"status"`
		Latency  map[string]int64 `json:"latency_us"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("stdout is not one JSON object (%v): %q", err, stdout)
	}
	if sum.Requests != 25 || sum.Workers != 4 || sum.Wallets != 5 || sum.Skew != "zipf" || sum.Status["200"] != 25 {
		t.Errorf("summary %+v, want 25 requests, 4 workers, 5 zipf wallets, all 200", sum)
	}
	if _, ok := sum.Latency["p99_9"]; !ok {
		t.Errorf("summary lacks latency_us.p99_9: %s", stdout)
	}
	if len(lt.paths) != 25 || strings.Contains(strings.Join(lt.paths, " "), "{wallet}") {
		t.Errorf("server saw %d requests: %v", len(lt.paths), lt.paths)
	}
}

func TestLoadCommandPrintsBodiesHeadersAndEnvDefaults(t *testing.T) {
	lt := newLoadTarget(t)
	env := map[string]string{"UNEVENTFUL_WORKERS": "3", "UNEVENTFUL_DURATION": "10m"}
	// -n bounds the run long before the 10-minute duration from the
	// environment.
	stdout, stderr, err := runLoad(t, env, "-X", "PUT", "-d", `{"a":1}`, "-H", "X-One: 1", "-H", "X-Two: 2", "--idempotency", "-n", "6", lt.URL+"/p")
	if err != nil {
		t.Fatalf("load: %v\n%s", err, stderr)
	}
	if got := strings.Count(stdout, "{\"ok\":true}\n"); got != 6 {
		t.Errorf("printed %d bodies, want 6 without -s:\n%s", got, stdout)
	}
	for _, want := range []string{"PUT " + lt.URL + "/p: closed loop, 3 workers", "requests  6 in", "p99.9", "status    200: 6"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	for i, h := range lt.heads {
		if lt.paths[i] != "PUT /p" || h.Get("X-One") != "1" || h.Get("X-Two") != "2" || h.Get("Idempotency-Key") == "" {
			t.Errorf("request %d: %s %v", i, lt.paths[i], h)
		}
	}

	stdout, _, err = runLoad(t, nil, "-s", "--markdown", "--quiet", lt.URL)
	if err != nil || !strings.Contains(stdout, "| requests | errors | duration | throughput |") {
		t.Errorf("--markdown: err %v\n%s", err, stdout)
	}
}

func TestLoadCommandRejectsBadUsage(t *testing.T) {
	lt := newLoadTarget(t)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		usage   bool   // errUsage, with the usage printed
		wantErr string // else an error mentioning this
	}{
		{name: "no URL", args: []string{"-s"}, usage: true},
		{name: "two URLs", args: []string{lt.URL, lt.URL}, usage: true},
		{name: "unknown flag", args: []string{"--bogus", lt.URL}, usage: true},
		{name: "bad header", args: []string{"-H", "no colon", lt.URL}, usage: true},
		{name: "bad duration", args: []string{"--duration", "ten", lt.URL}, usage: true},
		{name: "bad env duration", env: map[string]string{"UNEVENTFUL_DURATION": "ten"}, args: []string{lt.URL}, wantErr: "UNEVENTFUL_DURATION"},
		{name: "json and markdown", args: []string{"--json", "--markdown", lt.URL}, wantErr: "do not mix"},
		{name: "zero workers", args: []string{"--workers", "0", lt.URL}, wantErr: "workers"},
		{name: "wallet without --wallets", args: []string{lt.URL + "/wallet/{wallet}/balance"}, wantErr: "wallets"},
		{name: "seed credit without wallets", args: []string{"--seed-credit", "5", lt.URL}, wantErr: "wallets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runLoad(t, tt.env, tt.args...)
			if tt.usage {
				if err != errUsage || !strings.Contains(stderr, "Usage: uneventful load") {
					t.Errorf("err = %v, want errUsage with the usage on stderr:\n%s", err, stderr)
				}
				return
			}
			if err == nil || err == errUsage || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
	// Asking for help is no failure: the usage, and no error.
	if _, stderr, err := runLoad(t, nil, "--help"); err != nil || !strings.Contains(stderr, "Usage: uneventful load") {
		t.Errorf("--help: err = %v, want nil with the usage on stderr:\n%s", err, stderr)
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if len(lt.paths) != 0 {
		t.Errorf("bad usage sent %d requests", len(lt.paths))
	}
}
