package http_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

// scrape reads GET /metrics and returns each sample of uneventful's
// metrics by its series, e.g.
// `uneventful_http_requests_total{action="add",domain="acct",route="...",status="200"}`;
// histograms by their _count.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics: Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	samples := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "uneventful_") {
			continue
		}
		for _, m := range f.GetMetric() {
			key, v := name, 0.0
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				key, v = name+"_count", float64(m.Histogram.GetSampleCount())
			}
			samples[key+labels(m.GetLabel())] = v
		}
	}
	return samples
}

func labels(ls []*dto.LabelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func requests(route, domain, action, status string) string {
	return fmt.Sprintf(`uneventful_http_requests_total{action=%q,domain=%q,route=%q,status=%q}`, action, domain, route, status)
}

func commands(domain, command, outcome, code string) string {
	return fmt.Sprintf(`uneventful_commands_total{code=%q,command=%q,domain=%q,outcome=%q}`, code, command, domain, outcome)
}

// TestMetrics: GET /metrics serves the counts of requests by route pattern
// and status, with their latency, and of commands by outcome and code.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	id := uneventful.NewID()
	f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 5}`)
	f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 2}`)
	f.do(t, "POST", "/acct/"+id+"/take", `{"amount": 100}`)
	f.do(t, "POST", "/acct/"+id+"/take", `{"amount": -1}`)
	f.do(t, "POST", "/acct/nope/take", `{"amount": 1}`)
	f.do(t, "GET", "/acct/"+id+"/balance", "")
	f.do(t, "GET", "/nope/"+id+"/balance", "")
	f.do(t, "GET", "/healthz", "")
	f.bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
		return nil, uneventful.Errorf(uneventful.ErrUnavailable, "no_writer", "no writer")
	}
	f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 1}`)

	got := scrape(t, f.url)
	cmd, query := "POST /{domain}/{id}/{command}", "GET /{domain}/{id}/{query}"
	for series, want := range map[string]float64{
		requests(cmd, "acct", "add", "200"):                                                              2,
		requests(cmd, "acct", "add", "503"):                                                              1,
		requests(cmd, "acct", "take", "409"):                                                             1,
		requests(cmd, "acct", "take", "400"):                                                             2,
		requests(query, "acct", "balance", "200"):                                                        1,
		requests("unmatched", "", "", "404"):                                                             1,
		requests("GET /healthz", "", "", "200"):                                                          1,
		commands("acct", "add", "accepted", ""):                                                          2,
		commands("acct", "add", "error", "no_writer"):                                                    1,
		commands("acct", "take", "rejected", "insufficient_funds"):                                       1,
		commands("acct", "take", "error", "invalid_amount"):                                              1,
		commands("acct", "take", "error", "invalid_id"):                                                  1,
		commands("acct", "take", "accepted", ""):                                                         0,
		`uneventful_http_request_duration_seconds_count{action="add",domain="acct",route="` + cmd + `"}`: 3,
		`uneventful_http_request_duration_seconds_count{action="",domain="",route="GET /healthz"}`:       1,
		`uneventful_http_commands_in_flight{}`:                                                           0,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	for series := range got {
		if strings.Contains(series, id) || strings.Contains(series, "nope") {
			t.Errorf("a label holds a path segment: %s", series)
		}
	}
	// The /metrics request itself is counted once it is answered.
	if got := scrape(t, f.url)[requests("GET /metrics", "", "", "200")]; got != 1 {
		t.Errorf("GET /metrics counted %v times, want 1", got)
	}
}

// TestMetricsCardinality: requests on 1000 distinct ids, valid or not,
// and on 1000 distinct unknown paths add no series.
func TestMetricsCardinality(t *testing.T) {
	f := newFixture(t)
	send := func(i int) {
		id := uneventful.NewID()
		f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 1}`, "Idempotency-Key", fmt.Sprint("key-", i))
		f.do(t, "POST", "/acct/"+id+"/take", `{"amount": 5}`)
		f.do(t, "GET", "/acct/"+id+"/balance", "")
		f.do(t, "GET", fmt.Sprintf("/acct/bad-%d/balance", i), "")
		f.do(t, "GET", fmt.Sprintf("/x%d/%s/y%d", i, id, i), "")
		f.do(t, "DELETE", fmt.Sprintf("/z%d", i), "")
	}
	send(0)
	scrape(t, f.url) // so that GET /metrics has its series too
	before := scrape(t, f.url)
	for i := 1; i <= 1000; i++ {
		send(i)
	}
	after := scrape(t, f.url)
	for series := range after {
		if _, ok := before[series]; !ok {
			t.Errorf("new series after 1000 distinct ids: %s", series)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d series before, %d after", len(before), len(after))
	}
	if got := after[requests("POST /{domain}/{id}/{command}", "acct", "add", "200")]; got != 1001 {
		t.Errorf("adds counted %v, want 1001", got)
	}
}

// TestMetricsPrivateRegistry: each server counts on its own registry by
// default, never on Prometheus' global one.
func TestMetricsPrivateRegistry(t *testing.T) {
	a := newFixture(t)
	b := newFixture(t)
	a.do(t, "GET", "/healthz", "")
	if got := scrape(t, b.url)[requests("GET /healthz", "", "", "200")]; got != 0 {
		t.Errorf("server b counted server a's request: %v", got)
	}
	if a.srv.Metrics == nil || a.srv.Metrics == b.srv.Metrics {
		t.Errorf("servers share metrics %p and %p", a.srv.Metrics, b.srv.Metrics)
	}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "uneventful_") {
			t.Errorf("%s is on the global registry", f.GetName())
		}
	}
	// The metrics routes need no API key.
	keys := writeKeys(t)
	c := newFixture(t, func(s *uhttp.Server) { s.APIKeys = keys })
	if res, err := http.Get(c.url + "/metrics"); err != nil || res.StatusCode != 200 {
		t.Errorf("GET /metrics with API keys set: %v %v", res.StatusCode, err)
	}
}
