package http_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

func TestCommandAccepted(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	r := f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 5}`, "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("status = %d, want 200\n%s", r.status, r.raw)
	}
	ev := f.bus.lastEvent(t)
	want := fmt.Sprintf(`{"success":true,"detail":"add accepted","event_id":%q,"version":1,"balance":5}`+"\n", ev.EventID)
	if r.raw != want {
		t.Errorf("answer:\n got %s\nwant %s", r.raw, want)
	}
	if got := r.header.Get("Idempotency-Key"); got != ev.EventID {
		t.Errorf("Idempotency-Key = %q, want the generated event id %q", got, ev.EventID)
	}

	r = f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 2}`)
	if r.status != 200 || r.field("version") != "2" || r.field("balance") != "7" {
		t.Errorf("second add: %d %s", r.status, r.raw)
	}

	r = f.do(t, "GET", "/acct/"+id+"/balance", "")
	if r.status != 200 || r.raw != `{"balance":7}`+"\n" {
		t.Errorf("balance: %d %q", r.status, r.raw)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestCommandRejected(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 3}`)
	path := "/acct/" + id + "/take"
	r := f.do(t, "POST", path, `{"amount": 10}`)
	checkError(t, r, "POST", path, 409, "rejected", "insufficient_funds")
	if got, want := r.field("detail"), "the balance is 3, less than 10"; got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
	ev := f.bus.lastEvent(t)
	if r.field("event_id") != ev.EventID || r.field("version") != "1" || r.field("balance") != "3" {
		t.Errorf("event_id, version, balance: %s", r.raw)
	}
	want := fmt.Sprintf(`{"success":false,"detail":"the balance is 3, less than 10","method":"POST","url":%q,"error":"rejected","code":"insufficient_funds","event_id":%q,"version":1,"balance":3}`+"\n", path, ev.EventID)
	if r.raw != want {
		t.Errorf("answer:\n got %s\nwant %s", r.raw, want)
	}
}

func TestCommandEnvelope(t *testing.T) {
	f := newFixture(t, func(s *uhttp.Server) { s.SourceName, s.SourceID = "api", "host-1" })
	id := uneventful.NewID()
	before := time.Now().UTC()
	r := f.do(t, "POST", "/acct/"+id+"/add", `{ "amount" : 5 }`,
		"Idempotency-Key", "order 42/retry-safe",
		"X-Correlation-ID", "trace-7:abc")
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.raw)
	}
	ev := f.bus.lastEvent(t)
	if err := uneventful.ValidID(ev.EventID); err != nil {
		t.Errorf("EventID: %v", err)
	}
	sum := sha256.Sum256([]byte("acct." + id + ".add\n" + `{"amount":5}`))
	want := uneventful.Event{
		EventID:        ev.EventID,
		CorrelationID:  "trace-7:abc",
		CausationID:    ev.EventID,
		Timestamp:      ev.Timestamp,
		SourceName:     "api",
		SourceID:       "host-1",
		TypeName:       "acct." + id + ".add",
		Domain:         "acct",
		EntityID:       id,
		Command:        "add",
		Data:           json.RawMessage(`{"amount":5}`),
		IdempotencyKey: "order 42/retry-safe",
		RequestHash:    hex.EncodeToString(sum[:]),
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if ev.Timestamp.Location() != time.UTC || ev.Timestamp.Before(before) || ev.Timestamp.After(time.Now()) {
		t.Errorf("Timestamp = %v, want now in UTC", ev.Timestamp)
	}
	if got := r.header.Get("Idempotency-Key"); got != "order 42/retry-safe" {
		t.Errorf("Idempotency-Key echoed = %q", got)
	}

	// No usable correlation id: the event's own id.
	for _, c := range []string{"", "has space", strings.Repeat("x", 129), "a\"b"} {
		f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 1}`, "X-Correlation-ID", c)
		ev := f.bus.lastEvent(t)
		if ev.CorrelationID != ev.EventID || ev.IdempotencyKey != ev.EventID {
			t.Errorf("correlation %q: CorrelationID %q, IdempotencyKey %q, want event id %q", c, ev.CorrelationID, ev.IdempotencyKey, ev.EventID)
		}
	}
}

