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
	"sync/atomic"
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
		node.cmd = childCommand(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(clientPorts[i]), "-m", fmt.Sprint(monitorPorts[i]),
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
		r.cmd = childCommand(os.Args[0], append(args, "--http", addr)...)
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
	client           int
	wallet, cmd, key string
	amount           int
	status           int    // 0: transport error (the client's timeout)
	body             string // the answer, kept unless 200 or 409
	start, end       time.Time
	retried          int    // for an unknown op: the answer to its retry with the same key
	retriedBody      string // and that answer's body
}

func (o *clusterOp) String() string {
	return fmt.Sprintf("%s %d on %s (key %s)", o.cmd, o.amount, o.wallet, o.key)
}

// opClass is what an answer says about a command.
type opClass string

const (
	opOK       opClass = "ok"       // 200: applied, recorded as accepted
	opRejected opClass = "rejected" // 409: recorded as rejected
	opFailed   opClass = "failed"   // another 4xx or 5xx but 504: nothing applied
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

// answerField reads a string field of a JSON answer ("" if none).
func answerField(body, field string) string {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return ""
	}
	v, _ := m[field].(string)
	return v
}

// TestNATSCluster (issue "Scale-out", part 8) runs the split roles on a
// 3-node NATS cluster (nats-server processes n1..n3 on loopback; the
// roles get all three URLs and --replicas 3, so the event stream is R3),
// PostgreSQL and Redis: 2 writers, 2 servers and the history writer.
//
// 32 clients credit and debit 5 wallets through both servers for 8 s, each
// with its own Idempotency-Key, and log every answer as ok (200),
// rejected (409), failed (other 4xx/5xx but 504) or unknown (504 or no
// answer in 10 s). A third of the way in, one nats-server is killed with
// SIGKILL. The node killed is the one most role connections are on (ties:
// the lowest-numbered), after the event stream's and the history
// consumer's Raft leaders were moved there by leader step-down; so the
// kill costs roles their connections (in-flight requests are lost) and
// JetStream its stream and consumer leaders. Clients go on until 8 s have
// passed and each has sent a command after the kill (a request in flight
// at the kill may wait its full 10 s).
//
// Then: commands succeed after the kill, and none started 2 s after it
// goes unanswered; every unknown command is retried with its key until
// it gets a definite answer; in the event log every ok command is
// recorded exactly once as accepted, every 409 once as rejected, every
// failed one not at all and every unknown one at most once (once, with
// its retry's outcome); per wallet, accepted versions are 1..n without a
// gap, the state log matches, and balance = accepted credits - accepted
// debits >= 0 throughout; the read model, through both servers, converges
// to the store; the history log holds every event exactly once within
// 20 s of the load; every role is ready again, and every role that lost
// its connection logged that it reconnected.
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
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

	// The test's own connection, to wait for JetStream and move leaders.
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
			t.Fatalf("JetStream cluster has no meta leader after 30s: %v", err)
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

	stream, err := js.Stream(ctx, uenats.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("the roles left the event stream with %d replicas, want 3", info.Config.Replicas)
	}

	// The victim: the node with the most role connections.
	conns := roleConnections(t, nodes)
	victim := nodes[0]
	for _, n := range nodes[1:] {
		if len(conns[n.name]) > len(conns[victim.name]) {
			victim = n
		}
	}
	// Move the stream's and the history consumer's leaders there. A
	// step-down elects another peer at random: a few tries land it.
	streamLeader := func() string { s, _ := leaders(ctx, js); return s }
	consumerLeader := func() string { _, c := leaders(ctx, js); return c }
	for deadline := time.Now().Add(10 * time.Second); consumerLeader() == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the history writer's consumer has no leader after 10s; JetStream: %s", jetStreamState(ctx, js))
		}
	}
	moveDeadline := time.Now().Add(12 * time.Second)
	moveLeader := func(api string, leader func() string) {
		for prev := leader(); prev != victim.name && time.Now().Before(moveDeadline); prev = leader() {
			if _, err := nc.Request(api, nil, 2*time.Second); err != nil {
				t.Logf("%s: %v", api, err)
			}
			for now := leader(); (now == "" || now == prev) && time.Now().Before(moveDeadline); now = leader() {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	moveLeader("$JS.API.STREAM.LEADER.STEPDOWN."+uenats.StreamName, streamLeader)
	moveLeader("$JS.API.CONSUMER.LEADER.STEPDOWN."+uenats.StreamName+".history", consumerLeader)
	t.Logf("victim %s: role connections %v (all nodes: %v); stream leader %s, history consumer leader %s",
		victim.name, conns[victim.name], conns, streamLeader(), consumerLeader())
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
		return res.StatusCode, readAll(res)
	}
	var mu sync.Mutex
	var ops []*clusterOp
	loadStart := time.Now()
	stopAt, hardStop := loadStart.Add(loadTime), loadStart.Add(25*time.Second)
	var deadAt atomic.Int64 // when the victim was gone, in Unix ns
	go func() {
		time.Sleep(loadTime / 3)
		victim.kill()
		deadAt.Store(time.Now().UnixNano())
	}()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(loadStart.UnixNano())))
			sentAfterKill := false
			for i := 0; ; i++ {
				now := time.Now()
				if now.After(stopAt) && sentAfterKill || now.After(hardStop) {
					return
				}
				o := &clusterOp{client: c, wallet: wallets[rng.IntN(len(wallets))], cmd: "credit", amount: 1 + rng.IntN(5), key: fmt.Sprintf("c%d-%d", c, i)}
				if rng.IntN(2) == 0 {
					o.cmd, o.amount = "debit", 1+rng.IntN(9)
				}
				o.start = time.Now()
				if dead := deadAt.Load(); dead != 0 && o.start.UnixNano() >= dead {
					sentAfterKill = true
				}
				var body string
				o.status, body = send(o, servers[(c+i)%2])
				o.end = time.Now()
				if c := classify(o.status); c != opOK && c != opRejected {
					o.body = body
				}
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	loadEnd := time.Now()
	killedAt := time.Unix(0, deadAt.Load())

	// Tally by class, before and after the kill (by when the op started).
	before, after := map[opClass]int{}, map[opClass]int{}
	statuses := map[int]int{}
	clientsAfter := map[int]bool{}
	var slowest time.Duration
	for _, o := range ops {
		statuses[o.status]++
		slowest = max(slowest, o.end.Sub(o.start))
		if o.start.Before(killedAt) {
			before[classify(o.status)]++
			continue
		}
		after[classify(o.status)]++
		clientsAfter[o.client] = true
		if classify(o.status) == opUnknown && o.start.After(killedAt.Add(2*time.Second)) {
			t.Errorf("%v started %v after the kill and got no answer (%d %s): a role did not recover", o, ms(o.start.Sub(killedAt)), o.status, o.body)
		}
	}
	t.Logf("load %v, %s killed at +%v: %d commands, statuses %v, slowest %v; before the kill %v, after %v",
		ms(loadEnd.Sub(loadStart)), victim.name, ms(killedAt.Sub(loadStart)), len(ops), statuses, ms(slowest), before, after)
	if after[opOK] == 0 {
		t.Errorf("no command succeeded after %s was killed", victim.name)
	}
	if len(clientsAfter) != clients {
		t.Errorf("only %d of %d clients sent a command after the kill before the hard stop", len(clientsAfter), clients)
	}
	if before[opOK]+after[opOK] == 0 || before[opRejected]+after[opRejected] == 0 {
		t.Fatalf("the load did not exercise both acceptance and rejection")
	}
	// Failed commands, by status and code, with an example.
	failed := map[string]int{}
	example := map[string]string{}
	for _, o := range ops {
		if classify(o.status) != opFailed {
			continue
		}
		k := fmt.Sprintf("%d %s", o.status, answerField(o.body, "code"))
		failed[k]++
		example[k] = answerField(o.body, "detail")
		if o.status != 503 {
			t.Errorf("%v: unexpected status %d: %s", o, o.status, o.body)
		}
	}
	for k, n := range failed {
		t.Logf("%d commands failed with %s, e.g. %q", n, k, example[k])
	}

	// Learn the outcome of every unknown command by retrying it with its
	// Idempotency-Key: a recorded one answers its original outcome, an
	// unrecorded one is applied now, none is applied twice.
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
				o.retried, o.retriedBody = send(o, servers[(i+try)%2])
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
			t.Errorf("%v answered %d, and its retry still %d: %s", o, o.status, o.retried, o.retriedBody)
		}
	}

	// The event log: every command with a definite answer recorded
	// exactly once with that outcome, every failed one not at all, every
	// unknown one at most once (once, as its retry answered).
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
				t.Errorf("%v answered %d but is recorded %d times %v", o, o.status, len(rec), outcomes(rec))
			}
		case opFailed:
			if len(rec) != 0 {
				t.Errorf("%v answered %d (nothing applied) but is recorded %v", o, o.status, outcomes(rec))
			}
		case opUnknown:
			if len(rec) > 1 {
				t.Errorf("%v answered %d and is recorded %d times %v", o, o.status, len(rec), outcomes(rec))
			}
			if len(rec) > 0 {
				unknownRecorded++
			}
			if rc := classify(o.retried); rc == opOK || rc == opRejected {
				if len(rec) != 1 || rec[0].Outcome != outcome[rc] {
					t.Errorf("%v: its retry answered %d but it is recorded %v", o, o.retried, outcomes(rec))
				} else if id := answerField(o.retriedBody, "event_id"); id != "" && id != rec[0].EventID {
					t.Errorf("%v: its retry answered event %s but event %s is recorded", o, id, rec[0].EventID)
				}
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
	checked := time.Now()

	// The history log holds every event exactly once.
	hist, err := postgres.OpenHistory(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	for deadline := loadEnd.Add(20 * time.Second); ; {
		events, err := hist.History(ctx, 0, 1000000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range events {
			if seen[e.EventID] {
				t.Fatalf("history holds event %s twice", e.EventID)
			}
			seen[e.EventID] = true
			if !eventIDs[e.EventID] {
				t.Fatalf("history holds event %s that the event log does not", e.EventID)
			}
		}
		if len(events) == len(eventIDs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history holds %d events %v after the load (%v after the kill), the event log %d; JetStream: %s",
				len(events), ms(time.Since(loadEnd)), ms(time.Since(killedAt)), len(eventIDs), jetStreamState(ctx, js))
		}
		time.Sleep(100 * time.Millisecond)
	}
	historyDone := time.Now()

	// The roles kept serving: each is ready, and each that lost its
	// connection reconnected.
	var reconnects []string
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
		lost, back := strings.Count(log, "nats disconnected"), strings.Count(log, "nats reconnected")
		if lost > 0 {
			reconnects = append(reconnects, fmt.Sprintf("%s %d/%d", r.name, lost, back))
			if back == 0 {
				t.Errorf("%s lost its NATS connection and did not log a reconnect", r.name)
			}
		}
	}
	if len(reconnects) < len(conns[victim.name]) {
		t.Errorf("%d roles were connected to %s, but only %d logged losing the connection: %v", len(conns[victim.name]), victim.name, len(reconnects), reconnects)
	}

	t.Logf("%d unknown commands (%d of them had been applied), all answered on retry; %d events; roles disconnected/reconnected: %v",
		len(unknown), unknownRecorded, len(eventIDs), reconnects)
	t.Logf("timings: cluster up %v, roles ready %v, leaders moved %v, load %v, retries and checks %v, history complete %v later; total %v",
		ms(clusterUp.Sub(began)), ms(rolesUp.Sub(clusterUp)), ms(leadersMoved.Sub(rolesUp)), ms(loadEnd.Sub(loadStart)),
		ms(checked.Sub(loadEnd)), ms(historyDone.Sub(checked)), ms(time.Since(began)))
}

func outcomes(events []uneventful.Event) []string {
	var s []string
	for _, e := range events {
		s = append(s, string(e.Outcome))
	}
	return s
}

// jetStreamState describes the event stream and the history writer's
// consumer, for a failure message.
func jetStreamState(ctx context.Context, js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, uenats.StreamName)
	if err != nil {
		return "stream: " + err.Error()
	}
	si, err := s.Info(ctx)
	if err != nil {
		return "stream info: " + err.Error()
	}
	out := fmt.Sprintf("stream holds %d messages (last sequence %d)", si.State.Msgs, si.State.LastSeq)
	if si.Cluster != nil {
		out += fmt.Sprintf(", leader %q", si.Cluster.Leader)
	}
	c, err := s.Consumer(ctx, "history")
	if err != nil {
		return out + "; consumer: " + err.Error()
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return out + "; consumer info: " + err.Error()
	}
	out += fmt.Sprintf("; history consumer delivered %d, ack floor %d, %d pending, %d awaiting ack, %d redelivered, %d pull requests waiting",
		ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting)
	if ci.Cluster != nil {
		out += fmt.Sprintf(", leader %q", ci.Cluster.Leader)
	}
	return out
}
