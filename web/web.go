package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
)

// Defaults of the UI's settings.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultClientBuffer = 256
	DefaultMaxClients   = 100
	DefaultWriteTimeout = 10 * time.Second

	readTimeout  = 5 * time.Second
	defaultLimit = 50
	maxLimit     = 1000
)

// Log reads a domain's event log and state log; uneventful.Store is one.
// Its methods must be safe for concurrent use.
type Log interface {
	Events(ctx context.Context, q uneventful.EventQuery) ([]uneventful.Event, error)
	States(ctx context.Context, domain, entityID string, after int64, limit int) ([]uneventful.State, error)
}

var _ Log = uneventful.Store(nil)

// Feed subscribes to every recorded event of every domain, e.g. with a core
// NATS subscription to recorded.>. It calls deliver with the JSON of each
// event (an uneventful.Event), from one goroutine at a time and only after
// it has returned, until stop is called. deliver never blocks.
type Feed func(deliver func(event []byte)) (stop func(), err error)

// UI is the web page and the routes it reads. Fill its fields, then call
// Routes once and mount them with http.Server.Routes; zero fields get their
// defaults. Call Close to end the live streams before the HTTP server shuts
// down (they would otherwise hold the shutdown up).
type UI struct {
	// Domains are the domains whose event log and state log get routes,
	// GET /<domain>/{id}/events and /states.
	Domains []string
	// Logs reads each domain's logs, by domain name. A domain without one
	// (every domain in the split server role) answers those routes 501
	// with a note saying where the logs are.
	Logs map[string]Log
	// Feed is the live feed's source. Nil: GET /events/stream answers 501.
	Feed Feed
	// Role names this process in notes, e.g. "the server role". Default
	// "this process".
	Role string
	// Logger receives failures. Default slog.Default().
	Logger *slog.Logger
	// Heartbeat is how often an idle live stream gets a comment line.
	// Default 15s.
	Heartbeat time.Duration
	// ClientBuffer is how many events may wait for one live client; a
	// client that falls further behind is dropped. Default 256.
	ClientBuffer int
	// MaxClients caps the live streams open at once; more get 503.
	// Default 100.
	MaxClients int
	// WriteTimeout bounds each write to a live client; a client that
	// takes longer is dropped. Default 10s.
	WriteTimeout time.Duration

	once sync.Once
	hub  *hub
}

func (u *UI) init() {
	u.once.Do(func() {
		if u.Logger == nil {
			u.Logger = slog.Default()
		}
		if u.Role == "" {
			u.Role = "this process"
		}
		if u.Heartbeat <= 0 {
			u.Heartbeat = DefaultHeartbeat
		}
		if u.ClientBuffer <= 0 {
			u.ClientBuffer = DefaultClientBuffer
		}
		if u.MaxClients <= 0 {
			u.MaxClients = DefaultMaxClients
		}
		if u.WriteTimeout <= 0 {
			u.WriteTimeout = DefaultWriteTimeout
		}
		u.hub = &hub{feed: u.Feed, buffer: u.ClientBuffer, max: u.MaxClients, logger: u.Logger, clients: map[*client]struct{}{}}
	})
}

// Routes returns the page's routes, for http.Server.Routes. The page and
// its files hold no data and need no API key; the rest need the read scope.
func (u *UI) Routes() []uehttp.Route {
	u.init()
	routes := []uehttp.Route{
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(u.page), Public: true},
		{Pattern: "GET /ui/{file}", Handler: http.HandlerFunc(u.asset), Public: true},
		{Pattern: "GET /ksuid", Handler: http.HandlerFunc(newID), Public: true},
		{Pattern: "GET /events/stream", Handler: http.HandlerFunc(u.stream), Scope: uehttp.ScopeRead},
	}
	for _, d := range u.Domains {
		routes = append(routes,
			uehttp.Route{Pattern: "GET /" + d + "/{id}/events", Handler: u.events(d), Scope: uehttp.ScopeRead},
			uehttp.Route{Pattern: "GET /" + d + "/{id}/states", Handler: u.states(d), Scope: uehttp.ScopeRead},
		)
	}
	return routes
}