func TestIdempotentRetry(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	path := "/acct/" + id + "/add"
	first := f.do(t, "POST", path, `{"amount": 5}`, "Idempotency-Key", "k1")
	again := f.do(t, "POST", path, `{"amount":5}`, "Idempotency-Key", "k1")
	if first.status != 200 || again.status != first.status || again.raw != first.raw {
		t.Errorf("retry answered %d %s, first %d %s", again.status, again.raw, first.status, first.raw)
	}
	if r := f.do(t, "GET", "/acct/"+id+"/balance", ""); r.field("balance") != "5" {
		t.Errorf("applied twice: %s", r.raw)
	}

	r := f.do(t, "POST", path, `{"amount": 6}`, "Idempotency-Key", "k1")
	checkError(t, r, "POST", path, 422, "idempotency_mismatch", "idempotency_key_reused")
	if r.header.Get("Idempotency-Key") != "k1" {
		t.Errorf("Idempotency-Key not echoed on 422")
	}

	// A rejection is replayed as the same rejection.
	take := "/acct/" + id + "/take"
	first = f.do(t, "POST", take, `{"amount": 50}`, "Idempotency-Key", "k2")
	f.do(t, "POST", path, `{"amount": 100}`)
	again = f.do(t, "POST", take, `{"amount": 50}`, "Idempotency-Key", "k2")
	if first.status != 409 || again.status != 409 || again.raw != first.raw {
		t.Errorf("retried rejection answered %d %s, first %d %s", again.status, again.raw, first.status, first.raw)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	add := "/acct/" + id + "/add"
	bal := "/acct/" + id + "/balance"
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		header       []string
		status       int
		kind, code   string
		allow        string
	}{
		{"malformed JSON", "POST", add, `{"amount": 5`, nil, 400, "invalid", "invalid_json", ""},
		{"empty body", "POST", add, ``, nil, 400, "invalid", "invalid_json", ""},
		{"invalid amount", "POST", add, `{"amount": -5}`, nil, 400, "invalid", "invalid_amount", ""},
		{"invalid id command", "POST", "/acct/not-a-ksuid/add", `{"amount": 5}`, nil, 400, "invalid", "invalid_id", ""},
		{"invalid id query", "GET", "/acct/not-a-ksuid/balance", ``, nil, 400, "invalid", "invalid_id", ""},
		{"invalid id unknown command", "POST", "/acct/nope/fly", `{}`, nil, 400, "invalid", "invalid_id", ""},
		{"unknown domain command", "POST", "/bank/" + id + "/add", `{"amount": 5}`, nil, 404, "not_found", "unknown_domain", ""},
		{"unknown domain query", "GET", "/bank/" + id + "/balance", ``, nil, 404, "not_found", "unknown_domain", ""},
		{"unknown command", "POST", "/acct/" + id + "/fly", `{}`, nil, 404, "not_found", "unknown_command", ""},
		{"unknown query", "GET", "/acct/" + id + "/history", ``, nil, 404, "not_found", "unknown_query", ""},
		{"unknown route", "GET", "/nope", ``, nil, 404, "not_found", "not_found", ""},
		{"root", "GET", "/", ``, nil, 404, "not_found", "not_found", ""},
		{"too few segments", "POST", "/acct/" + id, `{}`, nil, 404, "not_found", "not_found", ""},
		{"too many segments", "POST", add + "/x", `{}`, nil, 404, "not_found", "not_found", ""},
		{"unknown method", "DELETE", "/acct/" + id + "/fly", ``, nil, 404, "not_found", "not_found", ""},
		{"GET on a command", "GET", add, ``, nil, 405, "method_not_allowed", "method_not_allowed", "POST"},
		{"PUT on a command", "PUT", add, `{}`, nil, 405, "method_not_allowed", "method_not_allowed", "POST"},
		{"POST on a query", "POST", bal, `{}`, nil, 405, "method_not_allowed", "method_not_allowed", "GET, HEAD"},
		{"POST on healthz", "POST", "/healthz", ``, nil, 405, "method_not_allowed", "method_not_allowed", "GET, HEAD"},
		{"text content type", "POST", add, `{"amount": 5}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", "unsupported_media_type", ""},
		{"multipart", "POST", add, `{"amount": 5}`, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415, "unsupported_media_type", "unsupported_media_type", ""},
		{"bad content type", "POST", add, `{"amount": 5}`, []string{"Content-Type", ";;;"}, 415, "unsupported_media_type", "unsupported_media_type", ""},
		{"long idempotency key", "POST", add, `{"amount": 5}`, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "invalid", "invalid_idempotency_key", ""},
		{"non-ASCII idempotency key", "POST", add, `{"amount": 5}`, []string{"Idempotency-Key", "clé"}, 400, "invalid", "invalid_idempotency_key", ""},
		{"two idempotency keys", "POST", add, `{"amount": 5}`, []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, 400, "invalid", "invalid_idempotency_key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := f.bus.sent()
			r := f.do(t, tc.method, tc.path, tc.body, tc.header...)
			checkError(t, r, tc.method, tc.path, tc.status, tc.kind, tc.code)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if f.bus.sent() != sent {
				t.Errorf("a bad request reached the bus")
			}
		})
	}
}

func TestContentTypesAccepted(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON", "application/x-www-form-urlencoded"} {
		var hdr []string
		if ct != "" {
			hdr = []string{"Content-Type", ct}
		}
		r := f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 1}`, hdr...)
		if r.status != 200 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.raw)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	f := newFixture(t)
	path := "/acct/" + uneventful.NewID() + "/add"
	big := `{"amount": 5, "pad": "` + strings.Repeat("x", 70<<10) + `"}`
	r := f.do(t, "POST", path, big)
	checkError(t, r, "POST", path, 413, "too_large", "body_too_large")
	if d := r.field("detail"); !strings.Contains(d, "65536 bytes (64 KiB)") {
		t.Errorf("detail %q does not give the limit", d)
	}
	// Without a Content-Length (chunked), the limit holds while reading.
	r = f.doReader(t, "POST", path, io.MultiReader(strings.NewReader(big)))
	checkError(t, r, "POST", path, 413, "too_large", "body_too_large")

	small := newFixture(t, func(s *uhttp.Server) { s.MaxBodyBytes = 10 })
	r = small.do(t, "POST", path, `{"amount": 5}`)
	checkError(t, r, "POST", path, 413, "too_large", "body_too_large")
	if d := r.field("detail"); !strings.Contains(d, "10 bytes") {
		t.Errorf("detail %q does not give the limit", d)
	}
	if f.bus.sent()+small.bus.sent() != 0 {
		t.Errorf("a body over the limit reached the bus")
	}
}

