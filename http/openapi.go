package http

import (
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"runtime/debug"
	"strings"

	"github.com/uneventful/uneventful"
)

// obj is a JSON object of the OpenAPI document.
type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/" + name} }

// anyObject is the schema of what a domain does not describe.
var anyObject = json.RawMessage(`{"type":"object"}`)

// openAPI returns the OpenAPI 3.1 document of the server, generated from its
// domains (and their uneventful.API descriptions, where they have one).
func (s *Server) openAPI() ([]byte, error) {
	paths := obj{}
	tags := []obj{}
	secured := s.APIKeys != nil
	for _, name := range s.names {
		rt := s.domains[name]
		var api uneventful.API
		if d, ok := rt.model.(uneventful.APIDescriber); ok && d.DescribeAPI() != nil {
			api = *d.DescribeAPI()
		}
		tags = append(tags, obj{"name": name, "description": "The " + name + " domain: commands " + list(rt.commands) + "; queries " + list(rt.queries) + "."})
		view := api.View
		if err := checkSchema(view); err != nil {
			return nil, fmt.Errorf("http: domain %s: API.View: %w", name, err)
		}
		for _, c := range rt.commands {
			op := api.Commands[c]
			body := op.Body
			if err := checkSchema(body); err != nil {
				return nil, fmt.Errorf("http: domain %s: API.Commands[%q].Body: %w", name, c, err)
			}
			if body == nil {
				body = anyObject
			}
			summary := op.Summary
			if summary == "" {
				summary = "Send the " + c + " command to a " + name + "."
			}
			addOp(paths, "/"+name+"/{id}/"+c, "post", s.commandOp(name, c, summary, body, view, secured))
		}
		for _, q := range rt.queries {
			op := api.Queries[q]
			answer := op.Answer
			if err := checkSchema(answer); err != nil {
				return nil, fmt.Errorf("http: domain %s: API.Queries[%q].Answer: %w", name, q, err)
			}
			if answer == nil {
				answer = anyObject
			}
			params := []any{ref("parameters/EntityID")}
			for _, p := range op.Params {
				if err := checkSchema(p.Schema); err != nil {
					return nil, fmt.Errorf("http: domain %s: API.Queries[%q] parameter %q: %w", name, q, p.Name, err)
				}
				schema := p.Schema
				if schema == nil {
					schema = json.RawMessage(`{"type":"string"}`)
				}
				params = append(params, obj{"name": p.Name, "in": "query", "required": p.Required, "description": p.Description, "schema": schema})
			}
			summary := op.Summary
			if summary == "" {
				summary = "Read the " + q + " of a " + name + "."
			}
			responses := obj{
				"200": obj{"description": "The answer, from the read model.", "content": jsonContent(answer)},
				"400": errorResponse("Invalid: the id or a parameter is not valid."),
				"404": errorResponse("Not found: the entity has no accepted change yet."),
				"500": errorResponse("The server failed; the failure was logged."),
				"503": unavailableResponse("The read model is unreachable or being rebuilt; retry shortly."),
				"504": errorResponse("The read model did not answer in time; retry."),
			}
			op2 := obj{
				"operationId": "get." + name + "." + q,
				"summary":     summary,
				"tags":        []string{name},
				"parameters":  params,
				"responses":   responses,
			}
			secure(op2, secured, "read")
			addOp(paths, "/"+name+"/{id}/"+q, "get", op2)
		}
	}
	paths["/healthz"] = obj{"get": obj{
		"operationId": "healthz",
		"summary":     "Liveness: 200 while the process serves requests.",
		"tags":        []string{"operations"},
		"responses":   obj{"200": obj{"description": "Alive.", "content": jsonContent(ref("schemas/Health"))}},
	}}
	paths["/readyz"] = obj{"get": obj{
		"operationId": "readyz",
		"summary":     "Readiness: 200 when every dependency answers, else 503 naming what failed.",
		"tags":        []string{"operations"},
		"responses": obj{
			"200": obj{"description": "Ready: every check passed.", "content": jsonContent(ref("schemas/Ready"))},
			"503": obj{"description": "Not ready: a check failed, or the server is shutting down.", "headers": obj{"Retry-After": ref("headers/RetryAfter")}, "content": jsonContent(ref("schemas/NotReady"))},
		},
	}}
	paths["/metrics"] = obj{"get": obj{
		"operationId": "metrics",
		"summary":     "Prometheus metrics of this process (docs/METRICS.md lists them).",
		"tags":        []string{"operations"},
		"responses": obj{"200": obj{
			"description": "The metrics in the Prometheus text format, or OpenMetrics when the Accept header asks for it.",
			"content": obj{
				"text/plain":                   obj{"schema": obj{"type": "string"}},
				"application/openmetrics-text": obj{"schema": obj{"type": "string"}},
			},
		}},
	}}
	paths["/openapi.json"] = obj{"get": obj{
		"operationId": "openapi",
		"summary":     "This document.",
		"tags":        []string{"operations"},
		"responses":   obj{"200": obj{"description": "The OpenAPI 3.1 document of this server.", "content": jsonContent(obj{"type": "object"})}},
	}}
	tags = append(tags, obj{"name": "operations", "description": "Health, readiness, metrics and this document; they need no API key."})

	components := obj{
		"schemas":    schemas,
		"parameters": parameters,
		"headers":    headers,
	}
	if secured {
		components["securitySchemes"] = obj{
			"bearer": obj{"type": "http", "scheme": "bearer", "description": "An API key as Authorization: Bearer <key>."},
			"apiKey": obj{"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key as X-API-Key: <key>."},
		}
	}
	doc := obj{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": obj{
			"title":   "uneventful",
			"version": version(),
			"description": "Event-sourced domains over NATS. Commands are POST /{domain}/{id}/{command} with a JSON body; " +
				"queries are GET /{domain}/{id}/{query}. Every 4xx and 5xx answer has the Error shape: a sentence in detail, " +
				"a stable code for programs. Send an Idempotency-Key header to make a command safe to retry.",
		},
		"tags":       tags,
		"paths":      paths,
		"components": components,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("http: encode the OpenAPI document: %w", err)
	}
	return append(b, '\n'), nil
}