// Close ends every live stream, each with a last "closing" message, and
// refuses new ones. The other routes keep working.
func (u *UI) Close() {
	u.init()
	u.hub.close()
}

//go:embed assets
var assetFS embed.FS

// asset is an embedded file ready to serve.
type asset struct {
	body  []byte
	etag  string
	ctype string
}

var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		m[path.Base(p)] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("web: read embedded assets: %v", err))
	}
	return m
}()

// contentSecurityPolicy lets the page load and connect only to its own
// origin, and never be framed.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// Revalidate every time: the files change with the binary.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func (u *UI) page(w http.ResponseWriter, r *http.Request) {
	serveAsset(w, r, assets["index.html"])
}

func (u *UI) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	a, ok := assets[name]
	if !ok || name == "index.html" {
		writeError(w, r, http.StatusNotFound, "not_found", "not_found", fmt.Sprintf("there is no file %q under /ui/", truncate(name, 64)))
		return
	}
	serveAsset(w, r, a)
}

// newID answers GET /ksuid with a new KSUID, the name of a new entity.
func newID(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		ID string `json:"id"`
	}{uneventful.NewID()})
}

// eventView is an event as the page sees it: the event without the request
// hash and the stored reply, which the outcome, reason and message say in
// short.
type eventView struct {
	Sequence       int64              `json:"sequence,omitempty"`
	EventID        string             `json:"event_id"`
	CorrelationID  string             `json:"correlation_id"`
	CausationID    string             `json:"causation_id"`
	Timestamp      time.Time          `json:"timestamp"`
	SourceName     string             `json:"source_name"`
	SourceID       string             `json:"source_id"`
	TypeName       string             `json:"type_name"`
	Domain         string             `json:"domain"`
	EntityID       string             `json:"entity_id"`
	Command        string             `json:"command"`
	Version        int64              `json:"version"`
	Outcome        uneventful.Outcome `json:"outcome"`
	Reason         string             `json:"reason,omitempty"`
	Message        string             `json:"message,omitempty"`
	Data           json.RawMessage    `json:"data"`
	IdempotencyKey string             `json:"idempotency_key"`
}

func viewOf(e *uneventful.Event) eventView {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return eventView{
		Sequence: e.Sequence, EventID: e.EventID, CorrelationID: e.CorrelationID, CausationID: e.CausationID,
		Timestamp: e.Timestamp.UTC(), SourceName: e.SourceName, SourceID: e.SourceID, TypeName: e.TypeName,
		Domain: e.Domain, EntityID: e.EntityID, Command: e.Command, Version: e.Version, Outcome: e.Outcome,
		Reason: e.Reason, Message: e.Message, Data: data, IdempotencyKey: e.IdempotencyKey,
	}
}

// stateView is a row of the state log.
type stateView struct {
	Version   int64           `json:"version"`
	Timestamp time.Time       `json:"timestamp"`
	EventID   string          `json:"event_id"`
	Data      json.RawMessage `json:"data"`
}

// events answers GET /<domain>/{id}/events?after=<sequence>&limit=<n> with
// one page of the entity's event log, every attempt with its outcome, in
// stream order, and the after of the next page (null on the last page).
func (u *UI) events(domain string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, after, limit, ok := u.logRequest(w, r, domain, "event log", "events")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		// AfterVersion 0 starts at the attempts rejected before the first
		// change; the sequence skips what the caller has seen.
		events, err := u.Logs[domain].Events(ctx, uneventful.EventQuery{Domain: domain, EntityID: id, AfterSequence: after, Limit: limit})
		if err != nil {
			u.readFailed(w, r, "event log", err)
			return
		}
		page := struct {
			EntityID  string      `json:"entity_id"`
			Events    []eventView `json:"events"`
			NextAfter *int64      `json:"next_after"`
		}{EntityID: id, Events: make([]eventView, len(events))}
		for i := range events {
			page.Events[i] = viewOf(&events[i])
		}
		if len(events) == limit {
			page.NextAfter = &events[len(events)-1].Sequence
		}
		writeJSON(w, http.StatusOK, page)
	}
}

