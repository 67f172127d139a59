package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	nethttp "net/http"
	"slices"
	"sync"

	"github.com/uneventful/uneventful"
)

// kind is an error kind as the API shows it: the status it maps to, the
// short name in the "error" field, and a generic sentence for errors that
// carry no message of their own for people.
type kind struct {
	err     error
	status  int
	name    string
	generic string
}

var (
	kindInvalid     = kind{uneventful.ErrInvalid, nethttp.StatusBadRequest, "invalid", "the request is not valid"}
	kindNotFound    = kind{uneventful.ErrNotFound, nethttp.StatusNotFound, "not_found", "not found"}
	kindRejected    = kind{uneventful.ErrRejected, nethttp.StatusConflict, "rejected", "the command was rejected"}
	kindFunds       = kind{uneventful.ErrInsufficientFunds, nethttp.StatusConflict, "rejected", "the command was rejected: there are not enough funds"}
	kindConflict    = kind{uneventful.ErrConflict, nethttp.StatusConflict, "conflict", "the entity was changed by another request at the same time; retry"}
	kindMismatch    = kind{uneventful.ErrIdempotencyMismatch, nethttp.StatusUnprocessableEntity, "idempotency_mismatch", "this Idempotency-Key was used before with a different request; use a new key for a new request"}
	kindDuplicate   = kind{uneventful.ErrDuplicate, nethttp.StatusConflict, "conflict", "this request was recorded already"}
	kindUnavailable = kind{uneventful.ErrUnavailable, nethttp.StatusServiceUnavailable, "unavailable", "a service this request needs is unavailable right now; nothing was changed. Retry shortly."}
	kindTimeout     = kind{uneventful.ErrTimeout, nethttp.StatusGatewayTimeout, "timeout", "no answer in time; retry"}
	kindInternal    = kind{uneventful.ErrInternal, nethttp.StatusInternalServerError, "internal", "the server failed to handle the request; the failure was logged"}

	kindUnauthorized = kind{errUnauthorized, nethttp.StatusUnauthorized, "unauthorized", "this server needs a valid API key"}
	kindForbidden    = kind{errForbidden, nethttp.StatusForbidden, "forbidden", "the API key may not do this"}

	// kinds in the order they are tried: the more specific first.
	kinds = []kind{kindMismatch, kindInvalid, kindNotFound, kindRejected, kindFunds, kindConflict, kindDuplicate, kindUnavailable, kindTimeout, kindUnauthorized, kindForbidden}
)

// Errors of API keys, known only to this package.
var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)

// kindOf returns err's kind; kindInternal for an error of no known kind.
// An *uneventful.Error's own kind wins over the kinds of causes it wraps.
func kindOf(err error) kind {
	var e *uneventful.Error
	if errors.As(err, &e) && e.Kind != nil {
		err = e.Kind
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k
		}
	}
	return kindInternal
}

func isUneventfulError(err error) bool {
	var e *uneventful.Error
	return errors.As(err, &e)
}

// problem is an error answer: status and the fields of the error shape.
type problem struct {
	status int
	kind   string
	code   string
	detail string
}

// eventInfo adds the event fields to an error answer about a command.
type eventInfo struct {
	id      string
	version *int64
	view    json.RawMessage
}

// errorBody is the error shape of every 4xx and 5xx answer.
type errorBody struct {
	Success bool   `json:"success"`
	Detail  string `json:"detail"`
	Method  string `json:"method"`
	URL     string `json:"url"`
	Error   string `json:"error"`
	Code    string `json:"code"`
	EventID string `json:"event_id,omitempty"`
	Version *int64 `json:"version,omitempty"`
}

// acceptedBody is the answer to an accepted command, before the view's
// fields are added.
type acceptedBody struct {
	Success bool   `json:"success"`
	Detail  string `json:"detail"`
	EventID string `json:"event_id"`
	Version int64  `json:"version"`
}

// fail answers with err mapped to its status.
func (s *Server) fail(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	s.failEvent(w, r, err, nil)
}

func (s *Server) failEvent(w nethttp.ResponseWriter, r *nethttp.Request, err error, ev *eventInfo) {
	k := kindOf(err)
	p := problem{status: k.status, kind: k.name, code: uneventful.ErrorCode(err), detail: k.generic}
	switch {
	case k.status == nethttp.StatusInternalServerError:
		// Never show an unexpected error: it may hold internals.
		p.code = "internal"
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err)}
		if ev != nil {
			attrs = append(attrs, slog.String("event_id", ev.id))
		}
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "http: internal error", attrs...)
	case isUneventfulError(err):
		// An *Error's message is written for people.
		p.detail = uneventful.ErrorMessage(err)
	default:
		// A sentinel wrapped with driver context: the generic sentence
		// for its kind, and the error in the log.
		if k.status >= 500 {
			s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "http: request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		}
	}
	s.writeProblem(w, r, p, ev)
}

// writeProblem writes an error answer.
func (s *Server) writeProblem(w nethttp.ResponseWriter, r *nethttp.Request, p problem, ev *eventInfo) {
	if p.status == nethttp.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if p.code == "" {
		p.code = p.kind
	}
	noteProblem(w, p.kind, p.code)
	body := errorBody{Detail: p.detail, Method: r.Method, URL: r.URL.RequestURI(), Error: p.kind, Code: p.code}
	var view json.RawMessage
	if ev != nil {
		body.EventID, body.Version, view = ev.id, ev.version, ev.view
	}
	s.writeJSON(w, r, p.status, body, view)
}

