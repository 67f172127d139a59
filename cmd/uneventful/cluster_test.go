package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/postgres"
)

// natsNode is one nats-server of a test cluster.
type natsNode struct {
	name    string
	url     string // nats://127.0.0.1:<client port>
	monitor string // http://127.0.0.1:<monitoring port>
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
}

// kill stops the node with SIGKILL and waits until it is gone.
func (n *natsNode) kill() {
	select {
	case <-n.exited:
	default:
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

// startNATSCluster starts a cluster of n nats-servers with JetStream on
// free loopback ports, each with its own store directory, and stops them
// all (SIGKILL) when the test ends.
func startNATSCluster(t *testing.T, n int) []*natsNode {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatal("nats-server is not on PATH; install it (Debian package nats-server)")
	}
	clientPorts, routePorts, monitorPorts := make([]int, n), make([]int, n), make([]int, n)
	for i := 0; i < n; i++ {
		clientPorts[i], routePorts[i], monitorPorts[i] = freePort(t), freePort(t), freePort(t)
	}
	nodes := make([]*natsNode, n)
	t.Cleanup(func() {
		for _, node := range nodes {
			if node != nil {
				node.kill()
			}
		}
		if t.Failed() {
			for _, node := range nodes {
				if node != nil {
					t.Logf("nats-server %s stderr (tail):\n%s", node.name, tail(node.stderr.String(), 40))
				}
			}
		}
	})
	for i := 0; i < n; i++ {
		var routes []string
		for j := 0; j < n; j++ {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[j]))
			}
		}
		node := &natsNode{
			name:    fmt.Sprintf("n%d", i+1),
			url:     fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]),
			monitor: fmt.Sprintf("http://127.0.0.1:%d", monitorPorts[i]),
			stderr:  &syncBuffer{},
			exited:  make(chan struct{}),
		}
		node.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(clientPorts[i]), "-m", fmt.Sprint(monitorPorts[i]),
			"-js", "-sd", t.TempDir(), "--name", node.name,
			"--cluster_name", "uneventful-test", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]),
			"--routes", strings.Join(routes, ","))
		node.cmd.Stderr = node.stderr
		if err := node.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { node.cmd.Wait(); close(node.exited) }()
		nodes[i] = node
	}
	for _, node := range nodes {
		addr := strings.TrimPrefix(node.url, "nats://")
		for deadline := time.Now().Add(10 * time.Second); ; {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nats-server %s did not listen on %s", node.name, addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// clusterRole is a role running as a child process.
type clusterRole struct {
	name   string
	url    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

// startClusterRoles starts roles (each an argument list) as child
// processes with --http on free ports, all at once, and waits until every
// /readyz answers 200. Like startRole, but it keeps each role's stderr, and
// stops all roles together when the test ends.
func startClusterRoles(t *testing.T, roles ...[]string) []*clusterRole {
	t.Helper()
	var started []*clusterRole
	t.Cleanup(func() {
		for _, r := range started {
			r.cmd.Process.Signal(os.Interrupt)
		}
		timeout := time.After(15 * time.Second)
		for _, r := range started {
			select {
			case <-r.exited:
			case <-timeout:
				t.Errorf("%s did not stop within 15s of SIGINT; killed", r.name)
				r.cmd.Process.Kill()
				<-r.exited
			}
		}
		if t.Failed() {
			for _, r := range started {
				t.Logf("%s stderr:\n%s", r.name, tail(r.stderr.String(), 60))
			}
		}
	})
	for i, args := range roles {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		r := &clusterRole{name: fmt.Sprintf("%s#%d", args[0], i), url: "http://" + addr, stderr: &syncBuffer{}, exited: make(chan struct{})}
		r.cmd = exec.Command(os.Args[0], append(args, "--http", addr)...)
		r.cmd.Env = append(os.Environ(), "UNEVENTFUL_TEST_MAIN=1")
		r.cmd.Stderr = r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { r.cmd.Wait(); close(r.exited) }()
		started = append(started, r)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range started {
		for {
			res, err := client.Get(r.url + "/readyz")
			if err == nil {
				body := readAll(res)
				if res.StatusCode == 200 {
					break
				}
				err = fmt.Errorf("%d %s", res.StatusCode, body)
			}
			select {
			case <-r.exited:
				t.Fatalf("%s exited: %v\n%s", r.name, r.cmd.ProcessState, r.stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready: %v\n%s", r.name, err, r.stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return started
}

// roleConnections counts, per node, the client connections of the roles
// (named "uneventful ...").
func roleConnections(t *testing.T, nodes []*natsNode) map[string][]string {
	t.Helper()
	conns := map[string][]string{}
	for _, n := range nodes {
		res, err := http.Get(n.monitor + "/connz?limit=1024")
		if err != nil {
			t.Fatal(err)
		}
		var cz struct {
			Connections []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		if err := json.Unmarshal([]byte(readAll(res)), &cz); err != nil {
			t.Fatal(err)
		}
		for _, c := range cz.Connections {
			if strings.HasPrefix(c.Name, "uneventful ") {
				conns[n.name] = append(conns[n.name], strings.TrimPrefix(c.Name, "uneventful "))
			}
		}
	}
	return conns
}

// leaders returns the leaders of the event stream and of the history
// writer's durable consumer ("" while there is none).
func leaders(ctx context.Context, js jetstream.JetStream) (stream, consumer string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if s, err := js.Stream(ctx, uenats.StreamName); err == nil {
		if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
			stream = info.Cluster.Leader
		}
		if c, err := s.Consumer(ctx, "history"); err == nil {
			if info, err := c.Info(ctx); err == nil && info.Cluster != nil {
				consumer = info.Cluster.Leader
			}
		}
	}
	return stream, consumer
}

// clusterOp is one command a client sent, and what it got.
type clusterOp struct {
	wallet, cmd, key string
	amount           int
	status           int // 0: transport error
	start, end       time.Time
	retried          int    // answer of a retry with the same key, for an unknown op
	body             string // the answer's body, kept for failed ops
}

type opClass string

const (
	opOK       opClass = "ok"       // 200: accepted
	opRejected opClass = "rejected" // 409: recorded as rejected
	opFailed   opClass = "failed"   // any other 4xx/5xx but 504: nothing applied
	opUnknown  opClass = "unknown"  // 504 or a transport error: applied at most once
)

func classify(status int) opClass {
	switch status {
	case 200:
		return opOK
	case 409:
		return opRejected
	case 0, 504:
		return opUnknown
	}
	return opFailed
}

// TestNATSCluster runs the split roles on a 3-node NATS cluster (event
// stream with 3 replicas), PostgreSQL and Redis: 2 writers, 2 servers and
// the history writer. 32 clients credit and debit 5 wallets for 8 s; a
// third of the way in, one nats-server is killed with SIGKILL. The node
// killed is the one most role connections are on, after the event stream
// and the history consumer were made to lead there (leader step-down), so
// that one kill costs roles their connection and JetStream its stream
// and consumer leader. Clients must keep getting 200s after the kill, no
// acknowledged command may be lost or applied twice, the invariant holds,
// the history holds every event exactly once, and the read model
// converges.
func TestNATSCluster(t *testing.T) {
	began := time.Now()
	redisURL := os.Getenv("UNEVENTFUL_REDIS_URL")
	if redisURL == "" {
		t.Skip("UNEVENTFUL_REDIS_URL is not set; set it to a Redis server, e.g. redis://127.0.0.1:6379")
	}
	pgURL := pgSchema(t)
	nodes := startNATSCluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	natsURLs := strings.Join(urls, ",")

	// The test's own connection, to wait for JetStream and find leaders.
	nc, err := natsgo.Connect(natsURLs, natsgo.Name("test"), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The cluster elects a meta leader in a few seconds; until then
	// creating the stream fails.
	for deadline := time.Now().Add(30 * time.Second); ; {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := uenats.EnsureStream(cctx, js, uenats.StreamConfig{Replicas: 3})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready after 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	clusterUp := time.Now()

	prefix := "test-" + uneventful.NewID()[:10] + ":"
	common := []string{"--nats", natsURLs, "--replicas", "3", "--log-level", "info"}
	writerArgs := append([]string{"writer", "--domain", "wallet", "--store", pgURL, "--redis", redisURL, "--redis-prefix", prefix}, common...)
	serverArgs := append([]string{"server", "--redis", redisURL, "--redis-prefix", prefix}, common...)
	roles := startClusterRoles(t, writerArgs, writerArgs,
		append([]string{"history-writer", "--store", pgURL}, common...),
		serverArgs, serverArgs)
	servers := []string{roles[3].url, roles[4].url}
	rolesUp := time.Now()

	// The roles created the stream with 3 replicas, not 1.
	stream, err := js.Stream(ctx, uenats.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("event stream has %d replicas, want 3", info.Config.Replicas)
	}

	// Choose the victim: the node with the most role connections.
	conns := roleConnections(t, nodes)
	victim := nodes[0]
	for _, n := range nodes[1:] {
		if len(conns[n.name]) > len(conns[victim.name]) {
			victim = n
		}
	}
	// Move the stream and history consumer leaders there, so that the
	// kill also costs JetStream its leaders. A step-down elects a random
	// other peer: a few tries land it.
	moveLeader := func(what, api string, leader func() string) {
		for try := 0; try < 8 && leader() != victim.name; try++ {
			m, err := nc.Request(api, nil, 2*time.Second)
			if err != nil {
				t.Logf("%s step-down: %v", what, err)
			} else {
				t.Logf("%s step-down %d from %s: %s", what, try, leader(), m.Data)
			}
			for deadline := time.Now().Add(5 * time.Second); leader() == "" && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitConsumer := time.Now().Add(10 * time.Second)
	for _, c := leaders(ctx, js); c == "" && time.Now().Before(waitConsumer); _, c = leaders(ctx, js) {
		time.Sleep(50 * time.Millisecond)
	}
	moveLeader("stream", "$JS.API.STREAM.LEADER.STEPDOWN."+uenats.StreamName, func() string { s, _ := leaders(ctx, js); return s })
	moveLeader("consumer", "$JS.API.CONSUMER.LEADER.STEPDOWN."+uenats.StreamName+".history", func() string { _, c := leaders(ctx, js); return c })
	streamLeader, consumerLeader := leaders(ctx, js)
	t.Logf("victim %s: role connections %v (all: %v); stream leader %s, history consumer leader %s",
		victim.name, conns[victim.name], conns, streamLeader, consumerLeader)
	leadersMoved := time.Now()

	wallets := make([]string, 5)
	for i := range wallets {
		wallets[i] = uneventful.NewID()
	}
	const (
		clients  = 32
		loadTime = 8 * time.Second
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	send := func(o *clusterOp, server string) (int, string) {
		req, _ := http.NewRequest("POST", server+"/wallet/"+o.wallet+"/"+o.cmd, strings.NewReader(fmt.Sprintf(`{"amount": %d}`, o.amount)))
		req.Header.Set("Idempotency-Key", o.key)
		res, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		body := readAll(res)
		return res.StatusCode, body
	}
	var mu sync.Mutex
	var ops []*clusterOp
	loadStart := time.Now()
	stopAt := loadStart.Add(loadTime)
	killed := make(chan time.Time, 1)
	go func() {
		time.Sleep(loadTime / 3)
		at := time.Now()
		victim.kill()
		killed <- at
	}()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(loadStart.UnixNano())))
			for i := 0; time.Now().Before(stopAt); i++ {
				o := &clusterOp{wallet: wallets[rng.IntN(len(wallets))], cmd: "credit", amount: 1 + rng.IntN(5), key: fmt.Sprintf("c%d-%d", c, i)}
				if rng.IntN(2) == 0 {
					o.cmd, o.amount = "debit", 1+rng.IntN(9)
				}
				o.start = time.Now()
				var body string
				o.status, body = send(o, servers[(c+i)%2])
				if classify(o.status) != opOK && classify(o.status) != opRejected {
					o.body = body
				}
				o.end = time.Now()
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	killAt := <-killed
	loadEnd := time.Now()

	// Tally by class, before and after the kill (by when the op started).
	type tally map[opClass]int
	before, after := tally{}, tally{}
	var lastQuarterOK int
	var slowest time.Duration
	statuses := map[int]int{}
	for _, o := range ops {
		statuses[o.status]++
		if d := o.end.Sub(o.start); d > slowest {
			slowest = d
		}
		if o.start.Before(killAt) {
			before[classify(o.status)]++
		} else {
			after[classify(o.status)]++
		}
		if o.status == 200 && o.start.After(stopAt.Add(-loadTime/4)) {
			lastQuarterOK++
		}
	}
	t.Logf("load %v, kill at +%v: %d ops, statuses %v, slowest %v; before the kill %v, after %v",
		loadEnd.Sub(loadStart).Round(time.Millisecond), killAt.Sub(loadStart).Round(time.Millisecond), len(ops), statuses, slowest.Round(time.Millisecond), before, after)
	if after[opOK] == 0 {
		t.Errorf("no command succeeded after %s was killed", victim.name)
	}
	if lastQuarterOK == 0 {
		t.Errorf("no command succeeded in the last quarter of the load: the roles did not recover from the kill")
	}
	if before[opOK]+after[opOK] == 0 || before[opRejected]+after[opRejected] == 0 {
		t.Fatalf("the load did not exercise both acceptance and rejection")
	}
	for _, o := range ops {
		if classify(o.status) == opFailed && o.status != 503 {
			t.Errorf("%s %s %d (key %s): unexpected status %d: %s", o.cmd, o.wallet, o.amount, o.key, o.status, o.body)
		}
		if classify(o.status) == opFailed || classify(o.status) == opUnknown {
			t.Logf("%s %s %d (key %s) at +%v took %v: %d %s", o.cmd, o.wallet, o.amount, o.key, o.start.Sub(loadStart).Round(time.Millisecond), o.end.Sub(o.start).Round(time.Millisecond), o.status, o.body)
		}
	}

	// Learn the outcome of every unknown op by retrying it with the same
	// Idempotency-Key: a recorded op answers its original outcome, an
	// unrecorded one is applied now, and none is applied twice.
	var unknown []*clusterOp
	for _, o := range ops {
		if classify(o.status) == opUnknown {
			unknown = append(unknown, o)
		}
	}
	retryDeadline := time.Now().Add(15 * time.Second)
	var rg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, o := range unknown {
		rg.Add(1)
		go func() {
			defer rg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for try := 0; time.Now().Before(retryDeadline); try++ {
				o.retried, _ = send(o, servers[(i+try)%2])
				if c := classify(o.retried); c == opOK || c == opRejected {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	rg.Wait()
	for _, o := range unknown {
		if c := classify(o.retried); c != opOK && c != opRejected {
			t.Errorf("%s %s (key %s) answered %d, and its retry still %d", o.cmd, o.wallet, o.key, o.status, o.retried)
		}
	}

	// The store: every op with a known answer is recorded exactly once
	// with that outcome, every failed op not at all, every unknown at
	// most once (exactly once after its retry, with the retry's outcome).
	store, err := postgres.Open(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	byKey := map[string]*clusterOp{}
	for _, o := range ops {
		byKey[o.key] = o
	}
	recorded := map[string][]uneventful.Event{}
	eventIDs := map[string]bool{}
	balances := map[string][2]int64{} // wallet -> balance, version
	for _, w := range wallets {
		events, err := store.Events(ctx, uneventful.EventQuery{Domain: "wallet", EntityID: w, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		var balance, version int64
		for _, e := range events {
			eventIDs[e.EventID] = true
			o, known := byKey[e.IdempotencyKey]
			if !known || o.wallet != w {
				t.Errorf("wallet %s: recorded event %s has key %q that no client sent it", w, e.EventID, e.IdempotencyKey)
				continue
			}
			recorded[e.IdempotencyKey] = append(recorded[e.IdempotencyKey], e)
			if e.Outcome != uneventful.Accepted {
				continue
			}
			version++
			if e.Version != version {
				t.Errorf("wallet %s: accepted event %s has version %d, want %d (gap or repeat)", w, e.EventID, e.Version, version)
			}
			if o.cmd == "credit" {
				balance += int64(o.amount)
			} else {
				balance -= int64(o.amount)
			}
			if balance < 0 {
				t.Errorf("wallet %s went negative (%d) at version %d", w, balance, e.Version)
			}
		}
		states, err := store.States(ctx, "wallet", w, 0, 100000)
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
		balances[w] = [2]int64{balance, version}
	}
	outcome := map[opClass]uneventful.Outcome{opOK: uneventful.Accepted, opRejected: uneventful.Rejected}
	unknownRecorded := 0
	for _, o := range ops {
		rec := recorded[o.key]
		switch c := classify(o.status); c {
		case opOK, opRejected:
			if len(rec) != 1 || rec[0].Outcome != outcome[c] {
				t.Errorf("%s %s %d (key %s) answered %d but is recorded %d times %v", o.cmd, o.wallet, o.amount, o.key, o.status, len(rec), outcomes(rec))
			}
		case opFailed:
			if len(rec) != 0 {
				t.Errorf("%s %s %d (key %s) answered %d (nothing applied) but is recorded %v", o.cmd, o.wallet, o.amount, o.key, o.status, outcomes(rec))
			}
		case opUnknown:
			if len(rec) > 1 {
				t.Errorf("%s %s %d (key %s) answered %d and is recorded %d times %v", o.cmd, o.wallet, o.amount, o.key, o.status, len(rec), outcomes(rec))
			}
			if rc := classify(o.retried); (rc == opOK || rc == opRejected) && (len(rec) != 1 || rec[0].Outcome != outcome[rc]) {
				t.Errorf("%s %s %d (key %s): retry answered %d but it is recorded %v", o.cmd, o.wallet, o.amount, o.key, o.retried, outcomes(rec))
			}
			if len(rec) > 0 {
				unknownRecorded++
			}
		}
	}

	// The read model converges to the store, through either server.
	readClient := &http.Client{Timeout: 5 * time.Second}
	for _, w := range wallets {
		balance, version := balances[w][0], balances[w][1]
		waitFor(t, func() string {
			for _, srv := range servers {
				res, err := readClient.Get(srv + "/wallet/" + w + "/balance")
				if err != nil {
					return err.Error()
				}
				body := readAll(res)
				var got struct {
					Balance json.Number `json:"balance"`
					Version int64       `json:"version"`
				}
				if json.Unmarshal([]byte(body), &got) != nil || got.Balance.String() != fmt.Sprint(balance) || got.Version != version {
					return fmt.Sprintf("%s reads %s, want balance %d at version %d", srv, body, balance, version)
				}
			}
			return ""
		})
	}
	converged := time.Now()

	// The history holds every event exactly once.
	hist, err := postgres.OpenHistory(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	waitFor(t, func() string {
		events, err := hist.History(ctx, 0, 1000000)
		if err != nil {
			return err.Error()
		}
		seen := map[string]int{}
		for _, e := range events {
			seen[e.EventID]++
			if seen[e.EventID] > 1 {
				t.Fatalf("history holds event %s twice", e.EventID)
			}
			if !eventIDs[e.EventID] {
				t.Fatalf("history holds event %s that the event log does not", e.EventID)
			}
		}
		if len(events) != len(eventIDs) {
			return fmt.Sprintf("history holds %d events, the event log %d", len(events), len(eventIDs))
		}
		return ""
	})
	historyDone := time.Now()

	// The roles kept serving: each is ready, and every role that lost its
	// connection reconnected.
	reconnected := 0
	for _, r := range roles {
		waitFor(t, func() string {
			res, err := readClient.Get(r.url + "/readyz")
			if err != nil {
				return fmt.Sprintf("%s: %v", r.name, err)
			}
			if body := readAll(res); res.StatusCode != 200 {
				return fmt.Sprintf("%s not ready after the failover: %d %s", r.name, res.StatusCode, body)
			}
			return ""
		})
		log := r.stderr.String()
		if strings.Contains(log, "nats disconnected") {
			if !strings.Contains(log, "nats reconnected") {
				t.Errorf("%s lost its NATS connection and did not log a reconnect", r.name)
			}
			reconnected++
		}
	}
	if reconnected < len(conns[victim.name]) {
		t.Errorf("%d roles were connected to %s, but only %d logged a reconnect", len(conns[victim.name]), victim.name, reconnected)
	}

	t.Logf("%d ops: %d unknown (%d of them recorded, all resolved by retry); %d events; %d roles reconnected",
		len(ops), len(unknown), unknownRecorded, len(eventIDs), reconnected)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("timings: cluster up %v, roles ready %v, leaders moved %v, load %v, retries+store+read model %v, history %v; total %v",
		ms(clusterUp.Sub(began)), ms(rolesUp.Sub(clusterUp)), ms(leadersMoved.Sub(rolesUp)), ms(loadEnd.Sub(loadStart)),
		ms(converged.Sub(loadEnd)), ms(historyDone.Sub(converged)), ms(time.Since(began)))
}

func outcomes(events []uneventful.Event) []string {
	var s []string
	for _, e := range events {
		s = append(s, string(e.Outcome))
	}
	return s
}
