package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/postgres"
	"github.com/uneventful/uneventful/process"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
)

// TestTransfersWalkthrough plays a transfer, an overdraft, a refused
// transfer and a bad request through real HTTP against `uneventful serve`.
func TestTransfersWalkthrough(t *testing.T) {
	s := startServe(t, t.TempDir())
	a, b, full := uneventful.NewID(), uneventful.NewID(), uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+a+"/credit", `{"amount": 10}`), 200, nil)
	want(t, s.do("POST", "/wallet/"+full+"/credit", `{"amount": 92233720368547758.07}`), 200, nil)

	r := s.do("POST", "/wallet/"+a+"/transfer", `{"to": "`+b+`", "amount": 3}`)
	want(t, r, 200, map[string]string{"success": "true", "balance": "7", "in_flight": "3"})
	done := fmt.Sprint(r.body["event_id"])
	want(t, s.do("POST", "/wallet/"+a+"/transfer", `{"to": "`+b+`", "amount": 8}`), 409, map[string]string{"code": "insufficient_funds", "balance": "7"})
	r = s.do("POST", "/wallet/"+a+"/transfer", `{"to": "`+full+`", "amount": 2}`)
	want(t, r, 200, map[string]string{"balance": "5"})
	refused := fmt.Sprint(r.body["event_id"])
	want(t, s.do("POST", "/wallet/"+a+"/transfer", `{"to": "nobody", "amount": 2}`), 400, map[string]string{"code": "invalid_to"})
	want(t, s.do("POST", "/wallet/"+b+"/receive", `{"transfer": "`+done+`", "from": "`+a+`", "amount": 100, "scale": 2}`), 400, map[string]string{"code": "internal_command"})

	waitFor(t, func() string {
		if r := s.do("GET", "/wallet/"+a+"/balance", ""); r.body["in_flight"] != nil || fmt.Sprint(r.body["balance"]) != "7" {
			return "wallet a has money in flight still: " + r.raw
		}
		return ""
	})
	want(t, s.do("GET", "/wallet/"+b+"/balance", ""), 200, map[string]string{"balance": "3"})
	want(t, s.do("GET", "/wallet/"+a+"/transfer?id="+done, ""), 200, map[string]string{"transfer": done, "from": a, "to": b, "amount": "3", "status": "completed"})
	want(t, s.do("GET", "/wallet/"+a+"/transfer?id="+refused, ""), 200, map[string]string{"to": full, "amount": "2", "status": "compensated"})
	want(t, s.do("GET", "/wallet/"+a+"/transfer?id="+uneventful.NewID(), ""), 404, map[string]string{"code": "transfer_not_found"})

	r = s.do("GET", "/wallet/"+b+"/transactions", "")
	want(t, r, 200, nil)
	if txs := r.body["transactions"].([]any); len(txs) != 1 || fmt.Sprint(txs[0].(map[string]any)["source_entity_id"]) != a {
		t.Errorf("b's transactions do not show the receive from a: %s", r.raw)
	}
}

