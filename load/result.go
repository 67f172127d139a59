package load

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what a run measured.
type Result struct {
	Method, URL string
	OpenLoop    bool    // Rate was set: latency counts from each request's due time
	Rate        float64 // the target rate, requests per second (open loop)
	Workers     int
	Wallets     int
	Skew        string // with Wallets: Uniform or Zipf

	// Requests is the number of requests completed: Responses plus Errors.
	Requests  int64
	Responses int64
	// Errors is the number of requests that got no complete response.
	Errors int64
	// Duration is the time from the first request to the last completion.
	Duration time.Duration
	// Throughput is Requests per second of Duration.
	Throughput float64
	// Latency is the time to the end of each response body, from when the
	// request was sent; in open loop, for a request that was due before a
	// worker was free to send it (see Late), from when it was due.
	Latency Latency
	// Service is the time from the actual send to the end of the body, in
	// open loop only (nil in closed loop, where it is Latency).
	Service *Latency
	// Late counts, in open loop, the requests sent more than a millisecond
	// after they were due because no worker was free: the server, or too few
	// workers, fell behind.
	Late int64
	// Status counts responses by status code.
	Status map[int]int64
	// ErrorKinds counts Errors by kind (see ErrorKind).
	ErrorKinds map[string]int64
	// Connections is the number of connections opened.
	Connections int64
	// Interrupted says that ctx ended the run before it ended by itself.
	Interrupted bool

	// Histogram holds every latency in Latency, for finer percentiles.
	Histogram *Histogram
}

// Latency summarises a latency distribution.
type Latency struct {
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

func summarise(h *Histogram) Latency {
	return Latency{
		Min: h.Min(), Mean: h.Mean(), Max: h.Max(),
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
	}
}

func (r *runner) result(elapsed time.Duration, interrupted bool) Result {
	res := Result{
		Method:      r.method,
		URL:         r.cfg.URL,
		OpenLoop:    r.openLoop,
		Rate:        r.cfg.Rate,
		Workers:     r.cfg.Workers,
		Wallets:     r.cfg.Wallets,
		Duration:    elapsed,
		Latency:     summarise(&r.latency),
		Status:      make(map[int]int64),
		ErrorKinds:  make(map[string]int64),
		Connections: r.dials.Load(),
		Interrupted: interrupted,
		Late:        r.late.Load(),
		Histogram:   &r.latency,
	}
	if r.cfg.Wallets > 0 {
		res.Skew = r.cfg.Skew
	}
	if r.service != nil {
		s := summarise(r.service)
		res.Service = &s
	}
	for code := range r.status {
		if n := r.status[code].Load(); n > 0 {
			res.Status[code] = n
			res.Responses += n
		}
	}
	r.mu.Lock()
	for k, n := range r.errKinds {
		res.ErrorKinds[k] = n
		res.Errors += n
	}
	r.mu.Unlock()
	res.Requests = res.Responses + res.Errors
	if elapsed > 0 {
		res.Throughput = float64(res.Requests) / elapsed.Seconds()
	}
	return res
}

// Behind reports whether an open-loop run fell short of its target rate by
// more than 10%, a sign that it needs more workers.
func (r Result) Behind() bool {
	return r.OpenLoop && !r.Interrupted && r.Requests > 0 && r.Throughput < 0.9*r.Rate
}

// mode describes how the run was driven, for the renderers.
func (r Result) mode() string {
	var b strings.Builder
	if r.OpenLoop {
		fmt.Fprintf(&b, "open loop at %s/s, up to %d in flight", formatFloat(r.Rate), r.Workers)
	} else {
		fmt.Fprintf(&b, "closed loop, %d workers", r.Workers)
	}
	if r.Wallets > 0 {
		fmt.Fprintf(&b, ", %d wallets (%s)", r.Wallets, r.Skew)
	}
	fmt.Fprintf(&b, ", %d connections", r.Connections)
	if r.Interrupted {
		b.WriteString(", interrupted")
	}
	return b.String()
}

// String renders the result as a few aligned lines for a terminal.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", r.Method, r.URL, r.mode())
	fmt.Fprintf(&b, "requests  %d in %s = %s/s, %d errors\n", r.Requests, formatDuration(r.Duration), formatFloat(r.Throughput), r.Errors)
	if r.OpenLoop {
		fmt.Fprintf(&b, "latency   %s  (%d sent late: counted from their due time)\n", r.Latency.line(), r.Late)
		if r.Service != nil {
			fmt.Fprintf(&b, "service   %s  (from the send)\n", r.Service.line())
		}
	} else {
		fmt.Fprintf(&b, "latency   %s\n", r.Latency.line())
	}
	if len(r.Status) > 0 {
		fmt.Fprintf(&b, "status    %s\n", joinCounts(r.statusCounts(), "  "))
	}
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(&b, "errors    %s\n", joinCounts(r.errorCounts(), "  "))
	}
	if r.Behind() {
		fmt.Fprintf(&b, "warning   %s/s is short of the %s/s asked for: requests queued for a worker; add --workers\n", formatFloat(r.Throughput), formatFloat(r.Rate))
	}
	return b.String()
}

func (l Latency) line() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (min %s, mean %s)",
		formatDuration(l.P50), formatDuration(l.P90), formatDuration(l.P99), formatDuration(l.P999),
		formatDuration(l.Max), formatDuration(l.Min), formatDuration(l.Mean))
}