// commandOp is the operation of a domain's command.
func (s *Server) commandOp(domain, command, summary string, body, view json.RawMessage, secured bool) obj {
	accepted := any(ref("schemas/Accepted"))
	rejected := any(ref("schemas/Rejected"))
	if view != nil {
		accepted = obj{"allOf": []any{ref("schemas/Accepted"), view}}
		rejected = obj{"allOf": []any{ref("schemas/Rejected"), view}}
	}
	commandHeaders := obj{"Idempotency-Key": ref("headers/IdempotencyKey"), "X-Correlation-ID": ref("headers/CorrelationID")}
	op := obj{
		"operationId": "post." + domain + "." + command,
		"summary":     summary,
		"tags":        []string{domain},
		"parameters":  []any{ref("parameters/EntityID"), ref("parameters/IdempotencyKey"), ref("parameters/CorrelationID")},
		"requestBody": obj{"required": true, "content": jsonContent(body)},
		"responses": obj{
			"200": obj{
				"description": "Accepted: recorded durably and applied. The properties after version are the entity's view.",
				"headers":     commandHeaders,
				"content":     jsonContent(accepted),
			},
			"400": errorResponse("Invalid: the id, the body or a header is not valid; nothing was sent."),
			"409": obj{
				"description": "Rejected by the domain against the entity's state (error \"rejected\", with the entity's version and view; the attempt is recorded), or a conflict.",
				"headers":     commandHeaders,
				"content":     jsonContent(obj{"anyOf": []any{rejected, ref("schemas/Error")}}),
			},
			"413": errorResponse("The body is larger than the server's limit."),
			"415": errorResponse("The Content-Type is not JSON."),
			"422": errorResponse("The Idempotency-Key was used before with a different request."),
			"500": errorResponse("The server failed; the failure was logged."),
			"503": unavailableResponse("No writer could take the command now, or the server is overloaded; nothing was applied. Retry shortly."),
			"504": errorResponse("No answer in time: the command may or may not have been applied. Retry with the same Idempotency-Key."),
		},
	}
	secure(op, secured, "write")
	return op
}

// addOp adds an operation to the path item of path: a command and a query
// of the same name share one.
func addOp(paths obj, path, method string, op obj) {
	item, ok := paths[path].(obj)
	if !ok {
		item = obj{}
		paths[path] = item
	}
	item[method] = op
}

// secure adds the API key requirement to an operation of a server that
// needs one.
func secure(op obj, secured bool, scope string) {
	if !secured {
		return
	}
	op["security"] = []any{obj{"bearer": []string{}}, obj{"apiKey": []string{}}}
	responses := op["responses"].(obj)
	responses["401"] = errorResponse("No API key, or not a valid one.")
	responses["403"] = errorResponse("The API key lacks the " + scope + " scope.")
}

func jsonContent(schema any) obj {
	return obj{"application/json": obj{"schema": schema}}
}

func errorResponse(description string) obj {
	return obj{"description": description, "content": jsonContent(ref("schemas/Error"))}
}

func unavailableResponse(description string) obj {
	r := errorResponse(description)
	r["headers"] = obj{"Retry-After": ref("headers/RetryAfter")}
	return r
}

// checkSchema checks that a domain's schema is a JSON object, if given.
func checkSchema(s json.RawMessage) error {
	if s == nil {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(s, &v); err != nil {
		return fmt.Errorf("not a JSON Schema object: %v", err)
	}
	return nil
}

// version is the module's version for the document, "devel" in a build
// from a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "devel"
}