// TestBank is the bank workload of Jepsen: money moves between wallets by
// transfers from 64 clients while `serve` is killed with SIGKILL and
// restarted every 1.5 to 3 s. Once the process is left running and every
// transfer is settled, no money was created or destroyed, no balance was
// ever negative, every accepted transfer ended completed or compensated,
// and each step of a transfer was applied at most once.
func TestBank(t *testing.T) {
	const (
		wallets  = 10
		initial  = 100 // each wallet's credit, in whole units
		clients  = 64
		chaos    = 12 * time.Second
		minKills = 3
	)
	data := t.TempDir()
	args := []string{"serve", "--http", "127.0.0.1:0", "--data", data, "--nats-port", "-1", "--log-level", "info"}
	var cur atomic.Pointer[child]
	cur.Store(startChild(t, args...))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	post := func(path, body, key string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", cur.Load().url+path, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		res, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var m map[string]any
		d := json.NewDecoder(res.Body)
		d.UseNumber()
		if d.Decode(&m) != nil {
			return 0, nil
		}
		return res.StatusCode, m
	}
	get := func(path string) (int, map[string]any) {
		res, err := client.Get(cur.Load().url + path)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var m map[string]any
		d := json.NewDecoder(res.Body)
		d.UseNumber()
		if d.Decode(&m) != nil {
			return 0, nil
		}
		return res.StatusCode, m
	}

	ids := make([]string, wallets)
	for i := range ids {
		ids[i] = uneventful.NewID()
	}
	// A wallet that holds all it can refuses every transfer: those are
	// refunded (compensated).
	full := uneventful.NewID()
	credit := func(id, amount string) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if status, _ := post("/wallet/"+id+"/credit", `{"amount": `+amount+`}`, "credit-"+id); status == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("credit %s: no 200 within 10s", id)
			}
		}
	}
	for _, id := range ids {
		credit(id, fmt.Sprint(initial))
	}
	credit(full, "92233720368547758.07")

	// The workload: random transfers, some of them overdrawing, a few to
	// the full wallet or to the wallet itself.
	type op struct {
		from, to, key string
		amount        int
		status        int    // 0: unknown
		eventID       string // of a 200
	}
	var mu sync.Mutex
	var ops []op
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; ctx.Err() == nil; i++ {
				o := op{from: ids[rng.IntN(wallets)], to: ids[rng.IntN(wallets)], amount: 1 + rng.IntN(60), key: fmt.Sprintf("t%d-%d", c, i)}
				switch n := rng.IntN(100); {
				case n < 5:
					o.to = full
				case n < 7:
					o.to = o.from
				}
				status, body := post("/wallet/"+o.from+"/transfer", fmt.Sprintf(`{"to": %q, "amount": %d}`, o.to, o.amount), o.key)
				o.status = status
				if status == 200 {
					o.eventID = fmt.Sprint(body["event_id"])
				}
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
				switch {
				case status == 0 || status >= 500:
					time.Sleep(50 * time.Millisecond) // the child is down
				case status == 409:
					// Insufficient funds: the money is elsewhere or in
					// flight; a client does not hammer.
					time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
				default:
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				}
			}
		}(c)
	}

	// The nemesis: SIGKILL and restart, at least minKills times.
	rng := rand.New(rand.NewPCG(1, 2))
	start, kills := time.Now(), 0
	for kills < minKills || time.Since(start) < chaos {
		time.Sleep(1500*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond)
		cur.Load().kill()
		kills++
		cur.Store(startChild(t, args...))
	}
	stop()
	wg.Wait()

	// Settle: wait until no money is in flight anywhere.
	all := append(append([]string(nil), ids...), full)
	settled := time.Now()
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var busy []string
		for _, id := range all {
			status, body := get("/wallet/" + id + "/balance")
			if status != 200 || body["in_flight"] != nil {
				busy = append(busy, fmt.Sprintf("%s: %d %v", id, status, body))
			}
		}
		if len(busy) == 0 {
			break
		}
		if time.Now().After(deadline) {
			// The log says why.
			t.Errorf("transfers still pending 40s after the last restart:\n%s", strings.Join(busy, "\n"))
			break
		}
	}
	t.Logf("%d kills; settled %v after the last restart", kills, time.Since(settled).Round(time.Millisecond))

	store, err := sqlite.OpenReadOnly(context.Background(), filepath.Join(data, "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b := checkBank(t, store, ids, full, initial)

	// What the clients saw agrees with the log: every acknowledged
	// transfer is recorded, under the event id it was answered with.
	counts := map[int]int{}
	for _, o := range ops {
		counts[o.status]++
		if o.status != 200 {
			continue
		}
		tr, ok := b.byKey[o.key]
		if !ok || tr.event.EventID != o.eventID {
			t.Errorf("acknowledged transfer %s (%s) is not recorded as accepted", o.key, o.eventID)
		}
	}
	if counts[200] == 0 || counts[409] == 0 || b.completed == 0 || b.compensated == 0 {
		t.Fatalf("statuses %v, %d completed, %d compensated: the workload did not exercise every path", counts, b.completed, b.compensated)
	}
	// The status query agrees with the log.
	checked := 0
	for _, tr := range b.transfers {
		if checked == 30 {
			break
		}
		if status, body := get("/wallet/" + tr.event.EntityID + "/transfer?id=" + tr.event.EventID); status != 200 || body["status"] != tr.status() {
			t.Errorf("transfer %s: status query %d %v, the log says %s", tr.event.EventID, status, body, tr.status())
		}
		checked++
	}
	t.Logf("%d transfers answered: %v; %d accepted, %d completed, %d compensated; %d kills", len(ops), counts, len(b.transfers), b.completed, b.compensated, kills)
}

// TestTransfersSplitRoles runs transfers through the split roles on a
// private nats-server, PostgreSQL and Redis: two wallet writers, each with
// its transfer process manager on the shared durable consumer, and a
// server. One writer is killed with SIGKILL while transfers run: the other
// takes its commands and, through the shared consumer, the events its
// manager was handling, and every transfer settles, each step once.
func TestTransfersSplitRoles(t *testing.T) {
	redisURL := os.Getenv("UNEVENTFUL_REDIS_URL")
	if redisURL == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	pgURL := pgSchema(t)
	natsURL := startNATS(t)
	prefix := "test-" + uneventful.NewID()[:10] + ":"
	t.Cleanup(func() { deleteRedisKeys(t, redisURL, prefix) })
	common := []string{"--nats", natsURL, "--log-level", "warn", "--redis", redisURL, "--redis-prefix", prefix}
	writer := append([]string{"writer", "--domain", "wallet", "--store", pgURL}, common...)
	var victim *exec.Cmd
	startRoleWith(t, func(c *exec.Cmd) { victim = c }, writer...)
	startRole(t, writer...)
	server := startRole(t, append([]string{"server"}, common...)...)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	send := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, server+path, strings.NewReader(body))
		res, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var m map[string]any
		d := json.NewDecoder(res.Body)
		d.UseNumber()
		if d.Decode(&m) != nil {
			return 0, nil
		}
		return res.StatusCode, m
	}
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = uneventful.NewID()
		if status, body := send("POST", "/wallet/"+ids[i]+"/credit", `{"amount": 100}`); status != 200 {
			t.Fatalf("credit: %d %v", status, body)
		}
	}
	full := uneventful.NewID()
	if status, body := send("POST", "/wallet/"+full+"/credit", `{"amount": 92233720368547758.07}`); status != 200 {
		t.Fatalf("credit: %d %v", status, body)
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var accepted atomic.Int64
	var mu sync.Mutex
	made := map[string]string{} // transfer id -> source, of some acknowledged transfers
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 9))
			for ctx.Err() == nil {
				from, to := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
				if rng.IntN(10) == 0 {
					to = full
				}
				status, body := send("POST", "/wallet/"+from+"/transfer", fmt.Sprintf(`{"to": %q, "amount": %d}`, to, 1+rng.IntN(40)))
				if status == 200 {
					accepted.Add(1)
					mu.Lock()
					if len(made) < 40 {
						made[fmt.Sprint(body["event_id"])] = from
					}
					mu.Unlock()
				}
				time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
			}
		}(c)
	}
	time.Sleep(1500 * time.Millisecond)
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()

	settling, settled := time.Now(), time.Duration(0)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var busy []string
		for _, id := range append(append([]string(nil), ids...), full) {
			if status, body := send("GET", "/wallet/"+id+"/balance", ""); status != 200 || body["in_flight"] != nil {
				busy = append(busy, fmt.Sprintf("%s: %d %v", id, status, body))
			}
		}
		if len(busy) == 0 {
			settled = time.Since(settling)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("transfers still pending 30s after the writer was killed:\n%s", strings.Join(busy, "\n")) // the log says why
			break
		}
	}
	store, err := postgres.Open(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b := checkBank(t, store, ids, full, 100)
	if b.completed == 0 || b.compensated == 0 {
		t.Fatalf("%d completed, %d compensated: the workload did not exercise every path", b.completed, b.compensated)
	}
	// The status query, on the Redis read model, agrees with the log.
	logged := map[string]*transferLog{}
	for _, tr := range b.transfers {
		logged[tr.event.EventID] = tr
	}
	for id, from := range made {
		tr := logged[id]
		if tr == nil {
			t.Errorf("acknowledged transfer %s is not recorded", id)
			continue
		}
		if status, body := send("GET", "/wallet/"+from+"/transfer?id="+id, ""); status != 200 || body["status"] != tr.status() || body["to"] != tr.to {
			t.Errorf("transfer %s: status query %d %v, the log says %s to %s", id, status, body, tr.status(), tr.to)
		}
	}
	t.Logf("%d transfers acknowledged; %d accepted, %d completed, %d compensated; settled in %v", accepted.Load(), len(b.transfers), b.completed, b.compensated, settled.Round(time.Millisecond))
}

