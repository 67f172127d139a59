// Package http is the HTTP server of every domain: it routes requests to the
// domains' commands and queries, turns request bodies into command events,
// sends them over a uneventful.Bus to a writer, and maps replies and errors
// to status codes and JSON bodies.
//
// Routes are generated from the domains, so a new domain needs no change
// here:
//
//	POST /{domain}/{id}/{command}   send a command, e.g. POST /wallet/{id}/credit
//	GET  /{domain}/{id}/{query}     run a query,    e.g. GET  /wallet/{id}/balance
//	GET  /healthz                   liveness: 200 while the process serves
//	GET  /readyz                    readiness: 200 when every Ready check passes
//	GET  /metrics                   Prometheus metrics (Server.Metrics)
//	GET  /openapi.json              the OpenAPI 3.1 document, generated from the domains
//
// An accepted command answers 200:
//
//	{"success":true,"detail":"credit accepted","event_id":"...","version":3,"balance":5}
//
// where the fields after version are the domain's view of the entity, copied
// byte for byte (numbers are never converted to floating point). Every other
// answer has the error shape, with a sentence for people in detail and a
// stable snake_case code for programs:
//
//	{"success":false,"detail":"...","method":"POST","url":"/wallet/.../debit","error":"rejected","code":"insufficient_funds"}
//
// A rejected command (409) also carries event_id, version and the view.
//
// Errors map to statuses by kind: uneventful.ErrInvalid 400,
// ErrNotFound 404, ErrRejected and ErrConflict 409,
// ErrIdempotencyMismatch 422, ErrUnavailable 503 (with Retry-After),
// ErrTimeout 504, anything else 500 with a generic detail (the error itself
// is logged, never sent).
//
// Commands are at most once: the Idempotency-Key request header (or, when
// absent, the generated event id) travels with the command, and the writer
// answers a retry with the original reply. The key is echoed in the
// Idempotency-Key response header.
package http
