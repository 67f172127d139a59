package http_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

// TestInFlightBound: a server already waiting on MaxInFlight commands
// answers the next one at once with 503 and Retry-After, and takes
// commands again once a slot frees.
func TestInFlightBound(t *testing.T) {
	f := newFixture(t, func(s *uhttp.Server) { s.MaxInFlight = 2 })
	release := make(chan struct{})
	var waiting sync.WaitGroup
	waiting.Add(2)
	f.bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
		if e.IdempotencyKey == "held" {
			waiting.Done()
			<-release
		}
		return &uneventful.Reply{EventID: e.EventID, Outcome: uneventful.Accepted, Version: 1}, nil
	}
	path := "/acct/" + uneventful.NewID() + "/add"
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { done <- f.do(t, "POST", path, `{"amount": 5}`, "Idempotency-Key", "held").status }()
	}
	waiting.Wait()
	start := time.Now()
	r := f.do(t, "POST", path, `{"amount": 5}`)
	checkError(t, r, "POST", path, 503, "unavailable", "overloaded")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the overloaded answer took %v; it must not wait", d)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if s := <-done; s != 200 {
			t.Errorf("held command answered %d", s)
		}
	}
	if r := f.do(t, "POST", path, `{"amount": 5}`); r.status != 200 {
		t.Errorf("after the slots freed: %d %s", r.status, r.body)
	}
}