// writeReply answers a command with the writer's reply.
func (s *Server) writeReply(w nethttp.ResponseWriter, r *nethttp.Request, ev *uneventful.Event, rep *uneventful.Reply) {
	if rep == nil {
		s.failEvent(w, r, errors.New("bus returned neither a reply nor an error"), &eventInfo{id: ev.EventID})
		return
	}
	id := rep.EventID
	if id == "" {
		id = ev.EventID
	}
	if rep.Error != nil {
		s.failEvent(w, r, rep.Error.Err(), &eventInfo{id: id})
		return
	}
	switch rep.Outcome {
	case uneventful.Accepted:
		s.writeJSON(w, r, nethttp.StatusOK, acceptedBody{
			Success: true,
			Detail:  ev.Command + " accepted",
			EventID: id,
			Version: rep.Version,
		}, rep.View)
	case uneventful.Rejected:
		p := problem{status: nethttp.StatusConflict, kind: kindRejected.name, code: rep.Code, detail: rep.Message}
		if p.detail == "" {
			p.detail = "the " + ev.Command + " command was rejected"
		}
		version := rep.Version
		s.writeProblem(w, r, p, &eventInfo{id: id, version: &version, view: rep.View})
	default:
		s.failEvent(w, r, errors.New("reply has outcome "+string(rep.Outcome)+" and no error"), &eventInfo{id: id})
	}
}

// Header values shared by every answer; never modified in place.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
	noSniff         = []string{"nosniff"}
)

func setJSONHeaders(h nethttp.Header) {
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
}

// encoder is a reusable buffer and JSON encoder: one per answer in flight.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := new(encoder)
	e.enc = json.NewEncoder(&e.buf)
	// Answers are application/json with nosniff, never HTML: keep <, >
	// and & readable for people using curl.
	e.enc.SetEscapeHTML(false)
	return e
}}

// writeJSON writes v as JSON with a trailing newline. If view is a JSON
// object, its fields are appended to v's (which must encode as an object),
// byte for byte: numbers are never decoded, so money stays exact. A view
// field named like one of v's is left out.
func (s *Server) writeJSON(w nethttp.ResponseWriter, r *nethttp.Request, status int, v any, view json.RawMessage) {
	e := encoders.Get().(*encoder)
	defer func() {
		if e.buf.Cap() <= 64<<10 {
			encoders.Put(e)
		}
	}()
	e.buf.Reset()
	h := w.Header()
	setJSONHeaders(h)
	if err := e.enc.Encode(v); err != nil {
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "http: encode answer", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		// The error shape, which always encodes.
		noteProblem(w, kindInternal.name, "internal")
		e.buf.Reset()
		e.enc.Encode(errorBody{Detail: "the server failed to encode its answer; the failure was logged",
			Method: r.Method, URL: r.URL.RequestURI(), Error: kindInternal.name, Code: "internal"})
		w.WriteHeader(nethttp.StatusInternalServerError)
		w.Write(e.buf.Bytes())
		return
	}
	if len(view) > 0 {
		if err := mergeView(e, view); err != nil {
			s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "http: view left out of answer", slog.String("path", r.URL.Path), slog.Any("err", err))
		}
	}
	w.WriteHeader(status)
	w.Write(e.buf.Bytes())
}

// mergeView appends the fields of the JSON object view to the JSON object
// in e.buf (which ends in "}\n"), leaving out fields it has already. Values
// are copied as they are, only compacted; a view that is not an object is
// added as "view".
func mergeView(e *encoder, view json.RawMessage) (err error) {
	view = bytes.TrimSpace(view)
	if len(view) == 0 || bytes.Equal(view, []byte("null")) || bytes.Equal(view, []byte("{}")) {
		return nil
	}
	b := e.buf.Bytes()
	if len(b) < 3 || b[len(b)-2] != '}' || b[len(b)-1] != '\n' {
		return errors.New("answer is not a JSON object")
	}
	var base map[string]json.RawMessage
	if err := json.Unmarshal(b, &base); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if view[0] != '{' {
		if !json.Valid(view) {
			return errors.New("view is not JSON")
		}
		fields = map[string]json.RawMessage{"view": view}
	} else if err := json.Unmarshal(view, &fields); err != nil {
		return err
	}
	for k := range base {
		delete(fields, k)
	}
	if len(fields) == 0 {
		return nil
	}
	// Sorted keys: the same view always gives the same bytes, so a
	// retried command gets an identical answer.
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	n := e.buf.Len()
	defer func() {
		if err != nil { // leave the answer as it was
			e.buf.Truncate(n - 2)
			e.buf.WriteString("}\n")
		}
	}()
	e.buf.Truncate(n - 2) // "}\n"
	sep := len(base) > 0
	for _, k := range keys {
		if sep {
			e.buf.WriteByte(',')
		}
		sep = true
		if err = e.enc.Encode(k); err != nil {
			return err
		}
		e.buf.Truncate(e.buf.Len() - 1) // "\n"
		e.buf.WriteByte(':')
		if err = json.Compact(&e.buf, fields[k]); err != nil {
			return err
		}
	}
	e.buf.WriteString("}\n")
	return nil
}