func TestBusErrors(t *testing.T) {
	const secret = "dial tcp 10.1.2.3:4222: password=hunter2"
	for _, tc := range []struct {
		name       string
		reply      *uneventful.Reply
		err        error
		status     int
		kind, code string
		detail     string // a part of it
	}{
		{"no writer", nil, fmt.Errorf("nats: no responders (%s): %w", secret, uneventful.ErrUnavailable), 503, "unavailable", "unavailable", "nothing was applied"},
		{"no writer with code", nil, uneventful.Errorf(uneventful.ErrUnavailable, "no_writer", "no writer"), 503, "unavailable", "no_writer", "no acct writer is available"},
		{"timeout", nil, fmt.Errorf("nats: %w", uneventful.ErrTimeout), 504, "timeout", "timeout", "may or may not have been applied"},
		{"deadline", nil, context.DeadlineExceeded, 504, "timeout", "timeout", "same Idempotency-Key"},
		{"mismatch", nil, uneventful.Errorf(uneventful.ErrIdempotencyMismatch, "idempotency_key_reused", "the key was used with a different request"), 422, "idempotency_mismatch", "idempotency_key_reused", "different request"},
		{"conflict", nil, fmt.Errorf("append: %w", uneventful.ErrConflict), 409, "conflict", "conflict", "another request"},
		{"unexpected", nil, errors.New(secret), 500, "internal", "internal", "was logged"},
		{"nil reply", nil, nil, 500, "internal", "internal", "was logged"},
		{"reply unavailable", &uneventful.Reply{Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrUnavailable, "store_unavailable", "the event store is unavailable; nothing was applied"))}, nil, 503, "unavailable", "store_unavailable", "event store is unavailable"},
		{"reply conflict", &uneventful.Reply{Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrConflict, "version_conflict", "another writer changed it"))}, nil, 409, "conflict", "version_conflict", "another writer"},
		{"reply invalid", &uneventful.Reply{Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrInvalid, "invalid_command", "the command data cannot be read"))}, nil, 400, "invalid", "invalid_command", "cannot be read"},
		{"reply timeout", &uneventful.Reply{Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrTimeout, "store_timeout", "the store did not answer in time"))}, nil, 504, "timeout", "store_timeout", "did not answer"},
		{"reply internal", &uneventful.Reply{Error: uneventful.NewReplyError(errors.New(secret))}, nil, 500, "internal", "internal", "was logged"},
		{"reply no outcome", &uneventful.Reply{EventID: "x"}, nil, 500, "internal", "internal", "was logged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.bus.send = func(context.Context, *uneventful.Event) (*uneventful.Reply, error) { return tc.reply, tc.err }
			path := "/acct/" + uneventful.NewID() + "/add"
			r := f.do(t, "POST", path, `{"amount": 5}`, "Idempotency-Key", "key-1")
			checkError(t, r, "POST", path, tc.status, tc.kind, tc.code)
			if d := r.field("detail"); !strings.Contains(d, tc.detail) {
				t.Errorf("detail %q does not say %q", d, tc.detail)
			}
			if strings.Contains(r.raw, "hunter2") || strings.Contains(r.raw, "10.1.2.3") {
				t.Errorf("answer leaks internals: %s", r.raw)
			}
			if want := ""; tc.status == 503 {
				if got := r.header.Get("Retry-After"); got != "1" {
					t.Errorf("Retry-After = %q, want 1", got)
				}
			} else if got := r.header.Get("Retry-After"); got != want {
				t.Errorf("Retry-After = %q on %d", got, tc.status)
			}
			if r.header.Get("Idempotency-Key") != "key-1" {
				t.Errorf("Idempotency-Key not echoed")
			}
			if r.field("event_id") == "<missing>" {
				t.Errorf("no event_id to find the attempt by")
			}
			if tc.status == 500 && !strings.Contains(f.log.String(), "level=ERROR") {
				t.Errorf("500 not logged at error level:\n%s", f.log.String())
			}
		})
	}
}

