package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// TestMain lets the test binary run the real program in a child process:
// with UNEVENTFUL_TEST_MAIN set, it is `uneventful` with the given args.
func TestMain(m *testing.M) {
	if os.Getenv("UNEVENTFUL_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is `uneventful serve` in a separate process, to be killed.
type child struct {
	cmd *exec.Cmd
	url string
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildProgram(t, os.Args[0], args...)
}

// startChildProgram is startChild running the program binary, e.g. one
// built by buildProgram.
func startChildProgram(t *testing.T, program string, args ...string) *child {
	t.Helper()
	cmd := childCommand(program, args...)
	cmd.Env = append(os.Environ(), "UNEVENTFUL_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() { c.kill() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "http=http://"); i >= 0 {
				select {
				case found <- strings.Fields(line[i+len("http="):])[0]:
				default:
				}
			}
		}
	}()
	select {
	case c.url = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("child serve did not start within 30s")
	}
	return c
}

func (c *child) kill() {
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
	}
}

// TestKill9LosesNoAcknowledgedCommand (contract 1): clients credit while
// serve is killed with SIGKILL; after a restart every acknowledged credit
// is in the event log, and the balance is the sum of the recorded ones.
func TestKill9LosesNoAcknowledgedCommand(t *testing.T) {
	data := t.TempDir()
	args := []string{"serve", "--http", "127.0.0.1:0", "--data", data, "--nats-port", "-1", "--log-level", "info"}
	w := uneventful.NewID()
	var acked sync.Map // idempotency key -> true
	var nacked atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second}
	for round := 0; round < 3; round++ {
		c := startChild(t, args...)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					key := fmt.Sprintf("r%d-g%d-%d", round, g, i)
					req, _ := http.NewRequest("POST", c.url+"/wallet/"+w+"/credit", strings.NewReader(`{"amount": 1}`))
					req.Header.Set("Idempotency-Key", key)
					res, err := client.Do(req)
					if err != nil {
						nacked.Add(1)
						continue
					}
					res.Body.Close()
					if res.StatusCode == 200 {
						acked.Store(key, true)
					}
				}
			}(g)
		}
		time.Sleep(time.Duration(700+300*round) * time.Millisecond)
		c.kill() // mid-load, no warning
		stop()
		wg.Wait()
	}

	s := startServe(t, data)
	events := cli(t, "events", "--data", data, "--entity", "wallet."+w, "--json")
	recorded := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		if i := strings.Index(line, `"idempotency_key":"`); i >= 0 {
			k := line[i+len(`"idempotency_key":"`):]
			recorded[k[:strings.Index(k, `"`)]] = true
		}
	}
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		if !recorded[k.(string)] {
			t.Errorf("acknowledged credit %s is not in the event log", k)
		}
		return true
	})
	if n == 0 {
		t.Fatal("no credit was acknowledged; the test proved nothing")
	}
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": fmt.Sprint(len(recorded)), "version": fmt.Sprint(len(recorded))})
	t.Logf("%d acknowledged, %d recorded, %d failed in flight over 3 kills", n, len(recorded), nacked.Load())

	// The history holds every recorded event exactly once: the relay's
	// checkpoint never ran ahead of what the event stream kept, and what
	// it published again after a kill was deduplicated.
	eventIDs := func(out string) map[string]int {
		ids := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if i := strings.Index(line, `"event_id":"`); i >= 0 {
				ids[line[i+len(`"event_id":"`):][:27]]++
			}
		}
		return ids
	}
	logged := eventIDs(events)
	var history map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		history = eventIDs(cli(t, "history", "--data", data, "--entity", "wallet."+w, "--json"))
		if len(history) >= len(logged) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id := range logged {
		if history[id] != 1 {
			t.Errorf("event %s is in the history %d times, want once", id, history[id])
		}
	}
	if len(history) != len(logged) {
		t.Errorf("history holds %d events of the wallet, the event log %d", len(history), len(logged))
	}
}

// childCommand is exec.Command for a process a test starts: it is killed
// when the test process dies, so no test leaves servers behind, even one
// killed by its timeout.
func childCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
