package http

import (
	nethttp "net/http"
	"sync"
	"time"

	"github.com/uneventful/uneventful/metrics"
)

// Route labels of the metrics, for requests that are not for one route of
// their own.
const (
	commandRoute   = "POST /{domain}/{id}/{command}"
	queryRoute     = "GET /{domain}/{id}/{query}"
	unmatchedRoute = "unmatched"
)

// commandPattern and queryPattern are the ServeMux patterns of a domain's
// command and query.
func commandPattern(domain, command string) string { return "POST /" + domain + "/{id}/" + command }
func queryPattern(domain, query string) string     { return "GET /" + domain + "/{id}/" + query }

// series are the metrics of one route pattern.
type series struct {
	route   *metrics.Route
	command *metrics.Command // for a command's route
}

// instrument counts every request by route pattern and status, and every
// command by outcome and reason code. It labels requests with the pattern
// ServeMux matched (Request.Pattern), never with the path, so entity ids
// never become label values.
func (s *Server) instrument(mux *nethttp.ServeMux) nethttp.Handler {
	m := s.Metrics
	m.CommandsInFlight(func() int { return len(s.inFlight) })
	known := map[string]*series{}
	for _, name := range s.names {
		rt := s.domains[name]
		for _, c := range rt.commands {
			known[commandPattern(name, c)] = &series{route: m.Route(commandRoute, name, c), command: m.Command(name, c)}
		}
		for _, q := range rt.queries {
			known[queryPattern(name, q)] = &series{route: m.Route(queryRoute, name, q)}
		}
	}
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"} {
		known[p] = &series{route: m.Route(p, "", "")}
	}
	unmatched := &series{route: m.Route(unmatchedRoute, "", "")}
	known["/{domain}/{id}/{name}"], known["/"], known[""] = unmatched, unmatched, unmatched
	// Routes registered elsewhere (Server.Routes) get a series on first
	// use, labelled with their pattern: a fixed set, as each is.
	var mu sync.Mutex
	others := map[string]*series{}
	lookup := func(pattern string) *series {
		if sr, ok := known[pattern]; ok {
			return sr
		}
		mu.Lock()
		defer mu.Unlock()
		sr, ok := others[pattern]
		if !ok {
			sr = &series{route: m.Route(pattern, "", "")}
			others[pattern] = sr
		}
		return sr
	}
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		start := time.Now()
		rec := recorders.Get().(*recorder)
		rec.ResponseWriter = w
		mux.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = nethttp.StatusOK
		}
		sr := lookup(r.Pattern)
		sr.route.Observe(status, time.Since(start))
		if sr.command != nil {
			switch {
			case status < 300:
				sr.command.Observe(metrics.Accepted, "")
			case rec.kind == kindRejected.name:
				sr.command.Observe(metrics.Rejected, rec.code)
			case rec.code != "":
				sr.command.Observe(metrics.Error, rec.code)
			default:
				sr.command.Observe(metrics.Error, "unknown")
			}
		}
		*rec = recorder{}
		recorders.Put(rec)
	})
}

// recorder remembers the status a handler wrote and, for an error answer,
// its error and code (set by writeProblem).
type recorder struct {
	nethttp.ResponseWriter
	status     int
	kind, code string
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (to flush a
// stream, set deadlines).
func (w *recorder) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// noteProblem tells the recorder, if w is one, what error answer is
// written.
func noteProblem(w nethttp.ResponseWriter, kind, code string) {
	if rec, ok := w.(*recorder); ok {
		rec.kind, rec.code = kind, code
	}
}
