package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
)

// TestExternalReadLoop is how the original project locked up for good: a
// sqlite3 shell stays open on the event store for the whole run and reads
// in a loop, in turns of short queries every few milliseconds and of a read
// transaction that holds its snapshot for seconds, while clients credit.
// Writes keep succeeding throughout; the write-ahead log is checkpointed
// and restarted while reads come and go, grows only while a snapshot is
// held, and is cut back once it is released; no restart is needed.
func TestExternalReadLoop(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("the sqlite3 shell is not on PATH (apt-get install sqlite3)")
	}
	data := t.TempDir()
	db := filepath.Join(data, "wallet.db")
	s := startServe(t, data)
	w := uneventful.NewID()
	credit := "/wallet/" + w + "/credit"
	want(t, s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "first"), 200, nil)

	shell := childCommand("sqlite3", db)
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := shell.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var shellErr syncBuffer
	shell.Stderr = &shellErr
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shell.Process.Kill(); shell.Wait() })
	var answers atomic.Int64 // lines the shell printed: reads done
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			answers.Add(1)
		}
	}()
	fmt.Fprintln(stdin, ".timeout 2000")

	// The reader's schedule: turns of short reads, each but the last
	// followed by a held snapshot. phase is 2*turn while reads come and
	// go, 2*turn+1 while the snapshot is held. The last snapshot is held
	// until the WAL file is 1 MiB past its limit (for up to 6 s), so that
	// cutting it back is tested also where writes are slow.
	const turns, short, held = 3, 1500 * time.Millisecond, 2 * time.Second
	var phase atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for turn := 0; turn <= turns; turn++ {
			phase.Store(int32(2 * turn))
			for end := time.Now().Add(short); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				fmt.Fprintln(stdin, "SELECT count(*) FROM event;")
			}
			if turn == turns {
				return
			}
			fmt.Fprintln(stdin, "BEGIN; SELECT count(*) FROM event;")
			phase.Store(int32(2*turn + 1))
			time.Sleep(held)
			for end := time.Now().Add(4 * time.Second); turn == turns-1 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if size, _ := walHeader(db + "-wal"); size > sqlite.WALSizeLimit+1<<20 {
					break
				}
			}
			fmt.Fprintln(stdin, "COMMIT;")
		}
	}()

	// The WAL: its size, and its checkpoint sequence number (bytes 12-15
	// of its header), which SQLite increments each time it restarts the
	// log from the beginning after a complete checkpoint.
	type walStat struct {
		phase  int32
		size   int64
		resets uint32
	}
	var stats []walStat
	measured := make(chan struct{})
	go func() {
		defer close(measured)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			st := walStat{phase: phase.Load()}
			st.size, st.resets = walHeader(db + "-wal")
			stats = append(stats, st)
		}
	}()

	var mu sync.Mutex
	acked := map[string]bool{"first": true}
	unknown := map[string]bool{}
	var refused int
	var slowest time.Duration
	var okAt []time.Time
	okIn := map[int32]int{} // acknowledgements by phase
	client := &http.Client{Timeout: 10 * time.Second}
	began := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				// Long keys: more of the WAL per commit.
				k := fmt.Sprintf("readloop-%d-%d-", g, i)
				k += strings.Repeat("k", 255-len(k))
				start := time.Now()
				r, _, err := post(client, s.url+credit, `{"amount": 1}`, k)
				took := time.Since(start)
				mu.Lock()
				slowest = max(slowest, took)
				switch {
				case err != nil || r.status == 504:
					unknown[k] = true
				case r.status == 200:
					acked[k] = true
					okAt = append(okAt, time.Now())
					okIn[phase.Load()]++
				case r.status == 503 && r.body["code"] != nil && r.body["detail"] != "":
					refused++
				default:
					t.Errorf("credit while a shell reads: %d %s", r.status, r.raw)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	<-measured
	fmt.Fprintln(stdin, ".quit")
	stdin.Close()
	shell.Wait()
	if shellErr.String() != "" {
		t.Errorf("the sqlite3 shell failed: %s", shellErr.String())
	}
	if answers.Load() < 100 {
		t.Fatalf("the shell answered %d reads; the test proved nothing", answers.Load())
	}

	// Writes kept succeeding, also while the snapshot was held: no gap
	// as long as a hold without an acknowledgement.
	if slowest > 8*time.Second {
		t.Errorf("a credit took %s while the shell read", slowest)
	}
	for p := int32(0); p <= 2*turns; p++ {
		if okIn[p] == 0 {
			t.Errorf("no credit was acknowledged in phase %d (odd: a snapshot held)", p)
		}
	}
	for i := 1; i < len(okAt); i++ {
		if gap := okAt[i].Sub(okAt[i-1]); gap > 1500*time.Millisecond {
			t.Errorf("no credit was acknowledged for %s at %s", gap, okAt[i-1].Format("15:04:05.000"))
		}
	}

	// The WAL: bounded while reads come and go, also before any snapshot
	// was held; cut back by the end of each turn of short reads after a
	// snapshot let it grow.
	var maxBefore, maxHeld, maxEnd int64
	var resets int
	for i, st := range stats {
		switch {
		case st.phase == 0:
			maxBefore = max(maxBefore, st.size)
		case st.phase%2 == 1:
			maxHeld = max(maxHeld, st.size)
		}
		if st.phase == 0 && st.size > sqlite.WALSizeLimit {
			t.Errorf("the WAL grew to %.1f MiB while reads came and went, above the %.0f MiB bound", mib(st.size), mib(sqlite.WALSizeLimit))
		}
		if i > 0 && st.resets != stats[i-1].resets {
			resets++
		}
		if end := i == len(stats)-1 || stats[i+1].phase != st.phase; end && st.phase%2 == 0 {
			maxEnd = max(maxEnd, st.size)
			if st.size > sqlite.WALSizeLimit {
				t.Errorf("the WAL was %.1f MiB at the end of turn %d of short reads, above the %.0f MiB bound", mib(st.size), st.phase/2, mib(sqlite.WALSizeLimit))
			}
		}
	}
	took := time.Since(began)
	t.Logf("%d credits acknowledged in %s (%.0f/s; %d refused, %d unknown) over %d shell reads; slowest %s",
		len(acked), took.Round(100*time.Millisecond), float64(len(acked))/took.Seconds(), refused, len(unknown), answers.Load(), slowest.Round(time.Millisecond))
	t.Logf("WAL file: at most %.1f MiB before any snapshot was held, %.1f MiB while one was held, at most %.1f MiB at the end of each turn of short reads (bound %.0f MiB); restarted at least %d times",
		mib(maxBefore), mib(maxHeld), mib(maxEnd), mib(sqlite.WALSizeLimit), resets)
	if maxHeld <= sqlite.WALSizeLimit {
		t.Logf("writes were too slow to push the WAL past its limit: cutting it back was not tested")
	}

	// Every acknowledged credit is recorded, each once.
	recorded := recordedKeys(t, data, w)
	for k := range acked {
		if recorded[k] != uneventful.Accepted {
			t.Errorf("acknowledged credit %s is not recorded as accepted (%q)", abbrev(k), recorded[k])
		}
	}
	r := s.do("GET", "/wallet/"+w+"/balance", "")
	want(t, r, 200, nil)
	if b := balance(t, r); b < len(acked) || b > len(acked)+len(unknown) || b != len(recorded) {
		t.Fatalf("balance %d, want the %d acknowledged plus at most %d unknown, and the %d recorded", b, len(acked), len(unknown), len(recorded))
	}
	want(t, s.do("POST", credit, `{"amount": 1}`, "Idempotency-Key", "after"), 200, nil)
}

// walHeader returns the size of a WAL file and its checkpoint sequence
// number, or zeros if it does not exist.
func walHeader(path string) (size int64, resets uint32) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var h [32]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, 0
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, 0
	}
	return fi.Size(), binary.BigEndian.Uint32(h[12:16])
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
