package http

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	nethttp "net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/uneventful/uneventful"
)

// route is one domain as the router sees it.
type route struct {
	model    uneventful.Model
	name     string
	commands []string // sorted
	queries  []string // sorted
}

func (rt *route) isCommand(name string) bool {
	_, ok := slices.BinarySearch(rt.commands, name)
	return ok
}

func (rt *route) isQuery(name string) bool {
	_, ok := slices.BinarySearch(rt.queries, name)
	return ok
}

var (
	// domainRE is a domain name as uneventful.Model documents it; it is
	// also a segment of NATS subjects and stream names, so no dots.
	domainRE = regexp.MustCompile(`^[a-z0-9_]+$`)
	// actionRE is a command or query name: one path segment and one NATS
	// subject token.
	actionRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// routes builds the router from the domains.
func (s *Server) routes() (h nethttp.Handler, err error) {
	mux := nethttp.NewServeMux()
	defer func() {
		// ServeMux panics on conflicting patterns; the checks below
		// should make that impossible, but a panic is no way to report
		// a configuration error.
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("http: register routes: %v", p)
		}
	}()
	s.domains = make(map[string]*route, len(s.Domains))
	for i, m := range s.Domains {
		if m == nil {
			return nil, fmt.Errorf("http: Server.Domains[%d] is nil", i)
		}
		name := m.Name()
		if !domainRE.MatchString(name) {
			return nil, fmt.Errorf("http: domain name %q: want lowercase letters, digits and underscores", name)
		}
		if _, dup := s.domains[name]; dup {
			return nil, fmt.Errorf("http: domain %q is listed twice", name)
		}
		rt := &route{model: m, name: name}
		for _, c := range m.Commands() {
			if !actionRE.MatchString(c) {
				return nil, fmt.Errorf("http: domain %s: command name %q: want letters, digits, '_' and '-'", name, c)
			}
			if rt.isCommand(c) {
				return nil, fmt.Errorf("http: domain %s: command %q is listed twice", name, c)
			}
			rt.commands = append(rt.commands, c)
			slices.Sort(rt.commands)
			mux.Handle(commandPattern(name, c), s.command(rt, c))
		}
		for q, f := range m.Queries() {
			if !actionRE.MatchString(q) {
				return nil, fmt.Errorf("http: domain %s: query name %q: want letters, digits, '_' and '-'", name, q)
			}
			if f == nil {
				return nil, fmt.Errorf("http: domain %s: query %q is nil", name, q)
			}
			rt.queries = append(rt.queries, q)
			mux.Handle(queryPattern(name, q), s.query(rt, q, f))
		}
		slices.Sort(rt.queries)
		s.domains[name] = rt
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if err := s.addOperations(mux); err != nil {
		return nil, err
	}
	if err := s.addRoutes(mux); err != nil {
		return nil, err
	}
	// Everything the patterns above do not match lands in these two, so
	// that every answer is JSON (ServeMux's own 404 and 405 are text).
	mux.HandleFunc("/{domain}/{id}/{name}", s.fallback)
	mux.HandleFunc("/", s.notFound)
	return s.logRequests(s.instrument(mux)), nil
}

// logRequests logs each request at Debug, and costs nothing more than a
// level check when Debug is off.
func (s *Server) logRequests(next nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !s.Logger.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = nethttp.StatusOK
		}
		s.Logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("idempotency_key", sw.Header().Get("Idempotency-Key")),
		)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	nethttp.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// command handles POST /<domain>/{id}/<command>.
