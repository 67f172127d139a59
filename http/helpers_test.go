package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

// The test domain: an account whose balance can never go below zero.

type acctState struct {
	Balance int64 `json:"balance"`
}

type amountIn struct {
	Amount int64 `json:"amount"`
}

func parseAmount(body []byte) (amountIn, error) {
	var in amountIn
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, uneventful.Errorf(uneventful.ErrInvalid, "invalid_json", `the body is not a JSON object like {"amount": 5}`)
	}
	if in.Amount <= 0 {
		return in, uneventful.Errorf(uneventful.ErrInvalid, "invalid_amount", "amount must be positive, not %d", in.Amount)
	}
	return in, nil
}

func newAcct() *uneventful.Domain[acctState] {
	return &uneventful.Domain[acctState]{
		DomainName: "acct",
		Handlers: map[string]uneventful.Handler[acctState]{
			"add": uneventful.Handle(parseAmount,
				func(s acctState, in amountIn) (amountIn, error) { return in, nil },
				func(s acctState, c amountIn) acctState { s.Balance += c.Amount; return s }),
			"take": uneventful.Handle(parseAmount,
				func(s acctState, in amountIn) (amountIn, error) {
					if in.Amount > s.Balance {
						return in, uneventful.Reject("insufficient_funds", "the balance is %d, less than %d", s.Balance, in.Amount)
					}
					return in, nil
				},
				func(s acctState, c amountIn) acctState { s.Balance -= c.Amount; return s }),
		},
		ViewFunc: func(s acctState) any { return s },
		QueryFuncs: map[string]uneventful.Query{
			"balance": func(ctx context.Context, r uneventful.Reader, id string, _ url.Values) (any, error) {
				st, err := r.State(ctx, "acct", id)
				if errors.Is(err, uneventful.ErrNotFound) {
					return acctState{}, nil
				}
				if err != nil {
					return nil, err
				}
				return st.Data, nil
			},
		},
	}
}

// fakeReader is an in-memory read model.
type fakeReader struct {
	mu     sync.RWMutex
	states map[string]uneventful.State
	err    error // returned by every read when set
}

func newFakeReader() *fakeReader { return &fakeReader{states: map[string]uneventful.State{}} }

func (r *fakeReader) State(ctx context.Context, domain, id string) (uneventful.State, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.err != nil {
		return uneventful.State{}, r.err
	}
	st, ok := r.states[uneventful.StreamName(domain, id)]
	if !ok {
		return uneventful.State{}, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "no %s %s", domain, id)
	}
	return st, nil
}

func (r *fakeReader) Events(ctx context.Context, domain, id string, after int64, limit int) ([]uneventful.Event, error) {
	return nil, nil
}

func (r *fakeReader) project(st uneventful.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[st.Stream()] = st
}

// fakeBus decides commands with the model directly, keeps state in a map,
// answers retries by idempotency key, and projects into a fakeReader. Set
// send to replace it with any behaviour.
type fakeBus struct {
	model  uneventful.Model
	reader *fakeReader

	mu       sync.Mutex
	states   map[string]any
	versions map[string]int64
	keys     map[string]keyed
	events   []uneventful.Event
	send     func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error)
}

type keyed struct {
	hash  string
	reply *uneventful.Reply
}

func newFakeBus(m uneventful.Model, r *fakeReader) *fakeBus {
	return &fakeBus{model: m, reader: r, states: map[string]any{}, versions: map[string]int64{}, keys: map[string]keyed{}}
}

func (b *fakeBus) Send(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
	b.mu.Lock()
	b.events = append(b.events, *e)
	send := b.send
	b.mu.Unlock()
	if send != nil {
		return send(ctx, e)
	}
	return b.decide(e), nil
}

func (b *fakeBus) decide(e *uneventful.Event) *uneventful.Reply {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.keys[e.IdempotencyKey]; ok {
		if k.hash != e.RequestHash {
			return &uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(
				uneventful.Errorf(uneventful.ErrIdempotencyMismatch, "idempotency_key_reused", "the Idempotency-Key was used with a different request"))}
		}
		return k.reply
	}
	state, ok := b.states[e.EntityID]
	if !ok {
		state = b.model.Initial()
	}
	version := b.versions[e.EntityID]
	reply := &uneventful.Reply{EventID: e.EventID, Version: version, Timestamp: e.Timestamp}
	change, err := b.model.Decide(state, e.Command, e.Data)
	switch {
	case errors.Is(err, uneventful.ErrRejected):
		reply.Outcome = uneventful.Rejected
		reply.Code = uneventful.ErrorCode(err)
		reply.Message = uneventful.ErrorMessage(err)
	case err != nil:
		reply.Error = uneventful.NewReplyError(err)
		return reply
	default:
		state, err = b.model.Apply(state, e.Command, change)
		if err != nil {
			reply.Error = uneventful.NewReplyError(err)
			return reply
		}
		version++
		b.states[e.EntityID], b.versions[e.EntityID] = state, version
		reply.Outcome, reply.Version = uneventful.Accepted, version
		data, _ := b.model.EncodeState(state)
		b.reader.project(uneventful.State{Domain: e.Domain, EntityID: e.EntityID, Version: version, Timestamp: e.Timestamp, EventID: e.EventID, Data: data})
	}
	reply.View, _ = b.model.View(state)
	b.keys[e.IdempotencyKey] = keyed{e.RequestHash, reply}
	return reply
}

func (b *fakeBus) lastEvent(t *testing.T) uneventful.Event {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.events) == 0 {
		t.Fatal("the bus got no command")
	}
	return b.events[len(b.events)-1]
}

func (b *fakeBus) sent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a Server on a real listener with a fake bus and reader.
type fixture struct {
	srv    *uhttp.Server
	bus    *fakeBus
	reader *fakeReader
	url    string
	log    *syncBuffer
}

func newFixture(t *testing.T, configure ...func(*uhttp.Server)) *fixture {
	t.Helper()
	m := newAcct()
	reader := newFakeReader()
	f := &fixture{bus: newFakeBus(m, reader), reader: reader, log: &syncBuffer{}}
	f.srv = &uhttp.Server{
		Domains: []uneventful.Model{m},
		Bus:     f.bus,
		Reader:  reader,
		Logger:  slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, c := range configure {
		c(f.srv)
	}
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

// response is an answer as a test sees it.
type response struct {
	status int
	header nethttp.Header
	raw    string
	body   map[string]any // numbers as json.Number
}

func (f *fixture) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return f.doReader(t, method, path, rd, header...)
}

func (f *fixture) doReader(t *testing.T, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := nethttp.NewRequest(method, f.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if method != nethttp.MethodHead {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&r.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, raw)
		}
		if !strings.HasSuffix(r.raw, "}\n") {
			t.Errorf("%s %s: answer does not end in a newline: %q", method, path, raw)
		}
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	return r
}

// field returns a top-level field of the answer as a string.
func (r response) field(name string) string {
	v, ok := r.body[name]
	if !ok {
		return "<missing>"
	}
	return fmt.Sprint(v)
}

// checkError checks the error shape of an answer.
func checkError(t *testing.T, r response, method, url string, status int, kind, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d\n%s", r.status, status, r.raw)
	}
	want := map[string]string{"success": "false", "method": method, "url": url, "error": kind, "code": code}
	for k, v := range want {
		if got := r.field(k); got != v {
			t.Errorf("%s = %q, want %q\n%s", k, got, v, r.raw)
		}
	}
	if d := r.field("detail"); len(d) < 10 || d == "<missing>" {
		t.Errorf("detail %q is not a sentence", d)
	}
}
