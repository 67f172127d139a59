package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
)

// fakeLog is a Log holding fixed rows; it remembers the last query.
type fakeLog struct {
	mu     sync.Mutex
	events []uneventful.Event
	states []uneventful.State
	err    error
	q      uneventful.EventQuery
	after  int64
}

func (f *fakeLog) Events(ctx context.Context, q uneventful.EventQuery) ([]uneventful.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.q = q
	var out []uneventful.Event
	for _, e := range f.events {
		if e.Sequence > q.AfterSequence && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, f.err
}

func (f *fakeLog) States(ctx context.Context, domain, id string, after int64, limit int) ([]uneventful.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after = after
	var out []uneventful.State
	for _, s := range f.states {
		if s.Version > after && len(out) < limit {
			out = append(out, s)
		}
	}
	return out, f.err
}

// fakeFeed is a Feed the test publishes to.
type fakeFeed struct {
	mu          sync.Mutex
	deliver     func([]byte)
	subscribes  int
	stops       int
	failNext    error
	subscribedC chan struct{}
}

func newFakeFeed() *fakeFeed { return &fakeFeed{subscribedC: make(chan struct{}, 10)} }

func (f *fakeFeed) feed(deliver func([]byte)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return nil, err
	}
	f.subscribes++
	f.deliver = deliver
	f.subscribedC <- struct{}{}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stops++
		f.deliver = nil
	}, nil
}

func (f *fakeFeed) publish(t *testing.T, e uneventful.Event) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	d := f.deliver
	f.mu.Unlock()
	if d == nil {
		t.Fatal("publish: nobody subscribed")
	}
	d(b)
}

func (f *fakeFeed) counts() (subscribes, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subscribes, f.stops
}

func event(seq int64, id string, outcome uneventful.Outcome) uneventful.Event {
	return uneventful.Event{
		EventID: uneventful.NewID(), Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), TypeName: "wallet." + id + ".debit",
		Domain: "wallet", EntityID: id, Command: "debit", Data: json.RawMessage(`{"amount":12345678901234567.89,"scale":2}`),
		IdempotencyKey: "k", RequestHash: "secret-hash", Version: 1, Sequence: seq, Outcome: outcome,
		Reply: json.RawMessage(`{"reply":"stored"}`),
	}
}

// serve mounts the UI on an http.Server like cmd does and returns its URL.
func serve(t *testing.T, ui *UI, configure ...func(*uehttp.Server)) string {
	t.Helper()
	if ui.Logger == nil {
		ui.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &uehttp.Server{Routes: ui.Routes(), Logger: ui.Logger}
	for _, c := range configure {
		c(s)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(ui.Close) // first: streams end before ts.Close waits for them
	return ts.URL
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	return m
}

// TestPage: the page and its files are served with a policy that lets them
// load nothing from another host; unknown files get the JSON 404.
func TestPage(t *testing.T) {
	url := serve(t, &UI{})
	res, body := get(t, url+"/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script src="/ui/app.js"`) {
		t.Fatalf("GET /: %d %s\n%.200s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for file, ctype := range map[string]string{"app.js": "text/javascript", "style.css": "text/css"} {
		res, body := get(t, url+"/ui/"+file)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("GET /ui/%s: %d %s", file, res.StatusCode, res.Header.Get("Content-Type"))
		}
		// Revalidation answers 304.
		again, _ := get(t, url+"/ui/"+file, "If-None-Match", res.Header.Get("ETag"))
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET /ui/%s with its ETag: %d, want 304", file, again.StatusCode)
		}
	}
	for _, path := range []string{"/ui/nope.js", "/ui/index.html", "/nope"} {
		res, body := get(t, url+path)
		if m := decode(t, body); res.StatusCode != 404 || m["code"] != "not_found" || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", path, res.StatusCode, body)
		}
	}
	// Nothing from another host.
	for name, a := range assets {
		for _, s := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(a.body), s) {
				t.Errorf("%s contains %q", name, s)
			}
		}
	}
}

func TestKSUID(t *testing.T) {
	url := serve(t, &UI{})
	_, a := get(t, url+"/ksuid")
	_, b := get(t, url+"/ksuid")
	idA, idB := decode(t, a)["id"].(string), decode(t, b)["id"].(string)
	if err := uneventful.ValidID(idA); err != nil || idA == idB {
		t.Fatalf("GET /ksuid: %s then %s (%v)", a, b, err)
	}
}