func TestCommandTimeout(t *testing.T) {
	f := newFixture(t, func(s *uhttp.Server) { s.CommandTimeout = 50 * time.Millisecond })
	var deadline time.Time
	f.bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return nil, fmt.Errorf("wait for reply: %w", uneventful.ErrTimeout)
	}
	start := time.Now()
	path := "/acct/" + uneventful.NewID() + "/add"
	r := f.do(t, "POST", path, `{"amount": 5}`)
	checkError(t, r, "POST", path, 504, "timeout", "timeout")
	if !strings.Contains(r.field("detail"), "may or may not have been applied") {
		t.Errorf("detail %q", r.field("detail"))
	}
	if d := deadline.Sub(start); d <= 0 || d > 3*time.Second {
		t.Errorf("bus context deadline %v after the request, want about 50ms", d)
	}
}

func TestViewNumbersExact(t *testing.T) {
	// float64 would turn 0.3 into 0.30000000000000004 on some paths, and
	// 9007199254740993 into 9007199254740992.
	const view = `{"balance": 0.3, "big": 1234567890123456789, "odd": 9007199254740993, "scaled": 10.50, "success": "spoof", "nested": {"a": 1.10}, "note": "a<b&c"}`
	for _, outcome := range []uneventful.Outcome{uneventful.Accepted, uneventful.Rejected} {
		t.Run(string(outcome), func(t *testing.T) {
			f := newFixture(t)
			f.bus.send = func(_ context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
				return &uneventful.Reply{EventID: e.EventID, Outcome: outcome, Version: 3, Code: "nope", Message: "no", View: json.RawMessage(view)}, nil
			}
			r := f.do(t, "POST", "/acct/"+uneventful.NewID()+"/add", `{"amount": 5}`)
			for _, part := range []string{`"balance":0.3`, `"big":1234567890123456789`, `"odd":9007199254740993`, `"scaled":10.50`, `"nested":{"a":1.10}`, `"note":"a<b&c"`} {
				if !strings.Contains(r.raw, part) {
					t.Errorf("answer lacks %s:\n%s", part, r.raw)
				}
			}
			if r.field("balance") != "0.3" || r.field("big") != "1234567890123456789" {
				t.Errorf("fields do not decode exactly: %s", r.raw)
			}
			if want := outcome == uneventful.Accepted; r.field("success") != fmt.Sprint(want) || strings.Contains(r.raw, "spoof") {
				t.Errorf("a view field overrode the envelope: %s", r.raw)
			}
			if n := strings.Count(r.raw, `"success"`); n != 1 {
				t.Errorf("success appears %d times: %s", n, r.raw)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	const secret = "dial tcp 10.9.9.9:6379"
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		kind, code string
		detail     string
	}{
		{"unavailable", fmt.Errorf("redis get: %s: %w", secret, uneventful.ErrUnavailable), 503, "unavailable", "unavailable", "unavailable right now"},
		{"unavailable with message", uneventful.Errorf(uneventful.ErrUnavailable, "read_model_unavailable", "the read model is catching up"), 503, "unavailable", "read_model_unavailable", "catching up"},
		{"timeout", fmt.Errorf("redis: %w", context.DeadlineExceeded), 504, "timeout", "timeout", "did not answer"},
		{"internal", errors.New(secret), 500, "internal", "internal", "was logged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.reader.err = tc.err
			path := "/acct/" + uneventful.NewID() + "/balance?x=1"
			r := f.do(t, "GET", path, "")
			checkError(t, r, "GET", path, tc.status, tc.kind, tc.code)
			if d := r.field("detail"); !strings.Contains(d, tc.detail) {
				t.Errorf("detail %q does not say %q", d, tc.detail)
			}
			if strings.Contains(r.raw, "10.9.9.9") || r.field("balance") != "<missing>" {
				t.Errorf("answer leaks internals or data: %s", r.raw)
			}
			if tc.status == 503 && r.header.Get("Retry-After") != "1" {
				t.Errorf("no Retry-After")
			}
		})
	}
}

func TestQueryParams(t *testing.T) {
	var got url.Values
	m := newAcct()
	m.QueryFuncs["echo"] = func(ctx context.Context, _ uneventful.Reader, id string, p url.Values) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		got = p
		return map[string]string{"id": id}, nil
	}
	f := newFixture(t, func(s *uhttp.Server) { s.Domains = []uneventful.Model{m} })
	id := uneventful.NewID()
	r := f.do(t, "GET", "/acct/"+id+"/echo?limit=5&after=2", "")
	if r.status != 200 || r.field("id") != id || got.Get("limit") != "5" || got.Get("after") != "2" {
		t.Errorf("%d %s, params %v", r.status, r.raw, got)
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, func(s *uhttp.Server) {
		s.Ready = map[string]func(context.Context) error{"x": func(context.Context) error { return errors.New("down") }}
	})
	r := f.do(t, "GET", "/healthz", "")
	if r.status != 200 || r.raw != `{"status":"ok"}`+"\n" {
		t.Errorf("healthz: %d %q", r.status, r.raw)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	t.Run("ready", func(t *testing.T) {
		f := newFixture(t, func(s *uhttp.Server) {
			s.Ready = map[string]func(context.Context) error{"nats": ok, "store": ok}
		})
		r := f.do(t, "GET", "/readyz", "")
		if want := `{"status":"ready","checks":{"nats":"ok","store":"ok"}}` + "\n"; r.status != 200 || r.raw != want {
			t.Errorf("readyz: %d %s, want 200 %s", r.status, r.raw, want)
		}
	})
	t.Run("no checks", func(t *testing.T) {
		f := newFixture(t)
		r := f.do(t, "GET", "/readyz", "")
		if r.status != 200 || r.field("status") != "ready" {
			t.Errorf("readyz: %d %s", r.status, r.raw)
		}
	})
	t.Run("failing", func(t *testing.T) {
		unstick := make(chan struct{})
		defer close(unstick)
		f := newFixture(t, func(s *uhttp.Server) {
			s.ReadyTimeout = 50 * time.Millisecond
			s.Ready = map[string]func(context.Context) error{
				"nats":  ok,
				"redis": func(context.Context) error { return errors.New("connection refused") },
				"store": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
				"stuck": func(context.Context) error { <-unstick; return nil }, // ignores its context
				"bug":   func(context.Context) error { panic("oops") },
			}
		})
		start := time.Now()
		r := f.do(t, "GET", "/readyz", "")
		if time.Since(start) > 5*time.Second {
			t.Errorf("readyz took %v: a stuck check held it up", time.Since(start))
		}
		checkError(t, r, "GET", "/readyz", 503, "unavailable", "not_ready")
		checks, _ := r.body["checks"].(map[string]any)
		if checks["nats"] != "ok" || checks["redis"] != "connection refused" ||
			!strings.Contains(fmt.Sprint(checks["store"]), "no answer within 50ms") ||
			!strings.Contains(fmt.Sprint(checks["stuck"]), "no answer within 50ms") ||
			!strings.Contains(fmt.Sprint(checks["bug"]), "panicked") {
			t.Errorf("checks: %s", r.raw)
		}
		if d := r.field("detail"); !strings.Contains(d, "redis: connection refused") {
			t.Errorf("detail %q does not name the failing check", d)
		}
		if r.field("status") != "not_ready" {
			t.Errorf("status field: %s", r.raw)
		}
	})
}

func TestHead(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "HEAD", "/acct/"+uneventful.NewID()+"/balance", "")
	if r.status != 200 || r.raw != "" {
		t.Errorf("HEAD: %d %q", r.status, r.raw)
	}
}

func TestRequestLogging(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/acct/"+uneventful.NewID()+"/balance", "")
	log := f.log.String()
	for _, part := range []string{"level=DEBUG", "method=GET", "path=/acct/", "status=200", "duration="} {
		if !strings.Contains(log, part) {
			t.Errorf("request log lacks %s:\n%s", part, log)
		}
	}
}

func TestOpen(t *testing.T) {
	m := newAcct()
	bus, reader := newFakeBus(m, newFakeReader()), newFakeReader()
	valid := func() *uhttp.Server { return &uhttp.Server{Domains: []uneventful.Model{m}, Bus: bus, Reader: reader} }

	s := valid()
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil || s.SourceName != "server" || !strings.Contains(s.SourceID, ":") ||
		s.CommandTimeout != 10*time.Second || s.MaxBodyBytes != 64<<10 || s.ShutdownTimeout <= 0 || s.QueryTimeout <= 0 || s.ReadyTimeout <= 0 {
		t.Errorf("defaults not filled: %+v", s)
	}

	bad := newAcct()
	bad.DomainName = "Bad.Name"
	badCmd := newAcct()
	badCmd.Handlers["{x}"] = badCmd.Handlers["add"]
	nilQuery := newAcct()
	nilQuery.QueryFuncs["nil"] = nil
	for name, change := range map[string]func(*uhttp.Server){
		"nil domain":      func(s *uhttp.Server) { s.Domains = []uneventful.Model{nil} },
		"no bus":          func(s *uhttp.Server) { s.Bus = nil },
		"no reader":       func(s *uhttp.Server) { s.Reader = nil },
		"duplicate":       func(s *uhttp.Server) { s.Domains = []uneventful.Model{m, newAcct()} },
		"bad name":        func(s *uhttp.Server) { s.Domains = []uneventful.Model{bad} },
		"bad command":     func(s *uhttp.Server) { s.Domains = []uneventful.Model{badCmd} },
		"nil query":       func(s *uhttp.Server) { s.Domains = []uneventful.Model{nilQuery} },
		"negative":        func(s *uhttp.Server) { s.CommandTimeout = -1 },
		"negative body":   func(s *uhttp.Server) { s.MaxBodyBytes = -1 },
		"nil ready check": func(s *uhttp.Server) { s.Ready = map[string]func(context.Context) error{"x": nil} },
	} {
		s := valid()
		change(s)
		if err := s.Open(); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handler did not panic", name)
				}
			}()
			s.Handler()
		}()
	}
}