// Markdown renders the result as Markdown tables, for reports and docs.
func (r Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s %s`: %s\n\n", r.Method, r.URL, r.mode())
	b.WriteString("| requests | errors | duration | throughput |\n| ---: | ---: | ---: | ---: |\n")
	fmt.Fprintf(&b, "| %d | %d | %s | %s/s |\n\n", r.Requests, r.Errors, formatDuration(r.Duration), formatFloat(r.Throughput))
	b.WriteString("| latency | p50 | p90 | p99 | p99.9 | max | min | mean |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	row := func(name string, l Latency) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name,
			formatDuration(l.P50), formatDuration(l.P90), formatDuration(l.P99), formatDuration(l.P999),
			formatDuration(l.Max), formatDuration(l.Min), formatDuration(l.Mean))
	}
	row("response", r.Latency)
	if r.Service != nil {
		row("service (from the send)", *r.Service)
	}
	if r.OpenLoop {
		fmt.Fprintf(&b, "\nLate (sent over 1 ms after they were due, as every worker was busy): %d. Their latency counts from their due time.\n", r.Late)
	}
	table := func(title string, counts []count) {
		if len(counts) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n| %s | count |\n| --- | ---: |\n", title)
		for _, c := range counts {
			fmt.Fprintf(&b, "| %s | %d |\n", c.name, c.n)
		}
	}
	table("status", r.statusCounts())
	table("error", r.errorCounts())
	if r.Behind() {
		fmt.Fprintf(&b, "\nThroughput fell short of the %s/s asked for: requests queued for a worker.\n", formatFloat(r.Rate))
	}
	return b.String()
}

type count struct {
	name string
	n    int64
}

func (r Result) statusCounts() []count {
	var cs []count
	for _, code := range slices.Sorted(maps.Keys(r.Status)) {
		cs = append(cs, count{strconv.Itoa(code), r.Status[code]})
	}
	return cs
}

// errorCounts lists the most frequent kinds first.
func (r Result) errorCounts() []count {
	var cs []count
	for k, n := range r.ErrorKinds {
		cs = append(cs, count{k, n})
	}
	slices.SortFunc(cs, func(a, b count) int {
		if a.n != b.n {
			return int(b.n - a.n)
		}
		return strings.Compare(a.name, b.name)
	})
	return cs
}

func joinCounts(cs []count, sep string) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s: %d", c.name, c.n)
	}
	return strings.Join(parts, sep)
}

// formatDuration shows d with three significant digits in a fitting unit.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return formatFloat(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return formatFloat(float64(d)/float64(time.Millisecond)) + "ms"
	default:
		return formatFloat(d.Seconds()) + "s"
	}
}

// formatFloat shows f with three significant digits, more for large
// integers.
func formatFloat(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

// MarshalJSON renders the result as one flat JSON object for scripts, with
// latencies in microseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type latency struct {
		Min  int64 `json:"min"`
		Mean int64 `json:"mean"`
		P50  int64 `json:"p50"`
		P90  int64 `json:"p90"`
		P99  int64 `json:"p99"`
		P999 int64 `json:"p99_9"`
		Max  int64 `json:"max"`
	}
	us := func(l Latency) *latency {
		return &latency{l.Min.Microseconds(), l.Mean.Microseconds(), l.P50.Microseconds(), l.P90.Microseconds(),
			l.P99.Microseconds(), l.P999.Microseconds(), l.Max.Microseconds()}
	}
	v := struct {
		Method      string           `json:"method"`
		URL         string           `json:"url"`
		Mode        string           `json:"mode"`
		Rate        float64          `json:"target_rate,omitempty"`
		Workers     int              `json:"workers"`
		Wallets     int              `json:"wallets,omitempty"`
		Skew        string           `json:"skew,omitempty"`
		Requests    int64            `json:"requests"`
		Responses   int64            `json:"responses"`
		Errors      int64            `json:"errors"`
		Duration    float64          `json:"duration_s"`
		Throughput  float64          `json:"throughput_rps"`
		Latency     *latency         `json:"latency_us"`
		Service     *latency         `json:"service_us,omitempty"`
		Status      map[int]int64    `json:"status"`
		ErrorKinds  map[string]int64 `json:"errors_by_kind"`
		Late        int64            `json:"late,omitempty"`
		Connections int64            `json:"connections"`
		Interrupted bool             `json:"interrupted"`
	}{
		Method: r.Method, URL: r.URL, Mode: "closed", Rate: r.Rate, Workers: r.Workers, Wallets: r.Wallets, Skew: r.Skew,
		Requests: r.Requests, Responses: r.Responses, Errors: r.Errors,
		Duration: r.Duration.Seconds(), Throughput: r.Throughput,
		Latency: us(r.Latency), Status: r.Status, ErrorKinds: r.ErrorKinds,
		Late: r.Late, Connections: r.Connections, Interrupted: r.Interrupted,
	}
	if r.OpenLoop {
		v.Mode = "open"
	}
	if r.Service != nil {
		v.Service = us(*r.Service)
	}
	if v.Status == nil {
		v.Status = map[int]int64{}
	}
	if v.ErrorKinds == nil {
		v.ErrorKinds = map[string]int64{}
	}
	return json.Marshal(v)
}