func (s *Server) command(rt *route, command string) nethttp.HandlerFunc {
	typeSuffix := "." + command
	return func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !s.authorized(w, r, ScopeWrite) {
			return
		}
		id := r.PathValue("id")
		if err := uneventful.ValidID(id); err != nil {
			s.fail(w, r, err)
			return
		}
		if p, ok := checkContentType(r.Header["Content-Type"]); !ok {
			s.writeProblem(w, r, p, nil)
			return
		}
		key, err := idempotencyKey(r.Header["Idempotency-Key"])
		if err != nil {
			s.fail(w, r, err)
			return
		}
		body, p, ok := s.readBody(w, r)
		if !ok {
			s.writeProblem(w, r, p, nil)
			return
		}
		data, err := rt.model.Parse(command, body)
		if err != nil {
			if kindOf(err) == kindInternal && !isUneventfulError(err) {
				// A parser that returns a plain error is complaining
				// about its input.
				err = &uneventful.Error{Kind: uneventful.ErrInvalid, Code: "invalid_body", Message: err.Error()}
			}
			s.fail(w, r, err)
			return
		}

		ev := &uneventful.Event{
			EventID:    uneventful.NewID(),
			Timestamp:  time.Now().UTC(),
			SourceName: s.SourceName,
			SourceID:   s.SourceID,
			TypeName:   rt.name + "." + id + typeSuffix,
			Domain:     rt.name,
			EntityID:   id,
			Command:    command,
			Data:       data,
		}
		ev.CausationID = ev.EventID
		ev.CorrelationID = ev.EventID
		if c := r.Header.Get("X-Correlation-ID"); saneToken(c) {
			ev.CorrelationID = c
		}
		if key == "" {
			key = ev.EventID
		}
		ev.IdempotencyKey = key
		ev.RequestHash = requestHash(ev.TypeName, data)
		h := w.Header()
		h.Set("Idempotency-Key", key)
		h.Set("X-Correlation-ID", ev.CorrelationID)

		if !s.acquire() {
			s.sendFailed(w, r, ev, s.overloaded())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.CommandTimeout)
		reply, err := s.Bus.Send(ctx, ev)
		cancel()
		s.release()
		if err != nil {
			s.sendFailed(w, r, ev, err)
			return
		}
		s.writeReply(w, r, ev, reply)
	}
}

// requestHash fingerprints a command so that reusing an idempotency key
// with a different request is detected: hex sha256 of type + "\n" + data.
func requestHash(typeName string, data []byte) string {
	h := sha256.New()
	io.WriteString(h, typeName)
	h.Write([]byte{'\n'})
	h.Write(data)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// checkContentType accepts no Content-Type, JSON, and the form type that
// curl -d sends (with a JSON body).
func checkContentType(values []string) (problem, bool) {
	if len(values) == 0 {
		return problem{}, true
	}
	if len(values) == 1 {
		mt, _, err := mime.ParseMediaType(values[0])
		if err == nil && (mt == "application/json" || mt == "application/x-www-form-urlencoded") {
			return problem{}, true
		}
	}
	return problem{
		status: nethttp.StatusUnsupportedMediaType,
		kind:   "unsupported_media_type",
		code:   "unsupported_media_type",
		detail: fmt.Sprintf("Content-Type %q is not supported: send the body as JSON with Content-Type: application/json", truncate(strings.Join(values, ", "), 100)),
	}, false
}

// idempotencyKey returns the Idempotency-Key header, "" when absent.
func idempotencyKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", uneventful.Errorf(uneventful.ErrInvalid, "invalid_idempotency_key", "send one Idempotency-Key header, not %d", len(values))
	}
	k := values[0]
	if len(k) == 0 || len(k) > 255 {
		return "", uneventful.Errorf(uneventful.ErrInvalid, "invalid_idempotency_key", "the Idempotency-Key header must be 1 to 255 printable ASCII characters; it has %d characters", len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", uneventful.Errorf(uneventful.ErrInvalid, "invalid_idempotency_key", "the Idempotency-Key header must be 1 to 255 printable ASCII characters; it has a byte 0x%02x at position %d", k[i], i)
		}
	}
	return k, nil
}

// saneToken reports whether a correlation id from outside is safe to carry
// into logs and events: 1 to 128 letters, digits and ._:- characters.
func saneToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// readBody reads a command's body up to MaxBodyBytes.
func (s *Server) readBody(w nethttp.ResponseWriter, r *nethttp.Request) ([]byte, problem, bool) {
	if r.ContentLength > s.MaxBodyBytes {
		return nil, s.tooLarge(), false
	}
	body, err := io.ReadAll(nethttp.MaxBytesReader(w, r.Body, s.MaxBodyBytes))
	if err != nil {
		var tooLarge *nethttp.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, s.tooLarge(), false
		}
		return nil, problem{
			status: nethttp.StatusBadRequest,
			kind:   kindInvalid.name,
			code:   "unreadable_body",
			detail: "the request body could not be read to its end; send it again",
		}, false
	}
	return body, problem{}, true
}