// The shared parts of the document.
var (
	schemas = obj{
		"Error": obj{
			"type":        "object",
			"description": "Every 4xx and 5xx answer.",
			"required":    []string{"success", "detail", "method", "url", "error", "code"},
			"properties": obj{
				"success":  obj{"const": false},
				"detail":   obj{"type": "string", "description": "What was wrong, in words for people."},
				"method":   obj{"type": "string", "description": "The request's method."},
				"url":      obj{"type": "string", "description": "The request's path and query."},
				"error":    obj{"type": "string", "description": "The kind: invalid, not_found, rejected, conflict, idempotency_mismatch, unavailable, timeout, internal, too_large, unsupported_media_type, method_not_allowed, unauthorized or forbidden."},
				"code":     obj{"type": "string", "description": "A stable snake_case code for programs, e.g. insufficient_funds."},
				"event_id": obj{"type": "string", "description": "The command's event id, once it had one."},
				"version":  obj{"type": "integer", "description": "The entity's version, in a rejection."},
			},
		},
		"Accepted": obj{
			"type":        "object",
			"description": "The answer to an accepted command; the domain's view of the entity follows.",
			"required":    []string{"success", "detail", "event_id", "version"},
			"properties": obj{
				"success":  obj{"const": true},
				"detail":   obj{"type": "string", "description": "\"<command> accepted\"."},
				"event_id": obj{"type": "string", "description": "The recorded event's id (a KSUID)."},
				"version":  obj{"type": "integer", "minimum": 1, "description": "The entity's version after the change."},
			},
		},
		"Rejected": obj{
			"description": "The answer to a command the domain rejected: the Error shape with error \"rejected\", the recorded event's id, the entity's unchanged version, and its view.",
			"allOf": []any{
				ref("schemas/Error"),
				obj{
					"required":   []string{"event_id", "version"},
					"properties": obj{"error": obj{"const": "rejected"}, "version": obj{"type": "integer", "minimum": 0}},
				},
			},
		},
		"Health": obj{
			"type":       "object",
			"required":   []string{"status"},
			"properties": obj{"status": obj{"const": "ok"}},
		},
		"Ready": obj{
			"type":     "object",
			"required": []string{"status", "checks"},
			"properties": obj{
				"status": obj{"const": "ready"},
				"checks": ref("schemas/Checks"),
			},
		},
		"NotReady": obj{
			"description": "The Error shape, with the status of every check.",
			"allOf": []any{
				ref("schemas/Error"),
				obj{
					"required":   []string{"status", "checks"},
					"properties": obj{"status": obj{"const": "not_ready"}, "checks": ref("schemas/Checks")},
				},
			},
		},
		"Checks": obj{
			"type":                 "object",
			"description":          "Each dependency check by name: \"ok\", or what failed.",
			"additionalProperties": obj{"type": "string"},
		},
	}
	parameters = obj{
		"EntityID": obj{
			"name": "id", "in": "path", "required": true,
			"description": "The entity's id: a 27-character KSUID (uneventful ksuid prints one).",
			"schema":      obj{"type": "string", "pattern": "^[0-9A-Za-z]{27}$"},
		},
		"IdempotencyKey": obj{
			"name": "Idempotency-Key", "in": "header", "required": false,
			"description": "Makes a retry safe: the same key with the same body returns the original answer and applies nothing; with another body it is refused (422). Default: the generated event id.",
			"schema":      obj{"type": "string", "minLength": 1, "maxLength": 255},
		},
		"CorrelationID": obj{
			"name": "X-Correlation-ID", "in": "header", "required": false,
			"description": "Recorded with the event to tie it to a wider request; default the event id.",
			"schema":      obj{"type": "string", "maxLength": 128},
		},
	}
	headers = obj{
		"IdempotencyKey": obj{"description": "The command's idempotency key: the one sent, or the generated one.", "schema": obj{"type": "string"}},
		"CorrelationID":  obj{"description": "The command's correlation id.", "schema": obj{"type": "string"}},
		"RetryAfter":     obj{"description": "Seconds to wait before retrying.", "schema": obj{"type": "string"}},
	}
)

// serveOpenAPI answers GET /openapi.json.
func (s *Server) serveOpenAPI(doc []byte) nethttp.HandlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) {
		setJSONHeaders(w.Header())
		w.WriteHeader(nethttp.StatusOK)
		w.Write(doc)
	}
}

// addOperations registers GET /metrics and GET /openapi.json, which, like
// /healthz and /readyz, need no API key.
func (s *Server) addOperations(mux *nethttp.ServeMux) error {
	doc, err := s.openAPI()
	if err != nil {
		return err
	}
	mux.Handle("GET /metrics", s.Metrics.Handler())
	mux.Handle("GET /openapi.json", s.serveOpenAPI(doc))
	return nil
}
