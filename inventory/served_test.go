package inventory_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/inventory"
	"github.com/uneventful/uneventful/memory"
	uenats "github.com/uneventful/uneventful/nats"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/writer"
)

// serve runs the inventory domain the way `uneventful serve` runs every
// domain: HTTP server, NATS request/reply to a writer on an embedded
// server, SQLite event and state log, in-process read model. It returns
// the server's URL and the store.
func serve(t *testing.T) (string, uneventful.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	ns, err := uenats.StartEmbedded(uenats.EmbeddedConfig{Port: -1, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := ns.Connect("inventory test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := sqlite.Open(ctx, filepath.Join(dir, inventory.Name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	model := inventory.New()
	rm := memory.New(map[string]uneventful.Store{inventory.Name: store})
	w := &writer.Writer{Model: model, Store: store, ReadModel: rm, Logger: logger}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })
	sub, err := uenats.Serve(nc, inventory.Name, w, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	srv := &uehttp.Server{Domains: []uneventful.Model{model}, Bus: uenats.NewBus(nc), Reader: rm, Logger: logger}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL, store
}

// call sends a request and returns the status and the body as a map.
func call(t *testing.T, method, url, body, key string) (int, map[string]any) {
	t.Helper()
	req, err := nethttp.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s %s -> %d %s", method, strings.TrimPrefix(url, "http://"), body, resp.StatusCode, b)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s %s: the answer %q is not a JSON object: %v", method, url, b, err)
	}
	return resp.StatusCode, m
}

// TestServed runs the inventory domain through the framework as it is,
// unchanged: HTTP, NATS, writer, SQLite, read model.
func TestServed(t *testing.T) {
	base, store := serve(t)
	id := uneventful.NewID()
	product := base + "/inventory/" + id
	for _, step := range []struct {
		method, path, body, key string
		status                  int
		want                    map[string]string // fields of the answer
	}{
		{"POST", "/reserve", `{"quantity": 1, "reservation": "order-1"}`, "", 409,
			map[string]string{"code": "insufficient_stock", "version": "0", "available": "0"}},
		{"POST", "/add", `{"quantity": 5}`, "", 200, map[string]string{"version": "1", "available": "5", "reserved": "0"}},
		{"POST", "/reserve", `{"quantity": 7, "reservation": "order-1"}`, "", 409,
			map[string]string{"code": "insufficient_stock", "detail": "insufficient stock: 5 available, 7 asked for"}},
		{"POST", "/reserve", `{"quantity": 2, "reservation": "order-1"}`, "", 200, map[string]string{"version": "2", "available": "3", "reserved": "2"}},
		{"POST", "/reserve", `{"quantity": 1, "reservation": "order-1"}`, "", 409, map[string]string{"code": "reservation_exists"}},
		{"POST", "/release", `{"reservation": "order-2"}`, "", 409, map[string]string{"code": "unknown_reservation"}},
		{"POST", "/add", `{"quantity": 2.5}`, "", 400, map[string]string{"code": "wrong_type"}},
		{"GET", "/stock", "", "", 200, map[string]string{"entity_id": id, "version": "2", "available": "3", "reserved": "2"}},
		{"POST", "/release", `{"reservation": "order-1"}`, "k1", 200, map[string]string{"version": "3", "available": "5", "reserved": "0"}},
		{"POST", "/release", `{"reservation": "order-1"}`, "k1", 200, map[string]string{"version": "3", "available": "5", "reserved": "0"}},
		{"POST", "/release", `{"reservation": "order-2"}`, "k1", 422, map[string]string{"code": "idempotency_key_reused"}},
		{"GET", "/stock", "", "", 200, map[string]string{"version": "3", "available": "5", "reserved": "0"}},
	} {
		status, got := call(t, step.method, product+step.path, step.body, step.key)
		if status != step.status {
			t.Errorf("%s %s %s: status %d, want %d", step.method, step.path, step.body, status, step.status)
		}
		for k, want := range step.want {
			if g := strings.Trim(strings.TrimSpace(jsonText(got[k])), `"`); g != want {
				t.Errorf("%s %s %s: %s = %s, want %s", step.method, step.path, step.body, k, g, want)
			}
		}
	}
	if status, got := call(t, "GET", base+"/inventory/"+uneventful.NewID()+"/stock", "", ""); status != 404 || got["code"] != "product_not_found" {
		t.Errorf("stock of an unknown product: %d %v; want 404 product_not_found", status, got)
	}

	// Every decided attempt is recorded, rejected ones too; the invalid
	// one and the retry are not.
	events, err := store.Events(context.Background(), uneventful.EventQuery{Domain: inventory.Name, EntityID: id})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range events {
		outcomes = append(outcomes, e.Command+" "+string(e.Outcome)+" "+e.Reason)
	}
	want := []string{"reserve rejected insufficient_stock", "add accepted ", "reserve rejected insufficient_stock", "reserve accepted ",
		"reserve rejected reservation_exists", "release rejected unknown_reservation", "release accepted "}
	if strings.Join(outcomes, "\n") != strings.Join(want, "\n") {
		t.Errorf("event log:\n%s\nwant:\n%s", strings.Join(outcomes, "\n"), strings.Join(want, "\n"))
	}
	if n := len(events); n > 0 {
		if got := string(events[n-1].Data); got != `{"quantity":2,"reservation":"order-1"}` {
			t.Errorf("the release recorded %s, want the quantity it returned", got)
		}
	}
	states, err := store.States(context.Background(), inventory.Name, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, s := range states {
		versions = append(versions, string(s.Data))
	}
	if got, want := strings.Join(versions, " "), `{"on_hand":5,"reserved":0} {"on_hand":5,"reserved":2,"reservations":{"order-1":2}} {"on_hand":5,"reserved":0}`; got != want {
		t.Errorf("state log: %s, want %s", got, want)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
