package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
)

// Phases of TestRedisStopped, by when a request began and ended.
const (
	phaseUp     = iota // Redis running, before the stop
	phaseDown          // Redis killed
	phaseBack          // Redis running again, empty
	phaseAcross        // began in one phase, ended in another
)

var phaseNames = [...]string{"before the stop", "while Redis was down", "after Redis came back", "across a change"}

// TestRedisStopped: in the split roles, the private Redis of the read
// model is killed mid-load, kept down 4 s, and started again empty on the
// same port. Writes go on being acknowledged meanwhile, without waiting on
// Redis; reads answer 503 with a code and Retry-After (never 500, never a
// stale 200); once Redis is back the catch-up projector rebuilds the read
// model by itself, with no restart, and reads answer 200 again within 15 s,
// never going back a version nor behind the caller's own write. Every
// acknowledged credit is in the event log and the read model converges to
// the balances it gives.
func TestRedisStopped(t *testing.T) {
	rds := newRedis(t)
	pgURL := pgSchema(t)
	natsURL := startNATS(t)
	common := []string{"--nats", natsURL, "--log-level", "error"}
	writer := startRole(t, append([]string{"writer", "--domain", "wallet", "--store", pgURL, "--redis", rds.url()}, common...)...)
	server := startRole(t, append([]string{"server", "--redis", rds.url()}, common...)...)
	startRole(t, append([]string{"history-writer", "--store", pgURL}, common...)...)

	wallets := make([]string, 10)
	for i := range wallets {
		wallets[i] = uneventful.NewID()
	}
	var phase atomic.Int32 // phaseUp, phaseDown, phaseBack
	type result struct {
		write   bool
		phase   int
		status  int // 0: transport error
		code    string
		latency time.Duration
		start   time.Time
		end     time.Time
	}
	var mu sync.Mutex
	var results []result
	var wrong []string
	acked := map[string]bool{}
	// reads[w]: the reads of w answered 200, to check that no read sees a
	// version older than one read before it began.
	type read struct {
		end     time.Time
		version int64
	}
	reads := map[string][]read{}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	do := func(req *http.Request) (r result, body string) {
		p := int(phase.Load())
		start := time.Now()
		r.start = start
		res, err := client.Do(req)
		r.end = time.Now()
		r.latency = r.end.Sub(start)
		if q := int(phase.Load()); q != p {
			p = phaseAcross
		}
		r.phase = p
		if err != nil {
			return r, err.Error()
		}
		body = readAll(res)
		r.status = res.StatusCode
		if r.status == 503 && res.Header.Get("Retry-After") == "" {
			mu.Lock()
			wrong = append(wrong, fmt.Sprintf("%s %s: 503 without Retry-After: %s", req.Method, req.URL.Path, body))
			mu.Unlock()
		}
		var e struct{ Code string }
		json.Unmarshal([]byte(body), &e)
		r.code = e.Code
		return r, body
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := map[string]int64{} // wallet -> version of this client's last acknowledged credit
			for i := 0; ctx.Err() == nil; i++ {
				w := wallets[(g+i)%len(wallets)]
				key := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequest("POST", server+"/wallet/"+w+"/credit", strings.NewReader(`{"amount": 1}`))
				req.Header.Set("Idempotency-Key", key)
				r, body := do(req)
				r.write = true
				var v struct{ Version int64 }
				if r.status == 200 && json.Unmarshal([]byte(body), &v) == nil {
					mine[w] = v.Version
				}
				mu.Lock()
				results = append(results, r)
				if r.status == 200 {
					acked[key] = true
				}
				mu.Unlock()

				req, _ = http.NewRequest("GET", server+"/wallet/"+w+"/balance", nil)
				r, body = do(req)
				var bal struct {
					Balance json.Number
					Version int64
				}
				mu.Lock()
				results = append(results, r)
				switch r.status {
				case 200:
					// Every command is a credit of 1, all accepted: the
					// balance is the version, or the state is torn.
					if err := json.Unmarshal([]byte(body), &bal); err != nil || bal.Balance.String() != strconv.FormatInt(bal.Version, 10) {
						wrong = append(wrong, fmt.Sprintf("GET %s %s: 200 %s: balance is not the version", w, phaseNames[r.phase], body))
					}
					for _, before := range reads[w] {
						if before.end.Before(r.start) && before.version > bal.Version {
							wrong = append(wrong, fmt.Sprintf("GET %s %s: version %d after version %d was read", w, phaseNames[r.phase], bal.Version, before.version))
							break
						}
					}
					reads[w] = append(reads[w], read{r.end, bal.Version})
					if bal.Version < mine[w] {
						wrong = append(wrong, fmt.Sprintf("GET %s %s: version %d after this client's credit was acknowledged at version %d", w, phaseNames[r.phase], bal.Version, mine[w]))
					}
				case 503:
					if r.code != "read_model_unavailable" && r.code != "read_model_rebuilding" {
						wrong = append(wrong, fmt.Sprintf("GET %s %s: 503 with code %q: %s", w, phaseNames[r.phase], r.code, body))
					}
				default:
					wrong = append(wrong, fmt.Sprintf("GET %s %s: %d %s", w, phaseNames[r.phase], r.status, body))
				}
				mu.Unlock()
				if r.status != 200 {
					time.Sleep(20 * time.Millisecond) // as a client honouring Retry-After would, but sooner
				}
			}
		}(g)
	}

	time.Sleep(2 * time.Second)
	rds.stop()
	stoppedAt := time.Now()
	phase.Store(phaseDown)
	time.Sleep(4 * time.Second)
	rds.start()
	phase.Store(phaseBack)
	back := time.Now()
	t.Logf("Redis down for %v", back.Sub(stoppedAt).Round(time.Millisecond))
	// Load goes on until reads have answered 200 for 3 s, or 20 s.
	var recovered time.Duration
	for deadline := back.Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		lastBad, lastRead := back, time.Time{}
		for _, r := range results {
			if !r.write && r.phase == phaseBack {
				lastRead = r.end
				if r.status != 200 {
					lastBad = r.end
				}
			}
		}
		mu.Unlock()
		recovered = lastBad.Sub(back)
		if lastRead.Sub(lastBad) > 3*time.Second {
			break
		}
	}
	stop()
	wg.Wait()

	// Tally by phase.
	type tally struct {
		statuses map[string]int
		worst    time.Duration
		lat      []time.Duration
	}
	tallies := map[[2]int]*tally{}
	for _, r := range results {
		k := [2]int{r.phase, 0}
		if r.write {
			k[1] = 1
		}
		tl := tallies[k]
		if tl == nil {
			tl = &tally{statuses: map[string]int{}}
			tallies[k] = tl
		}
		s := strconv.Itoa(r.status)
		if r.code != "" {
			s += " " + r.code
		}
		tl.statuses[s]++
		tl.worst = max(tl.worst, r.latency)
		tl.lat = append(tl.lat, r.latency)
	}
	for p := phaseUp; p <= phaseAcross; p++ {
		for _, kind := range []int{1, 0} {
			tl := tallies[[2]int{p, kind}]
			if tl == nil {
				continue
			}
			slices.Sort(tl.lat)
			what := "reads"
			if kind == 1 {
				what = "writes"
			}
			t.Logf("%s %s: %v; p99 %v, worst %v", what, phaseNames[p], tl.statuses, tl.lat[len(tl.lat)*99/100].Round(time.Millisecond), tl.worst.Round(time.Millisecond))
		}
	}
	if len(wrong) > 0 {
		if len(wrong) > 20 {
			wrong = append(wrong[:20], fmt.Sprintf("... and %d more", len(wrong)-20))
		}
		t.Errorf("wrong answers:\n%s", strings.Join(wrong, "\n"))
	}
	// Writes: acknowledged in every phase, none waiting on Redis.
	for p := phaseUp; p <= phaseAcross; p++ {
		tl := tallies[[2]int{p, 1}]
		if tl == nil {
			if p != phaseAcross {
				t.Errorf("no write %s", phaseNames[p])
			}
			continue
		}
		for s, n := range tl.statuses {
			if s != "200" {
				t.Errorf("%d writes %s answered %s: writes must not depend on Redis", n, phaseNames[p], s)
			}
		}
		if p == phaseDown && tl.statuses["200"] < 50 {
			t.Errorf("only %d writes acknowledged in 4 s while Redis was down", tl.statuses["200"])
		}
		if p == phaseDown && tl.worst > time.Second {
			t.Errorf("a write took %v while Redis was down: the writer waits on Redis", tl.worst)
		}
	}
	// Reads: 503 while Redis is down, then 200 again within 15 s.
	if tl := tallies[[2]int{phaseDown, 0}]; tl == nil || tl.statuses["503 read_model_unavailable"] == 0 {
		t.Error("no read answered 503 read_model_unavailable while Redis was down: the outage was not observed")
	}
	if recovered > 15*time.Second {
		t.Errorf("reads answered 503 until %v after Redis came back, want 200 within 15 s", recovered.Round(time.Millisecond))
	}
	t.Logf("reads answered 200 again %v after Redis came back", recovered.Round(time.Millisecond))
	if failures := metricSum(t, writer, "uneventful_writer_project_failures_total"); failures == 0 {
		t.Error("the writer counted no failed projection: it did not notice Redis was down")
	} else {
		t.Logf("the writer failed to project %v commits and acknowledged them anyway", failures)
	}
	if rebuilds := metricSum(t, writer, "uneventful_read_model_rebuilds_total"); rebuilds == 0 {
		t.Error("the projector counted no rebuild after Redis came back empty")
	}

	// Every acknowledged credit is recorded, and the read model holds
	// exactly the balances the event log gives.
	st, err := postgres.Open(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recorded := map[string]bool{}
	for _, w := range wallets {
		events, err := st.Events(context.Background(), uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		var balance, version int64
		for _, e := range events {
			recorded[e.IdempotencyKey] = true
			if e.Outcome == uneventful.Accepted {
				balance++ // every credit is of 1
				version = e.Version
			}
		}
		waitFor(t, func() string {
			res, err := client.Get(server + "/wallet/" + w + "/balance")
			if err != nil {
				return err.Error()
			}
			body := readAll(res)
			var got struct {
				Balance json.Number
				Version int64
			}
			json.Unmarshal([]byte(body), &got)
			if res.StatusCode != 200 || got.Balance.String() != strconv.FormatInt(balance, 10) || got.Version != version {
				return fmt.Sprintf("read model of %s: %d %s; the event log gives balance %d at version %d", w, res.StatusCode, body, balance, version)
			}
			return ""
		})
	}
	lost := 0
	for k := range acked {
		if !recorded[k] {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged credit %s is not in the event log", k)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged credits are not in the event log", lost)
	}
	t.Logf("%d credits acknowledged, all in the event log; the read model equals it", len(acked))
}

// metricSum returns the sum of a metric's series at base/metrics (a
// Prometheus text exposition), over all their labels; 0 if it has none
// yet (a counter vector before its first count).
func metricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	v, err := scrapeMetric(base, name)
	if errors.Is(err, errNoMetric) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// errNoMetric: the metric has no series.
var errNoMetric = errors.New("no such metric")

// scrapeMetric is metricSum that returns its error, errNoMetric for a
// metric with no series.
func scrapeMetric(base, name string) (float64, error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%s/metrics: %w: %s", base, errNoMetric, name)
	}
	return sum, nil
}
