package uneventful

import "encoding/json"

// API describes a domain's HTTP API for the OpenAPI 3.1 document that
// package http serves at GET /openapi.json. Every schema is a JSON Schema
// (draft 2020-12, the dialect of OpenAPI 3.1) written as JSON, e.g.
// `{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}`.
// Everything is optional: a command, view or query it does not describe is
// documented as any JSON object.
//
// Describe what the code does, no more: the document is checked against
// real answers (see package http's tests), and clients generate code from it.
type API struct {
	// Commands describes the commands by name; Operation.Body is the
	// request body.
	Commands map[string]Operation
	// View is the schema of the object Model.View returns. Its properties
	// are added to the answer of an accepted or a rejected command.
	View json.RawMessage
	// Queries describes the queries by name; Operation.Params are the URL
	// query parameters and Operation.Answer the 200 answer.
	Queries map[string]Operation
}

// Operation describes one command or query of an API.
type Operation struct {
	// Summary is one line saying what the operation does.
	Summary string
	// Body is the schema of a command's request body.
	Body json.RawMessage
	// Params are a query's URL query parameters.
	Params []Param
	// Answer is the schema of a query's 200 answer.
	Answer json.RawMessage
}

// Param is a URL query parameter of a query.
type Param struct {
	Name        string
	Description string
	// Required is true when the query refuses to answer without it.
	Required bool
	// Schema is the parameter's schema, e.g. `{"type":"integer","minimum":1}`.
	Schema json.RawMessage
}

// APIDescriber is a Model that describes its HTTP API. Domain implements it
// with its API field; a hand-written Model may implement it too.
type APIDescriber interface {
	// DescribeAPI returns the description, or nil for none.
	DescribeAPI() *API
}

var _ APIDescriber = (*Domain[int])(nil)

// DescribeAPI implements APIDescriber: it returns d.API.
func (d *Domain[S]) DescribeAPI() *API { return d.API }
