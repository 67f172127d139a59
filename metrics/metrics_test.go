package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uneventful/uneventful/metrics"
	"github.com/uneventful/uneventful/writer"
)

// value returns the value of the series of name with labels (as in the
// text format, e.g. `domain="wallet"`), or -1 if it is not exported.
func value(t *testing.T, m *metrics.Metrics, name, labels string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			var parts []string
			for _, l := range s.GetLabel() {
				parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if strings.Join(parts, ",") != labels {
				continue
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// TestReadModelLag follows the read model's lag through projected
// commits, a failed projection, a catch-up pass and a flush.
func TestReadModelLag(t *testing.T) {
	m := metrics.New()
	d := m.Domain("wallet")
	lag := func() float64 { return value(t, m, "uneventful_read_model_lag_events", `domain="wallet"`) }
	commit := func(first, last int64, projectErr error) {
		d.Committed(writer.Commit{Commands: int(last - first + 1), Records: int(last - first + 1), First: first, Last: last,
			Attempts: 1, Append: time.Millisecond, Took: 2 * time.Millisecond, Projected: projectErr == nil, ProjectErr: projectErr})
	}
	commit(1, 10, nil)
	if got := lag(); got != -1 {
		t.Errorf("lag before a projector reported = %v, want none", got)
	}
	d.Projecting(10, false)
	d.Projected(10, true, nil)
	if got := lag(); got != 0 {
		t.Errorf("lag after a pass = %v, want 0", got)
	}
	commit(11, 20, nil)
	if got := lag(); got != 0 {
		t.Errorf("lag after a projected commit = %v, want 0", got)
	}
	commit(21, 25, errors.New("redis down"))
	commit(26, 30, nil) // projected, but after a gap
	if got := lag(); got != 10 {
		t.Errorf("lag after a failed projection = %v, want 10", got)
	}
	if got := value(t, m, "uneventful_writer_project_failures_total", `domain="wallet"`); got != 1 {
		t.Errorf("project failures = %v, want 1", got)
	}
	// A pass from the marked position 20: the last record is 29 (30 was
	// rejected); done means the store as it was at the start is held.
	d.Projecting(20, false)
	d.Projected(29, true, nil)
	if got := lag(); got != 0 {
		t.Errorf("lag after catching up = %v, want 0", got)
	}
	// Flushed: rebuilt from 0, a batch at a time.
	d.Projecting(0, true)
	if got := lag(); got != 30 {
		t.Errorf("lag when the read model lost its data = %v, want 30", got)
	}
	commit(31, 31, nil) // the writer's projections do not close the gap
	d.Projected(15, false, nil)
	if got := lag(); got != 16 {
		t.Errorf("lag half way through the rebuild = %v, want 16", got)
	}
	d.Projected(15, false, errors.New("redis down"))
	d.Projecting(0, true)
	d.Projected(31, true, nil)
	if got := lag(); got != 0 {
		t.Errorf("lag after the rebuild = %v, want 0", got)
	}
	for name, want := range map[string]float64{
		"uneventful_read_model_rebuilds_total":      2,
		"uneventful_projector_errors_total":         1,
		"uneventful_store_sequence":                 31,
		"uneventful_writer_batch_size":              5,
		"uneventful_store_append_duration_seconds":  5,
		"uneventful_writer_commit_duration_seconds": 5,
	} {
		if got := value(t, m, name, `domain="wallet"`); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestRelayLag(t *testing.T) {
	m := metrics.New()
	d := m.Domain("wallet")
	d.Relayed(0)
	d.Committed(writer.Commit{Commands: 3, Records: 3, First: 1, Last: 3, Attempts: 3})
	if got := value(t, m, "uneventful_relay_lag_events", `domain="wallet"`); got != 3 {
		t.Errorf("relay lag = %v, want 3", got)
	}
	if got := value(t, m, "uneventful_writer_conflicts_total", `domain="wallet"`); got != 2 {
		t.Errorf("conflicts = %v, want 2", got)
	}
	d.Relayed(3)
	if got := value(t, m, "uneventful_relay_lag_events", `domain="wallet"`); got != 0 {
		t.Errorf("relay lag = %v, want 0", got)
	}
	d.Committed(writer.Commit{Commands: 1, Attempts: 10, Err: errors.New("contention")})
	if got := value(t, m, "uneventful_writer_commit_failures_total", `domain="wallet"`); got != 1 {
		t.Errorf("commit failures = %v, want 1", got)
	}
	// The attempt that looks keys up after a retried key is no conflict.
	d.Committed(writer.Commit{Commands: 2, Attempts: 2, Lookup: true})
	if got := value(t, m, "uneventful_writer_conflicts_total", `domain="wallet"`); got != 11 {
		t.Errorf("conflicts = %v after a batch retried for its keys, want 11 (2 + 9)", got)
	}
	if m.Domain("wallet") != d {
		t.Error("Domain returned another observer for the same domain")
	}
}

// TestCommandCodesBounded: a command reporting ever new codes, or codes
// that are no codes, adds a bounded number of series.
func TestCommandCodesBounded(t *testing.T) {
	m := metrics.New()
	c := m.Command("wallet", "debit")
	c.Observe(metrics.Accepted, "")
	c.Observe(metrics.Rejected, "insufficient_funds")
	c.Observe(metrics.Rejected, "insufficient_funds")
	for i := range 1000 {
		c.Observe(metrics.Error, fmt.Sprintf("code_%d", i))
		c.Observe(metrics.Error, fmt.Sprintf("Not A Code %d", i))
	}
	if got := value(t, m, "uneventful_commands_total", `code="insufficient_funds",command="debit",domain="wallet",outcome="rejected"`); got != 2 {
		t.Errorf("insufficient_funds = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.Registry, "uneventful_commands_total"); n > 70 {
		t.Errorf("%d series of uneventful_commands_total, want at most 70", n)
	}
	if got := value(t, m, "uneventful_commands_total", `code="other",command="debit",domain="wallet",outcome="error"`); got < 1000 {
		t.Errorf("other = %v, want at least 1000", got)
	}
}

func TestRoute(t *testing.T) {
	m := metrics.New()
	r := m.Route("GET /{domain}/{id}/{query}", "wallet", "balance")
	for i := range 100 {
		r.Observe(200+i%3, time.Millisecond)
	}
	for status, want := range map[string]float64{"200": 34, "201": 33, "202": 33} {
		if got := value(t, m, "uneventful_http_requests_total", `action="balance",domain="wallet",route="GET /{domain}/{id}/{query}",status="`+status+`"`); got != want {
			t.Errorf("status %s: %v, want %v", status, got, want)
		}
	}
	if got := value(t, m, "uneventful_http_request_duration_seconds", `action="balance",domain="wallet",route="GET /{domain}/{id}/{query}"`); got != 100 {
		t.Errorf("durations = %v, want 100", got)
	}
	allocs := testing.AllocsPerRun(1000, func() { r.Observe(200, time.Millisecond) })
	if allocs != 0 {
		t.Errorf("Observe allocates %v times, want 0", allocs)
	}
	c := m.Command("wallet", "debit")
	c.Observe(metrics.Rejected, "insufficient_funds")
	allocs = testing.AllocsPerRun(1000, func() {
		c.Observe(metrics.Accepted, "")
		c.Observe(metrics.Rejected, "insufficient_funds")
	})
	if allocs != 0 {
		t.Errorf("Command.Observe allocates %v times, want 0", allocs)
	}
}

func TestFuncGauges(t *testing.T) {
	m := metrics.New()
	if got := value(t, m, "uneventful_nats_connected", ""); got != -1 {
		t.Errorf("nats_connected without a connection = %v, want none", got)
	}
	connected := true
	m.NATSConnected(func() bool { return connected })
	m.NATSDisconnected()
	m.NATSReconnected()
	m.NATSReconnected()
	m.CommandsInFlight(func() int { return 7 })
	var pending uint64 = 42
	var pendingErr error
	m.HistoryPending(func(ctx context.Context) (uint64, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("HistoryPending's function got no deadline")
		}
		return pending, pendingErr
	})
	for name, want := range map[string]float64{
		"uneventful_nats_connected":          1,
		"uneventful_nats_disconnects_total":  1,
		"uneventful_nats_reconnects_total":   2,
		"uneventful_http_commands_in_flight": 7,
		"uneventful_history_pending_events":  42,
	} {
		if got := value(t, m, name, ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	connected, pendingErr = false, errors.New("no consumer")
	if got := value(t, m, "uneventful_nats_connected", ""); got != 0 {
		t.Errorf("nats_connected when down = %v, want 0", got)
	}
	if got := value(t, m, "uneventful_history_pending_events", ""); got != -1 {
		t.Errorf("history pending when it cannot be read = %v, want no sample", got)
	}
}

func TestHandler(t *testing.T) {
	m := metrics.New()
	m.Domain("wallet").Committed(writer.Commit{Commands: 1, Records: 1, First: 1, Last: 1, Attempts: 1})
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	for _, want := range []string{"uneventful_writer_batch_size_bucket{domain=\"wallet\",le=\"1\"} 1", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the scrape has no %q", want)
		}
	}
}

// BenchmarkObserve is what the HTTP server adds to each request: a
// route's latency and count, and for a command its outcome.
func BenchmarkObserve(b *testing.B) {
	m := metrics.New()
	r := m.Route("POST /{domain}/{id}/{command}", "wallet", "credit")
	c := m.Command("wallet", "credit")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			r.Observe(200, time.Since(start))
			c.Observe(metrics.Accepted, "")
		}
	})
}