// states answers GET /<domain>/{id}/states?after=<version>&limit=<n> with
// one page of the entity's state log, oldest first.
func (u *UI) states(domain string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, after, limit, ok := u.logRequest(w, r, domain, "state log", "states")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		states, err := u.Logs[domain].States(ctx, domain, id, after, limit)
		if err != nil {
			u.readFailed(w, r, "state log", err)
			return
		}
		page := struct {
			EntityID  string      `json:"entity_id"`
			States    []stateView `json:"states"`
			NextAfter *int64      `json:"next_after"`
		}{EntityID: id, States: make([]stateView, len(states))}
		for i, s := range states {
			page.States[i] = stateView{Version: s.Version, Timestamp: s.Timestamp.UTC(), EventID: s.EventID, Data: s.Data}
		}
		if len(states) == limit {
			page.NextAfter = &states[len(states)-1].Version
		}
		writeJSON(w, http.StatusOK, page)
	}
}

// logRequest checks a log request: the id, the paging parameters, and that
// this process has the domain's logs. It answers the request itself when
// one fails.
func (u *UI) logRequest(w http.ResponseWriter, r *http.Request, domain, what, cli string) (id string, after int64, limit int, ok bool) {
	id = r.PathValue("id")
	if err := uneventful.ValidID(id); err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid", "invalid_id", uneventful.ErrorMessage(err))
		return "", 0, 0, false
	}
	if u.Logs[domain] == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "log_unavailable", fmt.Sprintf(
			"the %s is not available from %s: it reads only the read model, which holds accepted changes alone. "+
				"Read the %s where the %s writer's store is: `uneventful %s --data DIR --entity %s.%s` for SQLite, or the table %s in PostgreSQL.",
			what, u.Role, what, domain, cli, domain, id, map[string]string{"events": "event", "states": "state"}[cli]))
		return "", 0, 0, false
	}
	q := r.URL.Query()
	n, err := intParam(q, "limit", defaultLimit, 1, maxLimit, "invalid_limit", fmt.Sprintf("a whole number from 1 to %d", maxLimit))
	if err == nil {
		want := "a version: a whole number, 0 or more"
		if cli == "events" {
			want = "a sequence: a whole number, 0 or more"
		}
		after, err = intParam(q, "after", 0, 0, 1<<63-1, "invalid_after", want)
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid", uneventful.ErrorCode(err), uneventful.ErrorMessage(err))
		return "", 0, 0, false
	}
	return id, after, int(n), true
}

// readFailed answers a failed read of a log.
func (u *UI) readFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, r, http.StatusGatewayTimeout, "timeout", "timeout", fmt.Sprintf("the event store did not answer within %v; retry shortly", readTimeout))
	case errors.Is(err, uneventful.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "unavailable", "the event store is unavailable right now; retry shortly")
	default:
		u.Logger.Error("web: read "+what, "path", r.URL.Path, "err", err)
		writeError(w, r, http.StatusInternalServerError, "internal", "internal", "the server failed to read the "+what+"; the failure was logged")
	}
}

// intParam returns the query parameter name as an integer from lo to hi,
// def if it is absent.
func intParam(params map[string][]string, name string, def, lo, hi int64, code, want string) (int64, error) {
	vs, ok := params[name]
	if !ok {
		return def, nil
	}
	if len(vs) > 1 {
		return 0, uneventful.Errorf(uneventful.ErrInvalid, code, "%s is given %d times; give it once", name, len(vs))
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, uneventful.Errorf(uneventful.ErrInvalid, code, "%s must be %s; got %q", name, want, truncate(vs[0], 32))
	}
	return n, nil
}

// errorBody is the JSON API's error shape (see package http).
type errorBody struct {
	Success bool   `json:"success"`
	Detail  string `json:"detail"`
	Method  string `json:"method"`
	URL     string `json:"url"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, kind, code, detail string) {
	writeJSON(w, status, errorBody{Detail: detail, Method: r.Method, URL: r.URL.RequestURI(), Error: kind, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only damaged data (a stored row that is not JSON) gets here.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"detail":"the server failed to encode its answer","error":"internal","code":"internal"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