// transferLog is one accepted transfer and the steps the event log holds
// for it.
type transferLog struct {
	event    uneventful.Event
	to       string
	amount   int64
	receives []uneventful.Event // accepted or rejected
	settles  []uneventful.Event
	refunds  []uneventful.Event
}

func (tr *transferLog) status() string {
	switch {
	case len(tr.settles) > 0:
		return wallet.Completed
	case len(tr.refunds) > 0:
		return wallet.Compensated
	}
	return wallet.Pending
}

type bankLog struct {
	transfers              []*transferLog
	byKey                  map[string]*transferLog // client idempotency key
	completed, compensated int
}

// stepData is the data of a transfer's steps.
type stepData struct {
	Transfer string      `json:"transfer"`
	To       string      `json:"to"`
	From     string      `json:"from"`
	Amount   json.Number `json:"amount"`
}

// checkBank checks the bank's invariants on its event log and state log.
func checkBank(t *testing.T, store uneventful.Store, ids []string, full string, initial int64) *bankLog {
	t.Helper()
	ctx := context.Background()
	var events []uneventful.Event
	for after := int64(0); ; {
		page, err := store.Events(ctx, uneventful.EventQuery{AfterSequence: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Sequence
	}
	read := func(e *uneventful.Event) stepData {
		var d stepData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		return d
	}
	b := &bankLog{byKey: map[string]*transferLog{}}
	byID := map[string]*transferLog{}
	for i := range events {
		e := &events[i]
		if e.Command == wallet.Transfer && e.Outcome == uneventful.Accepted {
			d := read(e)
			amount, _ := d.Amount.Int64()
			tr := &transferLog{event: *e, to: d.To, amount: amount}
			b.transfers = append(b.transfers, tr)
			b.byKey[e.IdempotencyKey] = tr
			byID[e.EventID] = tr
		}
	}
	keys := map[string]string{} // idempotency key -> event id
	for i := range events {
		e := &events[i]
		if prior, dup := keys[e.IdempotencyKey]; dup {
			t.Errorf("idempotency key %s recorded twice: %s and %s", e.IdempotencyKey, prior, e.EventID)
		}
		keys[e.IdempotencyKey] = e.EventID
		if e.Command != wallet.Receive && e.Command != wallet.Settle && e.Command != wallet.Refund {
			continue
		}
		d := read(e)
		tr := byID[d.Transfer]
		if tr == nil {
			t.Errorf("%s names transfer %s, which is not an accepted transfer", e, d.Transfer)
			continue
		}
		if e.CorrelationID != tr.event.EventID {
			t.Errorf("%s: correlation_id %s, want the transfer's id %s", e, e.CorrelationID, tr.event.EventID)
		}
		if amount, _ := d.Amount.Int64(); amount != tr.amount && e.Outcome == uneventful.Accepted {
			t.Errorf("%s moves %s, the transfer %d", e, d.Amount, tr.amount)
		}
		switch e.Command {
		case wallet.Receive:
			if e.EntityID != tr.to || d.From != tr.event.EntityID || e.CausationID != tr.event.EventID ||
				e.IdempotencyKey != process.Key(transfersName, tr.event.EventID, wallet.Receive) {
				t.Errorf("receive %+v does not follow from transfer %s", e, tr.event.String())
			}
			tr.receives = append(tr.receives, *e)
		case wallet.Settle, wallet.Refund:
			if e.Outcome != uneventful.Accepted {
				t.Errorf("%s was rejected: %s", e, e.Message)
				continue
			}
			if e.EntityID != tr.event.EntityID || d.To != tr.to {
				t.Errorf("%s does not go back to the source of transfer %s", e, tr.event.String())
			}
			if e.Command == wallet.Settle {
				tr.settles = append(tr.settles, *e)
			} else {
				tr.refunds = append(tr.refunds, *e)
			}
		}
	}
	// Every accepted transfer ended completed or compensated, each step
	// applied at most once.
	for _, tr := range b.transfers {
		var accepted, rejected int
		for _, r := range tr.receives {
			if r.Outcome == uneventful.Accepted {
				accepted++
			} else {
				rejected++
			}
		}
		self := tr.to == tr.event.EntityID
		switch {
		case accepted+rejected > 1 || len(tr.settles)+len(tr.refunds) != 1:
			t.Errorf("transfer %s: %d receives accepted, %d rejected, %d settles, %d refunds; want one receive and one settle or refund",
				tr.event.String(), accepted, rejected, len(tr.settles), len(tr.refunds))
		case self && (accepted+rejected != 0 || len(tr.refunds) != 1):
			t.Errorf("transfer %s to its own wallet was not refunded at once", tr.event.String())
		case !self && (accepted == 1) != (len(tr.settles) == 1):
			t.Errorf("transfer %s: receive accepted %d times, settled %d times", tr.event.String(), accepted, len(tr.settles))
		case len(tr.settles) == 1:
			b.completed++
		default:
			b.compensated++
		}
		if len(tr.refunds) == 1 {
			want := tr.event.EventID // a transfer to its own wallet
			if !self && len(tr.receives) == 1 {
				want = tr.receives[0].EventID
			}
			if r := tr.refunds[0]; r.CausationID != want || r.IdempotencyKey != process.Key(transfersName, want, wallet.Refund) {
				t.Errorf("refund %+v does not follow from %s", r, want)
			}
		}
	}
	// No balance was ever negative, and the money is all there.
	model := wallet.New(wallet.DefaultScale)
	var sum wallet.Amount
	for _, id := range append(append([]string(nil), ids...), full) {
		var last wallet.State
		n := int64(0)
		for after := int64(0); ; {
			states, err := store.States(ctx, wallet.Name, id, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range states {
				n++
				if st.Version != n {
					t.Fatalf("wallet %s: state version %d after %d", id, st.Version, n-1)
				}
				s, err := model.DecodeState(st.Data)
				if err != nil {
					t.Fatalf("wallet %s version %d: %v (%s)", id, st.Version, err, st.Data)
				}
				last = s.(wallet.State)
				if last.Balance < 0 || last.InFlight < 0 {
					t.Fatalf("wallet %s version %d: %+v", id, st.Version, last)
				}
			}
			if len(states) < 1000 {
				break
			}
			after = states[len(states)-1].Version
		}
		if last.InFlight != 0 {
			t.Errorf("wallet %s ends with %+v in flight", id, last)
		}
		if id == full {
			if last.Balance != math.MaxInt64 {
				t.Errorf("the full wallet ends with %+v", last)
			}
			continue
		}
		sum += last.Balance
	}
	if want := wallet.Amount(initial * int64(len(ids)) * 100); sum != want {
		t.Errorf("the wallets hold %s, want %s: money was created or destroyed", wallet.FormatAmount(sum, 2), wallet.FormatAmount(want, 2))
	}
	return b
}