func TestListenAndServeGracefulShutdown(t *testing.T) {
	m := newAcct()
	reader := newFakeReader()
	bus := newFakeBus(m, reader)
	arrived, release := make(chan struct{}), make(chan struct{})
	bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
		close(arrived)
		<-release
		return &uneventful.Reply{EventID: e.EventID, Outcome: uneventful.Accepted, Version: 1, View: json.RawMessage(`{"balance":5}`)}, nil
	}
	s := &uhttp.Server{Domains: []uneventful.Model{m}, Bus: bus, Reader: reader, Logger: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	if r, err := nethttp.Get(base + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	if got := s.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Errorf("Addr() = %v, want %v", got, ln.Addr())
	}

	var wg sync.WaitGroup
	var status int
	var body []byte
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, err := nethttp.Post(base+"/acct/"+uneventful.NewID()+"/add", "application/json", strings.NewReader(`{"amount":5}`))
		if err != nil {
			t.Errorf("in-flight request failed: %v", err)
			return
		}
		defer res.Body.Close()
		status = res.StatusCode
		body, _ = io.ReadAll(res.Body)
	}()
	<-arrived
	cancel() // shut down while the command is in flight
	for stop := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break // the listener is closed
		}
		c.Close()
		if time.Now().After(stop) {
			t.Fatal("still accepting connections 5s after shutdown began")
		}
	}
	select {
	case err := <-served:
		t.Fatalf("ListenAndServe returned %v before the in-flight request finished", err)
	default:
	}
	close(release)
	wg.Wait()
	if status != 200 || !strings.Contains(string(body), `"balance":5`) {
		t.Errorf("in-flight request: %d %s", status, body)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListenAndServe did not return after shutdown")
	}
}

