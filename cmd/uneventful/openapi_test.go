package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/http/openapitest"
)

// TestOpenAPI checks real answers of `uneventful serve`, of every domain
// and every status the tests can provoke, against its GET /openapi.json.
func TestOpenAPI(t *testing.T) {
	s := startServe(t, t.TempDir())
	res, err := http.Get(s.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	doc, err := openapitest.Load(raw)
	if err != nil {
		t.Fatalf("GET /openapi.json is not a valid document: %v", err)
	}
	// send sends a request, checks its status and its answer against the
	// document, and returns the answer's JSON fields.
	send := func(method, path, body string, status int, header ...string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
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
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != status {
			t.Errorf("%s %s: status %d, want %d\n%s", method, path, res.StatusCode, status, b)
		}
		if err := doc.Check(method, path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
			t.Error(err)
		}
		var fields map[string]any
		json.Unmarshal(b, &fields)
		return fields
	}
	w, w2, none := uneventful.NewID(), uneventful.NewID(), uneventful.NewID()
	wallet := "/wallet/" + w + "/"
	send("POST", wallet+"credit", `{"amount": 10}`, 200, "Content-Type", "application/json")
	send("POST", wallet+"credit", `{"amount": 0.5}`, 200, "Idempotency-Key", "k-1")
	send("POST", wallet+"credit", `{"amount": 0.5}`, 200, "Idempotency-Key", "k-1")
	send("POST", wallet+"credit", `{"amount": 0.6}`, 422, "Idempotency-Key", "k-1")
	send("POST", wallet+"debit", `{"amount": 50}`, 409)
	send("POST", wallet+"debit", `{"amount": 0.001}`, 400)
	send("POST", wallet+"debit", `{"amount": "5"}`, 400)
	send("POST", wallet+"debit", `{"amount": 5, "memo": "x"}`, 400)
	send("POST", wallet+"debit", ``, 400)
	send("POST", "/wallet/not-an-id/debit", `{"amount": 1}`, 400)
	send("POST", wallet+"debit", `{"amount": 1}`, 415, "Content-Type", "text/plain")
	send("POST", wallet+"debit", `{"amount": 1, "pad": "`+strings.Repeat("x", 70<<10)+`"}`, 413)
	send("POST", wallet+"receive", `{"amount": 1}`, 400)
	send("POST", wallet+"debit", `{"amount": 1.5}`, 200)
	tr := send("POST", wallet+"transfer", fmt.Sprintf(`{"to": %q, "amount": 2}`, w2), 200)
	send("POST", wallet+"transfer", fmt.Sprintf(`{"to": %q, "amount": 2000}`, w2), 409)
	send("GET", wallet+"balance", "", 200)
	send("GET", "/wallet/"+none+"/balance", "", 404)
	send("GET", "/wallet/not-an-id/balance", "", 400)
	send("GET", wallet+"transactions", "", 200)
	send("GET", wallet+"transactions?limit=1&after=1", "", 200)
	send("GET", wallet+"transactions?limit=0", "", 400)
	if id, ok := tr["event_id"].(string); ok {
		send("GET", wallet+"transfer?id="+id, "", 200)
		// The receive and settle are sent by the transfer process: once
		// they are recorded, the target's history has a receive.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if res, err := http.Get(s.url + "/wallet/" + w2 + "/transactions"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		send("GET", "/wallet/"+w2+"/transactions", "", 200)
		send("GET", wallet+"transfer?id="+id, "", 200)
	}
	send("GET", wallet+"transfer?id="+none, "", 404)
	send("GET", wallet+"transfer", "", 400)

	product := "/inventory/" + uneventful.NewID() + "/"
	send("POST", product+"add", `{"quantity": 5}`, 200)
	send("POST", product+"reserve", `{"quantity": 9, "reservation": "r1"}`, 409)
	send("POST", product+"reserve", `{"quantity": 2, "reservation": "r1"}`, 200)
	send("POST", product+"release", `{"reservation": "r1"}`, 200)
	send("POST", product+"release", `{"reservation": "r2"}`, 409)
	send("POST", product+"add", `{"quantity": 1.5}`, 400)
	send("GET", product+"stock", "", 200)
	send("GET", "/inventory/"+none+"/stock", "", 404)

	send("GET", "/healthz", "", 200)
	send("GET", "/readyz", "", 200)
	send("GET", "/metrics", "", 200)
	send("GET", "/openapi.json", "", 200)
}

// TestServeMetrics: `uneventful serve` exports its requests, commands,
// writers, relays, history and NATS connection at GET /metrics.
func TestServeMetrics(t *testing.T) {
	s := startServe(t, t.TempDir())
	w := uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`), 200, nil)
	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 50}`), 409, nil)
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, nil)

	var got map[string]float64
	waitFor(t, func() string {
		got = scrapeServe(t, s.url)
		for series, min := range map[string]float64{
			`uneventful_http_requests_total{action="credit",domain="wallet",route="POST /{domain}/{id}/{command}",status="200"}`: 1,
			`uneventful_commands_total{code="",command="credit",domain="wallet",outcome="accepted"}`:                             1,
			`uneventful_commands_total{code="insufficient_funds",command="debit",domain="wallet",outcome="rejected"}`:            1,
			`uneventful_writer_batch_size_count{domain="wallet"}`:                                                                2,
			`uneventful_writer_commit_duration_seconds_count{domain="wallet"}`:                                                   2,
			`uneventful_store_append_duration_seconds_count{domain="wallet"}`:                                                    2,
			`uneventful_store_sequence{domain="wallet"}`:                                                                         2,
			`uneventful_nats_connected{}`: 1,
		} {
			if got[series] < min {
				return fmt.Sprintf("%s = %v, want at least %v", series, got[series], min)
			}
		}
		for _, series := range []string{`uneventful_relay_lag_events{domain="wallet"}`, `uneventful_history_pending_events{}`, `uneventful_nats_reconnects_total{}`} {
			if v, ok := got[series]; !ok || v != 0 {
				return fmt.Sprintf("%s = %v (exported %v), want 0", series, v, ok)
			}
		}
		return ""
	})
}

// scrapeServe reads GET /metrics: each sample of uneventful's metrics by
// its series (labels sorted), histograms by their _count.
func scrapeServe(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "uneventful_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				samples[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				samples[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				samples[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return samples
}