// TestLogs: the event log shows every attempt, rejected ones with their
// reasons, paged by sequence; the state log pages by version.
func TestLogs(t *testing.T) {
	id := uneventful.NewID()
	log := &fakeLog{}
	for i := int64(1); i <= 5; i++ {
		outcome := uneventful.Accepted
		if i%2 == 0 {
			outcome = uneventful.Rejected
		}
		e := event(i, id, outcome)
		if outcome == uneventful.Rejected {
			e.Reason, e.Message = "insufficient_funds", "insufficient funds: the balance is 0 and the debit is 5"
		}
		log.events = append(log.events, e)
		log.states = append(log.states, uneventful.State{Domain: "wallet", EntityID: id, Version: i, Data: json.RawMessage(`{"balance":1.5,"scale":2}`)})
	}
	url := serve(t, &UI{Domains: []string{"wallet"}, Logs: map[string]Log{"wallet": log}})

	res, body := get(t, url+"/wallet/"+id+"/events?limit=2&after=1")
	m := decode(t, body)
	if res.StatusCode != 200 || m["next_after"] != json.Number("3") || len(m["events"].([]any)) != 2 {
		t.Fatalf("events page: %d %s", res.StatusCode, body)
	}
	if log.q.Domain != "wallet" || log.q.EntityID != id || log.q.AfterSequence != 1 || log.q.Limit != 2 || log.q.AcceptedOnly {
		t.Errorf("query: %+v", log.q)
	}
	rejected := m["events"].([]any)[0].(map[string]any)
	if rejected["outcome"] != "rejected" || rejected["reason"] != "insufficient_funds" || !strings.Contains(rejected["message"].(string), "insufficient funds") {
		t.Errorf("rejected attempt: %v", rejected)
	}
	// Money stays exact, and the stored request hash and reply stay home.
	if !strings.Contains(body, `"amount":12345678901234567.89`) || strings.Contains(body, "secret-hash") || strings.Contains(body, "stored") {
		t.Errorf("events page: %s", body)
	}
	_, body = get(t, url+"/wallet/"+id+"/events?after=3")
	if m := decode(t, body); m["next_after"] != nil || len(m["events"].([]any)) != 2 {
		t.Errorf("last events page: %s", body)
	}

	_, body = get(t, url+"/wallet/"+id+"/states?after=4")
	if m := decode(t, body); m["next_after"] != nil || len(m["states"].([]any)) != 1 || !strings.Contains(body, `"balance":1.5`) || log.after != 4 {
		t.Errorf("states page: %s", body)
	}

	for _, c := range []struct{ path, code string }{
		{"/wallet/nope/events", "invalid_id"},
		{"/wallet/" + id + "/events?limit=0", "invalid_limit"},
		{"/wallet/" + id + "/events?limit=1001", "invalid_limit"},
		{"/wallet/" + id + "/states?after=-1", "invalid_after"},
		{"/wallet/" + id + "/states?after=1&after=2", "invalid_after"},
	} {
		res, body := get(t, url+c.path)
		if m := decode(t, body); res.StatusCode != 400 || m["code"] != c.code || len(m["detail"].(string)) < 20 {
			t.Errorf("GET %s: %d %s, want 400 %s", c.path, res.StatusCode, body, c.code)
		}
	}

	log.err = errors.New("disk on fire")
	res, body = get(t, url+"/wallet/"+id+"/states")
	if res.StatusCode != 500 || strings.Contains(body, "fire") {
		t.Errorf("failed read: %d %s", res.StatusCode, body)
	}
}

// TestLogsUnavailable: a role without the store says where the logs are.
func TestLogsUnavailable(t *testing.T) {
	url := serve(t, &UI{Domains: []string{"wallet"}, Role: "the server role"})
	id := uneventful.NewID()
	for _, c := range []struct{ path, cli string }{{"/events", "uneventful events"}, {"/states", "uneventful states"}} {
		res, body := get(t, url+"/wallet/"+id+c.path)
		m := decode(t, body)
		detail, _ := m["detail"].(string)
		if res.StatusCode != 501 || m["code"] != "log_unavailable" || !strings.Contains(detail, "not available from the server role") || !strings.Contains(detail, c.cli+" --data DIR --entity wallet."+id) {
			t.Errorf("GET %s: %d %s", c.path, res.StatusCode, body)
		}
	}
	// No feed: the stream says so.
	res, body := get(t, url+"/events/stream")
	if res.StatusCode != 501 || decode(t, body)["code"] != "feed_unavailable" {
		t.Errorf("stream without a feed: %d %s", res.StatusCode, body)
	}
}