func TestViewNotAnObject(t *testing.T) {
	for _, tc := range []struct{ view, want string }{
		{`[1, 2.50]`, `,"view":[1,2.50]}`},
		{`{}`, `"version":1}`},
		{`null`, `"version":1}`},
		{`{"balance": `, `"version":1}`}, // broken: left out, and logged
	} {
		f := newFixture(t)
		f.bus.send = func(_ context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
			return &uneventful.Reply{EventID: e.EventID, Outcome: uneventful.Accepted, Version: 1, View: json.RawMessage(tc.view)}, nil
		}
		r := f.do(t, "POST", "/acct/"+uneventful.NewID()+"/add", `{"amount": 5}`)
		if r.status != 200 || !strings.HasSuffix(r.raw, tc.want+"\n") {
			t.Errorf("view %s: %d %s, want it to end in %s", tc.view, r.status, r.raw, tc.want)
		}
	}
}

// A role without domains (a writer, the history writer) serves only the
// health endpoints.
func TestHealthOnlyServer(t *testing.T) {
	s := &uhttp.Server{Ready: map[string]func(context.Context) error{"nats": func(context.Context) error { return nil }}}
	h := s.Handler()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/wallet/" + uneventful.NewID() + "/balance": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d: %s", path, rec.Code, want, rec.Body)
		}
	}
}
