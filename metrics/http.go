package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route is the series of one HTTP route. Make one per route when the
// routes are built, and Observe each request; Observe allocates nothing
// once the route has answered with that status before.
type Route struct {
	vec      *prometheus.CounterVec
	labels   [3]string // route, domain, action
	duration prometheus.Observer

	mu       sync.Mutex                      // serialises adding a status
	statuses atomic.Pointer[[]statusCounter] // copied on write
}

type statusCounter struct {
	status  int
	counter prometheus.Counter
}

// Route returns the series of the route: pattern is the route pattern, such
// as "POST /{domain}/{id}/{command}" or "GET /healthz"; domain and action
// (a command or query name) are empty for routes of no domain. Every value
// must come from a bounded set, never from a request's path.
func (m *Metrics) Route(pattern, domain, action string) *Route {
	r := &Route{vec: m.httpRequests, labels: [3]string{pattern, domain, action}}
	r.duration = m.httpDuration.WithLabelValues(pattern, domain, action)
	return r
}

// Observe counts a request answered with status after d.
func (r *Route) Observe(status int, d time.Duration) {
	r.duration.Observe(d.Seconds())
	r.counter(status).Inc()
}

func (r *Route) counter(status int) prometheus.Counter {
	if p := r.statuses.Load(); p != nil {
		for _, s := range *p {
			if s.status == status {
				return s.counter
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var old []statusCounter
	if p := r.statuses.Load(); p != nil {
		old = *p
		for _, s := range old {
			if s.status == status {
				return s.counter
			}
		}
	}
	c := r.vec.WithLabelValues(r.labels[0], r.labels[1], r.labels[2], strconv.Itoa(status))
	next := append(append(make([]statusCounter, 0, len(old)+1), old...), statusCounter{status, c})
	r.statuses.Store(&next)
	return c
}

// The outcomes of a command.
const (
	// Accepted: the command was applied (HTTP 200).
	Accepted = "accepted"
	// Rejected: the domain refused it against the entity's state; the
	// attempt is recorded (HTTP 409, error "rejected").
	Rejected = "rejected"
	// Error: it was not decided: invalid, unauthorised, overloaded,
	// unavailable, timed out (any other status).
	Error = "error"
)

// maxCodes bounds the reason codes counted per command and outcome; codes
// past it are counted as "other". Codes are a fixed set per domain, so this
// only guards against a domain that puts values into its codes.
const maxCodes = 64

// Command is the series of one command of a domain.
type Command struct {
	vec             *prometheus.CounterVec
	domain, command string
	accepted        prometheus.Counter

	mu    sync.RWMutex
	codes map[outcomeCode]prometheus.Counter
}

type outcomeCode struct{ outcome, code string }

// Command returns the series of a domain's command.
func (m *Metrics) Command(domain, command string) *Command {
	return &Command{
		vec:      m.commands,
		domain:   domain,
		command:  command,
		accepted: m.commands.WithLabelValues(domain, command, Accepted, ""),
		codes:    map[outcomeCode]prometheus.Counter{},
	}
}

// Observe counts a command answered with outcome (Accepted, Rejected or
// Error) and the reason code of a rejection or an error.
func (c *Command) Observe(outcome, code string) {
	if outcome == Accepted {
		c.accepted.Inc()
		return
	}
	k := outcomeCode{outcome, code}
	c.mu.RLock()
	counter, ok := c.codes[k]
	c.mu.RUnlock()
	if !ok {
		counter = c.add(k)
	}
	counter.Inc()
}

func (c *Command) add(k outcomeCode) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if counter, ok := c.codes[k]; ok {
		return counter
	}
	switch k.outcome {
	case Rejected, Error:
	default:
		k.outcome = Error
	}
	if !validCode(k.code) || len(c.codes) >= maxCodes {
		// Not remembered under the code given, so that a stream of
		// distinct codes adds no series and no entries.
		return c.vec.WithLabelValues(c.domain, c.command, k.outcome, "other")
	}
	counter := c.vec.WithLabelValues(c.domain, c.command, k.outcome, k.code)
	c.codes[k] = counter
	return counter
}

// validCode reports whether code looks like a reason code: snake_case, at
// most 64 bytes.
func validCode(code string) bool {
	if len(code) == 0 || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
