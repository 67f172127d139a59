// Package openapitest checks real HTTP answers against an OpenAPI 3.1
// document, such as the one package http serves at GET /openapi.json: the
// status must be documented for the operation, and the body must match the
// schema documented for it (JSON Schema draft 2020-12, validated with
// github.com/santhosh-tekuri/jsonschema). It is for tests.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL is where the document is kept in the schema compiler.
const docURL = "https://uneventful.invalid/openapi.json"

// Doc is an OpenAPI document loaded for checking answers. It is safe for
// concurrent use.
type Doc struct {
	root  map[string]any
	paths []string // path templates

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
}

// Load reads an OpenAPI 3.1 document and checks its structure: every
// operation has responses, every path parameter is declared, operation ids
// are unique, and every schema of every response and request body
// compiles (so every $ref in them resolves).
func Load(doc []byte) (*Doc, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("openapi: not JSON: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("openapi: the document is not an object")
	}
	if ver, _ := root["openapi"].(string); !strings.HasPrefix(ver, "3.1.") {
		return nil, fmt.Errorf("openapi: version %q, want 3.1.x", root["openapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, root); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	d := &Doc{root: root, compiler: c, compiled: map[string]*jsonschema.Schema{}}
	paths, ok := root["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		return nil, errors.New("openapi: no paths")
	}
	ids := map[string]string{}
	for p, item := range paths {
		d.paths = append(d.paths, p)
		ops, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("openapi: path %s is not an object", p)
		}
		for method, o := range ops {
			op, ok := o.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s %s is not an object", method, p)
			}
			where := strings.ToUpper(method) + " " + p
			if id, _ := op["operationId"].(string); id != "" {
				if other, dup := ids[id]; dup {
					return nil, fmt.Errorf("openapi: operationId %q is used by %s and %s", id, other, where)
				}
				ids[id] = where
			}
			if err := d.checkParams(p, op); err != nil {
				return nil, fmt.Errorf("openapi: %s: %w", where, err)
			}
			responses, ok := op["responses"].(map[string]any)
			if !ok || len(responses) == 0 {
				return nil, fmt.Errorf("openapi: %s has no responses", where)
			}
			base := "/paths/" + escape(p) + "/" + method
			var ptrs []string
			if rb, ok := op["requestBody"].(map[string]any); ok {
				for ct := range content(rb) {
					ptrs = append(ptrs, base+"/requestBody/content/"+escape(ct)+"/schema")
				}
			}
			for status, r := range responses {
				resp, ok := d.deref(r).(map[string]any)
				if !ok {
					return nil, fmt.Errorf("openapi: %s response %s is not an object", where, status)
				}
				if _, ok := resp["description"].(string); !ok {
					return nil, fmt.Errorf("openapi: %s response %s has no description", where, status)
				}
				for ct := range content(resp) {
					ptrs = append(ptrs, base+"/responses/"+escape(status)+"/content/"+escape(ct)+"/schema")
				}
			}
			for _, ptr := range ptrs {
				if _, err := d.schema(ptr); err != nil {
					return nil, fmt.Errorf("openapi: %s: %w", where, err)
				}
			}
		}
	}
	// Longest first, so that a literal segment wins over a template.
	sort.Slice(d.paths, func(i, j int) bool { return d.paths[i] > d.paths[j] })
	return d, nil
}

// checkParams checks that every {name} of the path template is a declared
// path parameter of the operation.
func (d *Doc) checkParams(path string, op map[string]any) error {
	declared := map[string]bool{}
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		pm, ok := d.deref(p).(map[string]any)
		if !ok {
			return errors.New("a parameter is not an object")
		}
		if pm["in"] == "path" {
			if pm["required"] != true {
				return fmt.Errorf("path parameter %v is not required", pm["name"])
			}
			declared[fmt.Sprint(pm["name"])] = true
		}
	}
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && !declared[seg[1:len(seg)-1]] {
			return fmt.Errorf("path parameter %s is not declared", seg)
		}
	}
	return nil
}

// Check checks an answer to method path (with or without a query): its
// status must be documented for the operation, and its body must match the
// schema of its Content-Type.
func (d *Doc) Check(method, path string, status int, contentType string, body []byte) error {
	if u, err := url.Parse(path); err == nil {
		path = u.Path
	}
	tmpl, ok := d.match(path)
	if !ok {
		return fmt.Errorf("%s %s: no path of the document matches", method, path)
	}
	m := strings.ToLower(method)
	op, ok := d.root["paths"].(map[string]any)[tmpl].(map[string]any)[m].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s: the document has no %s operation on %s", method, path, method, tmpl)
	}
	responses := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	r, ok := responses[code]
	if !ok {
		code = code[:1] + "XX"
		if r, ok = responses[code]; !ok {
			code = "default"
			if r, ok = responses[code]; !ok {
				return fmt.Errorf("%s %s (%s): status %d is not documented", method, path, tmpl, status)
			}
		}
	}
	cts := content(d.deref(r).(map[string]any))
	if len(cts) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s %s: status %d documents no content, got %d bytes", method, path, status, len(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s %s: Content-Type %q: %v", method, path, contentType, err)
	}
	if _, ok := cts[mt]; !ok {
		return fmt.Errorf("%s %s: status %d: Content-Type %s is not documented", method, path, status, mt)
	}
	sch, err := d.schema("/paths/" + escape(tmpl) + "/" + m + "/responses/" + escape(code) + "/content/" + escape(mt) + "/schema")
	if err != nil {
		return err
	}
	var v any = string(body)
	if mt == "application/json" {
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("%s %s: the body is not JSON: %v\n%s", method, path, err, body)
		}
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %s: status %d: the body does not match the document (%s %s responses %s):\n%v\n%s", method, path, status, strings.ToUpper(m), tmpl, code, err, body)
	}
	return nil
}

// match returns the path template that matches path.
func (d *Doc) match(path string) (string, bool) {
	segs := strings.Split(path, "/")
	for _, t := range d.paths {
		ts := strings.Split(t, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok := true
		for i := range ts {
			if !(strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") && segs[i] != "") && ts[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return t, true
		}
	}
	return "", false
}

// schema compiles the schema at the JSON pointer ptr of the document.
func (d *Doc) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.compiled[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(docURL + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		return nil, fmt.Errorf("schema at %s: %w", ptr, err)
	}
	d.compiled[ptr] = s
	return s, nil
}

// deref follows a $ref to #/... within the document.
func (d *Doc) deref(v any) any {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return v
		}
		v = d.root
		for _, tok := range strings.Split(ref[2:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[tok]
		}
	}
	return v
}

func content(m map[string]any) map[string]any {
	c, _ := m["content"].(map[string]any)
	return c
}

// escape escapes a JSON pointer token.
func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}