// TestDataNeedsReadKey: with API keys, the logs and the feed need the read
// scope; the page itself does not.
func TestDataNeedsReadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(path, []byte("viewer read viewer-key-0123456789abcdef\n"), 0o600)
	keys, err := uehttp.LoadAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	feed := newFakeFeed()
	url := serve(t, &UI{Domains: []string{"wallet"}, Logs: map[string]Log{"wallet": &fakeLog{}}, Feed: feed.feed}, func(s *uehttp.Server) { s.APIKeys = keys })
	id := uneventful.NewID()
	for _, p := range []string{"/", "/ui/app.js", "/ksuid"} {
		if res, _ := get(t, url+p); res.StatusCode != 200 {
			t.Errorf("GET %s without a key: %d, want 200", p, res.StatusCode)
		}
	}
	for _, p := range []string{"/wallet/" + id + "/events", "/wallet/" + id + "/states", "/events/stream"} {
		if res, _ := get(t, url+p); res.StatusCode != 401 {
			t.Errorf("GET %s without a key: %d, want 401", p, res.StatusCode)
		}
	}
	if res, _ := get(t, url+"/wallet/"+id+"/events", "Authorization", "Bearer viewer-key-0123456789abcdef"); res.StatusCode != 200 {
		t.Errorf("events with a read key: %d", res.StatusCode)
	}
	if s, _ := feed.counts(); s != 0 {
		t.Errorf("the feed was subscribed %d times for unauthorized clients", s)
	}
}

// sseClient reads a live stream message by message.
type sseClient struct {
	t    *testing.T
	res  *http.Response
	msgs chan string
}

func openStream(t *testing.T, url string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/events/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("stream: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	c := &sseClient{t: t, res: res, msgs: make(chan string, 100)}
	go func() {
		defer close(c.msgs)
		sc := bufio.NewScanner(res.Body)
		var msg []string
		for sc.Scan() {
			if sc.Text() != "" {
				msg = append(msg, sc.Text())
				continue
			}
			c.msgs <- strings.Join(msg, "\n")
			msg = nil
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close() })
	return c
}

// next returns the next message that contains want, failing after 5s.
func (c *sseClient) next(want string) string {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("stream ended before a message with %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
		case <-timeout:
			c.t.Fatalf("no message with %q within 5s", want)
		}
	}
}

// ended waits for the stream to end.
func (c *sseClient) ended() {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return
			}
		case <-timeout:
			c.t.Fatal("the stream did not end within 5s")
		}
	}
}

