package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uneventful/uneventful/writer"
)

// Domain is the writer.Observer of one domain's write path: give it to the
// domain's Writer, Projector and Relay as their Observer. It exports the
// batch sizes, commit and append latencies, failures, and how far the read
// model and the event stream lag behind the event store.
//
// The lags are in events (store sequence numbers). The store position is
// the highest sequence this process has seen: appended by its writer, or
// read by its projector or relay. The read model's position is the
// projector's checkpoint, moved on by each commit the writer projects
// without a gap before it; so the lag is 0 while every commit is projected,
// grows when projecting fails or the read model is rebuilt, and falls back
// as the projector catches up.
type Domain struct {
	name string

	batchSize       prometheus.Observer
	commitDuration  prometheus.Observer
	appendDuration  prometheus.Observer
	commitFailures  prometheus.Counter
	conflicts       prometheus.Counter
	projectFailures prometheus.Counter
	rebuilds        prometheus.Counter
	projectorErrors prometheus.Counter

	store      atomic.Int64 // highest sequence known to be in the store
	readModel  atomic.Int64 // the read model holds every record up to here
	rmKnown    atomic.Bool  // a projector has reported the read model's position
	passStart  atomic.Int64 // store position when the projector's pass began
	relay      atomic.Int64 // the relay has published every event up to here
	relayKnown atomic.Bool
}

var _ writer.Observer = (*Domain)(nil)

// Domain returns the observer of the domain's write path; every call with
// the same name returns the same one.
func (m *Metrics) Domain(name string) *Domain {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.domains[name]; ok {
		return d
	}
	d := &Domain{
		name:            name,
		batchSize:       m.batchSize.WithLabelValues(name),
		commitDuration:  m.commitDuration.WithLabelValues(name),
		appendDuration:  m.appendDuration.WithLabelValues(name),
		commitFailures:  m.commitFailures.WithLabelValues(name),
		conflicts:       m.conflicts.WithLabelValues(name),
		projectFailures: m.projectFailures.WithLabelValues(name),
		rebuilds:        m.rebuilds.WithLabelValues(name),
		projectorErrors: m.projectorErrors.WithLabelValues(name),
	}
	m.domains[name] = d
	return d
}

// Committed implements writer.Observer.
func (d *Domain) Committed(c writer.Commit) {
	d.batchSize.Observe(float64(c.Commands))
	d.commitDuration.Observe(c.Took.Seconds())
	if c.Append > 0 {
		d.appendDuration.Observe(c.Append.Seconds())
	}
	conflicts := c.Attempts - 1
	if c.Lookup {
		conflicts-- // that attempt was for a retried key, not a conflict
	}
	if conflicts > 0 {
		d.conflicts.Add(float64(conflicts))
	}
	if c.Err != nil {
		d.commitFailures.Inc()
	}
	if c.ProjectErr != nil {
		d.projectFailures.Inc()
	}
	if c.Records == 0 {
		return
	}
	raise(&d.store, c.Last)
	if c.Projected && d.rmKnown.Load() {
		// The read model is complete up to c.Last only if it was up
		// to just before c.First.
		for {
			rm := d.readModel.Load()
			if rm < c.First-1 || rm >= c.Last || d.readModel.CompareAndSwap(rm, c.Last) {
				break
			}
		}
	}
}

// Projecting implements writer.Observer.
func (d *Domain) Projecting(position int64, lost bool) {
	d.passStart.Store(d.store.Load())
	if lost {
		d.rebuilds.Inc()
		d.readModel.Store(position)
	} else {
		raise(&d.readModel, position)
	}
	d.rmKnown.Store(true)
}

// Projected implements writer.Observer.
func (d *Domain) Projected(position int64, done bool, err error) {
	if err != nil {
		d.projectorErrors.Inc()
		return
	}
	raise(&d.store, position)
	raise(&d.readModel, position)
	if done {
		// Everything the store held when the pass began was read, the
		// rejected attempts after the last record included.
		raise(&d.readModel, d.passStart.Load())
	}
}

// Relayed implements writer.Observer.
func (d *Domain) Relayed(position int64) {
	raise(&d.store, position)
	d.relay.Store(position)
	d.relayKnown.Store(true)
}

// raise sets v to n if n is higher.
func raise(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// positions exports the store position and the lags of every domain, read
// at scrape time.
type positions struct{ m *Metrics }

var (
	storeSeqDesc = prometheus.NewDesc(namespace+"_store_sequence",
		"Highest event-log sequence this process has seen in the domain's event store.", []string{"domain"}, nil)
	readModelLagDesc = prometheus.NewDesc(namespace+"_read_model_lag_events",
		"Events of the event store the read model may not hold yet (store sequence minus the read model's position); exported where a catch-up projector runs.", []string{"domain"}, nil)
	relayLagDesc = prometheus.NewDesc(namespace+"_relay_lag_events",
		"Events of the event store not yet published to the event stream (store sequence minus the relay's position).", []string{"domain"}, nil)
)

func (p *positions) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeSeqDesc
	ch <- readModelLagDesc
	ch <- relayLagDesc
}

func (p *positions) Collect(ch chan<- prometheus.Metric) {
	p.m.mu.Lock()
	domains := make([]*Domain, 0, len(p.m.domains))
	for _, d := range p.m.domains {
		domains = append(domains, d)
	}
	p.m.mu.Unlock()
	for _, d := range domains {
		store := d.store.Load()
		ch <- prometheus.MustNewConstMetric(storeSeqDesc, prometheus.GaugeValue, float64(store), d.name)
		if d.rmKnown.Load() {
			ch <- prometheus.MustNewConstMetric(readModelLagDesc, prometheus.GaugeValue, float64(max(0, store-d.readModel.Load())), d.name)
		}
		if d.relayKnown.Load() {
			ch <- prometheus.MustNewConstMetric(relayLagDesc, prometheus.GaugeValue, float64(max(0, store-d.relay.Load())), d.name)
		}
	}
}