func (s *Server) tooLarge() problem {
	limit := fmt.Sprintf("%d bytes", s.MaxBodyBytes)
	if s.MaxBodyBytes%1024 == 0 {
		limit += fmt.Sprintf(" (%d KiB)", s.MaxBodyBytes/1024)
	}
	return problem{
		status: nethttp.StatusRequestEntityTooLarge,
		kind:   "too_large",
		code:   "body_too_large",
		detail: "the request body is larger than the limit of " + limit,
	}
}

// sendFailed answers a command whose Bus.Send failed.
func (s *Server) sendFailed(w nethttp.ResponseWriter, r *nethttp.Request, ev *uneventful.Event, err error) {
	attrs := []slog.Attr{
		slog.String("type", ev.Domain+"."+ev.Command),
		slog.String("entity_id", ev.EntityID),
		slog.String("event_id", ev.EventID),
		slog.Any("err", err),
	}
	switch {
	case errors.Is(err, uneventful.ErrUnavailable):
		s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "http: command not sent: no writer available", attrs...)
		s.writeProblem(w, r, problem{
			status: nethttp.StatusServiceUnavailable,
			kind:   kindUnavailable.name,
			code:   uneventful.ErrorCode(err),
			detail: fmt.Sprintf("no %s writer is available right now, or all are overloaded; nothing was applied. Retry shortly.", ev.Domain),
		}, &eventInfo{id: ev.EventID})
	case errors.Is(err, uneventful.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "http: command timed out", attrs...)
		code := uneventful.ErrorCode(err)
		if code == "internal" {
			code = "timeout"
		}
		s.writeProblem(w, r, problem{
			status: nethttp.StatusGatewayTimeout,
			kind:   kindTimeout.name,
			code:   code,
			detail: fmt.Sprintf("no %s writer answered within %v: the command may or may not have been applied. Retry with the same Idempotency-Key (see the response header) to learn its outcome; it will not be applied twice.", ev.Domain, s.CommandTimeout),
		}, &eventInfo{id: ev.EventID})
	default:
		s.failEvent(w, r, err, &eventInfo{id: ev.EventID})
	}
}

// query handles GET /<domain>/{id}/<query>.
func (s *Server) query(rt *route, name string, q uneventful.Query) nethttp.HandlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !s.authorized(w, r, ScopeRead) {
			return
		}
		id := r.PathValue("id")
		if err := uneventful.ValidID(id); err != nil {
			s.fail(w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.QueryTimeout)
		v, err := q(ctx, s.Reader, id, r.URL.Query())
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && kindOf(err) == kindInternal {
				err = uneventful.Errorf(uneventful.ErrTimeout, "timeout", "the read model did not answer within %v; retry shortly", s.QueryTimeout)
			}
			s.fail(w, r, err)
			return
		}
		s.writeJSON(w, r, nethttp.StatusOK, v, nil)
	}
}

// fallback answers /{domain}/{id}/{name} requests that no pattern of a
// domain matched: unknown domain, unknown command or query, wrong method.
func (s *Server) fallback(w nethttp.ResponseWriter, r *nethttp.Request) {
	domain, name := r.PathValue("domain"), r.PathValue("name")
	rt, ok := s.domains[domain]
	if !ok {
		s.fail(w, r, uneventful.Errorf(uneventful.ErrNotFound, "unknown_domain", "there is no domain %q; the domains are %s", truncate(domain, 64), list(s.names)))
		return
	}
	isCmd, isQuery := rt.isCommand(name), rt.isQuery(name)
	if isCmd || isQuery {
		var allow, what string
		switch {
		case isCmd && isQuery:
			allow, what = "GET, HEAD, POST", "a command (POST) and a query (GET)"
		case isCmd:
			allow, what = "POST", "a command: use POST"
		default:
			allow, what = "GET, HEAD", "a query: use GET"
		}
		w.Header().Set("Allow", allow)
		s.writeProblem(w, r, problem{
			status: nethttp.StatusMethodNotAllowed,
			kind:   "method_not_allowed",
			code:   "method_not_allowed",
			detail: fmt.Sprintf("%s is not allowed here: %s is %s", r.Method, name, what),
		}, nil)
		return
	}
	switch r.Method {
	case nethttp.MethodPost:
		if err := uneventful.ValidID(r.PathValue("id")); err != nil {
			s.fail(w, r, err)
			return
		}
		_, err := rt.model.Parse(name, nil)
		if !errors.Is(err, uneventful.ErrNotFound) {
			err = uneventful.Errorf(uneventful.ErrNotFound, "unknown_command", "%s has no command %q; its commands are %s", domain, truncate(name, 64), list(rt.commands))
		}
		s.fail(w, r, err)
	case nethttp.MethodGet, nethttp.MethodHead:
		if err := uneventful.ValidID(r.PathValue("id")); err != nil {
			s.fail(w, r, err)
			return
		}
		s.fail(w, r, uneventful.Errorf(uneventful.ErrNotFound, "unknown_query", "%s has no query %q; its queries are %s", domain, truncate(name, 64), list(rt.queries)))
	default:
		s.notFound(w, r)
	}
}