// TestStream: every recorded event reaches every live client as a Server-
// Sent Event; the feed is subscribed while someone watches, only.
func TestStream(t *testing.T) {
	feed := newFakeFeed()
	ui := &UI{Feed: feed.feed}
	url := serve(t, ui)
	a := openStream(t, url)
	hello := a.next("event: hello")
	if !strings.Contains(hello, `"heartbeat_ms":15000`) {
		t.Errorf("hello: %s", hello)
	}
	b := openStream(t, url)
	b.next("event: hello")
	id := uneventful.NewID()
	e := event(7, id, uneventful.Rejected)
	e.Reason = "insufficient_funds"
	feed.publish(t, e)
	for _, c := range []*sseClient{a, b} {
		m := c.next("event: recorded")
		if !strings.HasPrefix(m, "id: "+e.EventID+"\nevent: recorded\ndata: {") || !strings.Contains(m, `"reason":"insufficient_funds"`) ||
			!strings.Contains(m, `"amount":12345678901234567.89`) || strings.Contains(m, "secret-hash") {
			t.Errorf("message: %s", m)
		}
	}
	// A broken event is left out; the stream goes on.
	feed.mu.Lock()
	d := feed.deliver
	feed.mu.Unlock()
	d([]byte("not json"))
	feed.publish(t, event(8, id, uneventful.Accepted))
	a.next(`"sequence":8`)

	if s, _ := feed.counts(); s != 1 {
		t.Errorf("subscribed %d times for two clients, want once", s)
	}
	a.res.Body.Close()
	b.res.Body.Close()
	waitUntil(t, "the feed is unsubscribed when nobody watches", func() bool { _, stops := feed.counts(); return stops == 1 })
	c := openStream(t, url)
	c.next("event: hello")
	if s, _ := feed.counts(); s != 2 {
		t.Errorf("subscribes after a new client: %d, want 2", s)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	feed := newFakeFeed()
	c := openStream(t, serve(t, &UI{Feed: feed.feed, Heartbeat: 20 * time.Millisecond}))
	c.next(": heartbeat")
	c.next(": heartbeat")
}

// TestStreamDropsSlowClient: a client whose buffer is full is dropped with
// a last message saying so, and the others go on.
func TestStreamDropsSlowClient(t *testing.T) {
	feed := newFakeFeed()
	ui := &UI{Feed: feed.feed, ClientBuffer: 2}
	url := serve(t, ui)
	fast := openStream(t, url)
	fast.next("event: hello")

	// A client of the hub that never reads stands for one whose
	// connection is stuck.
	slow, err := ui.hub.join()
	if err != nil {
		t.Fatal(err)
	}
	id := uneventful.NewID()
	for i := int64(1); i <= 3; i++ {
		feed.publish(t, event(i, id, uneventful.Accepted))
		fast.next(`"sequence":` + string(rune('0'+i)))
	}
	select {
	case <-slow.gone:
		if slow.why != goneSlow {
			t.Errorf("why = %q", slow.why)
		}
	case <-time.After(time.Second):
		t.Fatal("the slow client was not dropped")
	}
	ui.hub.leave(slow)

	// A stream the hub drops says so and ends.
	ui.hub.mu.Lock()
	for c := range ui.hub.clients {
		ui.hub.letGo(c, goneSlow)
	}
	ui.hub.mu.Unlock()
	m := fast.next("event: dropped")
	if !strings.Contains(m, "fell more than 2 events behind") {
		t.Errorf("dropped: %s", m)
	}
	fast.ended()
}

// TestStreamClose: Close ends every stream with a last message and
// refuses new ones, so that a graceful shutdown is not held up.
func TestStreamClose(t *testing.T) {
	feed := newFakeFeed()
	ui := &UI{Feed: feed.feed}
	url := serve(t, ui)
	c := openStream(t, url)
	c.next("event: hello")
	ui.Close()
	c.next("event: closing")
	c.ended()
	if _, stops := feed.counts(); stops != 1 {
		t.Errorf("feed stopped %d times, want 1", stops)
	}
	res, body := get(t, url+"/events/stream")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(body, "shutting down") {
		t.Errorf("stream after Close: %d %s", res.StatusCode, body)
	}
}

// TestStreamLimits: past MaxClients, and when the feed cannot subscribe, a
// client gets 503 with the reason in words.
func TestStreamLimits(t *testing.T) {
	feed := newFakeFeed()
	feed.failNext = errors.New("nats: connection closed")
	url := serve(t, &UI{Feed: feed.feed, MaxClients: 1})
	res, body := get(t, url+"/events/stream")
	if res.StatusCode != 503 || !strings.Contains(body, "cannot subscribe") {
		t.Errorf("failed subscription: %d %s", res.StatusCode, body)
	}
	c := openStream(t, url)
	c.next("event: hello")
	res, body = get(t, url+"/events/stream")
	if res.StatusCode != 503 || !strings.Contains(body, "most clients already (1)") {
		t.Errorf("second client: %d %s", res.StatusCode, body)
	}
}

// TestStreamOutlivesServerTimeouts: a stream lives past the HTTP server's
// ReadTimeout and WriteTimeout, which would otherwise cut it.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	feed := newFakeFeed()
	ui := &UI{Feed: feed.feed, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	mux := http.NewServeMux()
	for _, r := range ui.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ReadTimeout = 100 * time.Millisecond
	ts.Config.WriteTimeout = 100 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(ui.Close)
	c := openStream(t, ts.URL)
	c.next("event: hello")
	time.Sleep(300 * time.Millisecond)
	feed.publish(t, event(1, uneventful.NewID(), uneventful.Accepted))
	c.next("event: recorded")
}
