package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "uneventful"

// Buckets of the histograms.
var (
	// httpBuckets span a cached read (well under a millisecond) to a
	// command that waited out its timeout (10 s by default).
	httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// storeBuckets span an append without sync (tens of microseconds) to
	// a stalled disk.
	storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// batchBuckets are powers of two up to the default MaxBatch, 1024.
	batchBuckets = prometheus.ExponentialBuckets(1, 2, 11)
)

// Metrics is one process's metrics. Make it with New; it is safe for
// concurrent use.
type Metrics struct {
	// Registry holds every metric of the process: uneventful's, the Go
	// runtime's (go_*) and the process's (process_*). Register more on it
	// if you like; Handler serves it.
	Registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	commands     *prometheus.CounterVec

	batchSize       *prometheus.HistogramVec
	commitDuration  *prometheus.HistogramVec
	appendDuration  *prometheus.HistogramVec
	commitFailures  *prometheus.CounterVec
	conflicts       *prometheus.CounterVec
	projectFailures *prometheus.CounterVec
	rebuilds        *prometheus.CounterVec
	projectorErrors *prometheus.CounterVec

	natsReconnects  prometheus.Counter
	natsDisconnects prometheus.Counter

	handlerOnce sync.Once
	handler     http.Handler

	mu        sync.Mutex
	domains   map[string]*Domain
	inFlight  atomic.Pointer[func() int]
	connected atomic.Pointer[func() bool]
	history   atomic.Pointer[func(context.Context) (uint64, error)]
}

// New returns the metrics of a process on a new private registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg, domains: map[string]*Domain{}}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	f := promauto(reg)
	m.httpRequests = f.counter("http_requests_total",
		"HTTP requests answered, by route pattern, domain, command or query, and status.",
		"route", "domain", "action", "status")
	m.httpDuration = f.histogram("http_request_duration_seconds",
		"Time from receiving an HTTP request's headers to the end of its handler, by route pattern, domain, and command or query.",
		httpBuckets, "route", "domain", "action")
	m.commands = f.counter("commands_total",
		"Commands answered by this server, by domain, command, outcome (accepted, rejected, error) and reason code (empty when accepted).",
		"domain", "command", "outcome", "code")
	m.batchSize = f.histogram("writer_batch_size",
		"Commands per commit of a writer (group commit: one transaction and one sync per batch).",
		batchBuckets, "domain")
	m.commitDuration = f.histogram("writer_commit_duration_seconds",
		"Time a writer took per batch, from taking it off its queue to its last reply: decide, append, project, reply.",
		storeBuckets, "domain")
	m.appendDuration = f.histogram("store_append_duration_seconds",
		"Time of one event-store append: one transaction, durable sync (fsync) included.",
		storeBuckets, "domain")
	m.commitFailures = f.counter("writer_commit_failures_total",
		"Batches a writer could not record (every command of it got a 503 and nothing was written).",
		"domain")
	m.conflicts = f.counter("writer_conflicts_total",
		"Transactions a writer retried because another writer took an entity's next version first.",
		"domain")
	m.projectFailures = f.counter("writer_project_failures_total",
		"Commits a writer could not project into the read model; the catch-up projector repairs it.",
		"domain")
	m.rebuilds = f.counter("read_model_rebuilds_total",
		"Times the catch-up projector found the read model without a position (new, flushed or restarted) and rebuilt it from the store.",
		"domain")
	m.projectorErrors = f.counter("projector_errors_total",
		"Catch-up passes of the projector that failed (store or read model unreachable); it retries.",
		"domain")
	m.natsReconnects = f.plainCounter("nats_reconnects_total", "Times the NATS connection was re-established after a loss.")
	m.natsDisconnects = f.plainCounter("nats_disconnects_total", "Times the NATS connection was lost.")
	reg.MustRegister(&positions{m})
	reg.MustRegister(&funcGauges{m})
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, if asked for), gzip-compressed for clients that accept it.
func (m *Metrics) Handler() http.Handler {
	m.handlerOnce.Do(func() {
		m.handler = promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
			ErrorLog:          slogAdapter{},
			ErrorHandling:     promhttp.ContinueOnError,
			Registry:          m.Registry,
			EnableOpenMetrics: true,
		})
	})
	return m.handler
}

// slogAdapter logs promhttp's errors at Warn on slog's default logger.
type slogAdapter struct{}

func (slogAdapter) Println(v ...any) { slog.Warn("metrics: serve", "err", v) }

// NATSReconnected counts a re-established NATS connection; call it from
// the connection's reconnect handler.
func (m *Metrics) NATSReconnected() { m.natsReconnects.Inc() }

// NATSDisconnected counts a lost NATS connection; call it from the
// connection's disconnect handler when its error is not nil.
func (m *Metrics) NATSDisconnected() { m.natsDisconnects.Inc() }

// NATSConnected exports uneventful_nats_connected from f, e.g. a
// connection's IsConnected, read at each scrape. A later call replaces f.
func (m *Metrics) NATSConnected(f func() bool) { m.connected.Store(&f) }

// CommandsInFlight exports uneventful_http_commands_in_flight from f, the
// commands a server is waiting on, read at each scrape. A later call
// replaces f.
func (m *Metrics) CommandsInFlight(f func() int) { m.inFlight.Store(&f) }

// HistoryPending exports uneventful_history_pending_events from f, read at
// each scrape with a 2 s timeout: the events of the event stream that the
// history writer has not recorded yet (see nats.Pending). When f fails, the
// scrape has no sample. A later call replaces f.
func (m *Metrics) HistoryPending(f func(context.Context) (uint64, error)) { m.history.Store(&f) }

// funcGauges exports the gauges read from functions at scrape time.
type funcGauges struct{ m *Metrics }

var (
	inFlightDesc = prometheus.NewDesc(namespace+"_http_commands_in_flight",
		"Commands this server is waiting on a writer for (bounded by its MaxInFlight).", nil, nil)
	connectedDesc = prometheus.NewDesc(namespace+"_nats_connected",
		"1 while the NATS connection is up, else 0.", nil, nil)
	historyDesc = prometheus.NewDesc(namespace+"_history_pending_events",
		"Events in the event stream that the history writer has not recorded yet: not yet delivered to it plus delivered and not yet acknowledged (JetStream consumer \"history\").", nil, nil)
)

func (g *funcGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- connectedDesc
	ch <- historyDesc
}

func (g *funcGauges) Collect(ch chan<- prometheus.Metric) {
	if f := g.m.inFlight.Load(); f != nil {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64((*f)()))
	}
	if f := g.m.connected.Load(); f != nil {
		v := 0.0
		if (*f)() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, v)
	}
	if f := g.m.history.Load(); f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := (*f)(ctx)
		cancel()
		if err != nil {
			slog.Debug("metrics: history pending", "err", err)
		} else {
			ch <- prometheus.MustNewConstMetric(historyDesc, prometheus.GaugeValue, float64(n))
		}
	}
}

// factory makes and registers uneventful's metrics.
type factory struct{ reg prometheus.Registerer }

func promauto(reg prometheus.Registerer) factory { return factory{reg} }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) plainCounter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