// notFound answers every request no route matches, in JSON.
func (s *Server) notFound(w nethttp.ResponseWriter, r *nethttp.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics", "/openapi.json":
		w.Header().Set("Allow", "GET, HEAD")
		s.writeProblem(w, r, problem{
			status: nethttp.StatusMethodNotAllowed,
			kind:   "method_not_allowed",
			code:   "method_not_allowed",
			detail: fmt.Sprintf("%s is not allowed here: use GET", r.Method),
		}, nil)
		return
	}
	s.writeProblem(w, r, problem{
		status: nethttp.StatusNotFound,
		kind:   kindNotFound.name,
		code:   "not_found",
		detail: fmt.Sprintf("there is no route %s %s: send commands as POST /<domain>/<id>/<command> and queries as GET /<domain>/<id>/<query>", r.Method, truncate(r.URL.Path, 100)),
	}, nil)
}

// healthz is liveness: the process serves requests.
func (s *Server) healthz(w nethttp.ResponseWriter, r *nethttp.Request) {
	setJSONHeaders(w.Header())
	w.WriteHeader(nethttp.StatusOK)
	w.Write(healthzBody)
}

var healthzBody = []byte(`{"status":"ok"}` + "\n")

// readyBody is the answer of GET /readyz when ready.
type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// notReadyBody is the answer of GET /readyz when not ready: the error
// shape, plus the checks.
type notReadyBody struct {
	errorBody
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz is readiness: every Ready check passes within ReadyTimeout, and
// the server is not shutting down.
func (s *Server) readyz(w nethttp.ResponseWriter, r *nethttp.Request) {
	type result struct {
		name string
		err  error
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.ReadyTimeout)
	defer cancel()
	results := make(chan result, len(s.Ready))
	for name, check := range s.Ready {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{name, fmt.Errorf("check panicked: %v", p)}
				}
			}()
			results <- result{name, check(ctx)}
		}()
	}
	checks := make(map[string]string, len(s.Ready))
	var failed []string
	for range s.Ready {
		var res result
		select {
		case res = <-results:
		case <-ctx.Done():
			// A check that ignores its context must not hold up the
			// answer; name every check still out as timed out.
			for name := range s.Ready {
				if _, done := checks[name]; !done {
					checks[name] = fmt.Sprintf("no answer within %v", s.ReadyTimeout)
					failed = append(failed, name+": "+checks[name])
				}
			}
			goto answer
		}
		if res.err != nil {
			msg := res.err.Error()
			if errors.Is(res.err, context.DeadlineExceeded) {
				msg = fmt.Sprintf("no answer within %v: %s", s.ReadyTimeout, msg)
			}
			checks[res.name] = msg
			failed = append(failed, res.name+": "+msg)
		} else {
			checks[res.name] = "ok"
		}
	}
answer:
	if s.draining.Load() {
		failed = append(failed, "the server is shutting down")
	}
	if len(failed) == 0 {
		s.writeJSON(w, r, nethttp.StatusOK, readyBody{Status: "ready", Checks: checks}, nil)
		return
	}
	sort.Strings(failed)
	w.Header().Set("Retry-After", "1")
	body := notReadyBody{
		errorBody: errorBody{
			Detail: "not ready: " + strings.Join(failed, "; "),
			Method: r.Method,
			URL:    r.URL.RequestURI(),
			Error:  kindUnavailable.name,
			Code:   "not_ready",
		},
		Status: "not_ready",
		Checks: checks,
	}
	s.writeJSON(w, r, nethttp.StatusServiceUnavailable, body, nil)
}

// list joins names for a message.
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
