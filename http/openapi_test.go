package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/http/openapitest"
)

// acctAPI describes the test domain.
var acctAPI = &uneventful.API{
	Commands: map[string]uneventful.Operation{
		"add":  {Summary: "Add to the balance.", Body: json.RawMessage(`{"type":"object","required":["amount"],"additionalProperties":false,"properties":{"amount":{"type":"integer","minimum":1}}}`)},
		"take": {Summary: "Take from the balance.", Body: json.RawMessage(`{"type":"object","required":["amount"],"additionalProperties":false,"properties":{"amount":{"type":"integer","minimum":1}}}`)},
	},
	View: json.RawMessage(`{"type":"object","required":["balance"],"properties":{"balance":{"type":"integer","minimum":0}}}`),
	Queries: map[string]uneventful.Operation{
		"balance": {Answer: json.RawMessage(`{"type":"object","required":["balance"],"additionalProperties":false,"properties":{"balance":{"type":"integer","minimum":0}}}`)},
	},
}

func describeAcct(s *uhttp.Server) {
	s.Domains[0].(*uneventful.Domain[acctState]).API = acctAPI
}

func writeKeys(t *testing.T) *uhttp.APIKeys {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("ops read,write ops-key-0123456789abcdef\nviewer read viewer-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := uhttp.LoadAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// loadDoc reads and loads GET /openapi.json.
func loadDoc(t *testing.T, url string) (*openapitest.Doc, map[string]any) {
	t.Helper()
	res, err := http.Get(url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /openapi.json: %d %v", res.StatusCode, err)
	}
	doc, err := openapitest.Load(b)
	if err != nil {
		t.Fatalf("the document is not valid: %v", err)
	}
	if err := doc.Check("GET", "/openapi.json", res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
		t.Error(err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	return doc, raw
}

// exchange is a request and the real answer to it.
type exchange struct {
	method, path, body string
	header             []string
	status             int // the status the test expects
}

// checkAnswers sends each request to the server at url and checks the
// answer's status, and the answer against the document.
func checkAnswers(t *testing.T, doc *openapitest.Doc, url string, exchanges []exchange) {
	t.Helper()
	for _, x := range exchanges {
		var body io.Reader
		if x.body != "" {
			body = strings.NewReader(x.body)
		}
		req, err := http.NewRequest(x.method, url+x.path, body)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(x.header); i += 2 {
			req.Header.Set(x.header[i], x.header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != x.status {
			t.Errorf("%s %s: status %d, want %d\n%s", x.method, x.path, res.StatusCode, x.status, b)
		}
		if err := doc.Check(x.method, x.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
			t.Error(err)
		}
	}
}

// TestOpenAPIAnswers checks real answers of a server, of every status a
// command or query gives, against the schemas of GET /openapi.json.
func TestOpenAPIAnswers(t *testing.T) {
	f := newFixture(t, describeAcct, func(s *uhttp.Server) {
		s.MaxBodyBytes = 1024
		s.Ready = map[string]func(context.Context) error{"bus": func(context.Context) error { return nil }}
	})
	doc, _ := loadDoc(t, f.url)
	id := uneventful.NewID()
	add, take, balance := "/acct/"+id+"/add", "/acct/"+id+"/take", "/acct/"+id+"/balance"
	checkAnswers(t, doc, f.url, []exchange{
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"Content-Type", "application/json", "Idempotency-Key", "k1"}, status: 200},
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"Idempotency-Key", "k1"}, status: 200},
		{method: "POST", path: add, body: `{"amount": 6}`, header: []string{"Idempotency-Key", "k1"}, status: 422},
		{method: "POST", path: take, body: `{"amount": 50}`, status: 409},
		{method: "POST", path: take, body: `{"amount": -5}`, status: 400},
		{method: "POST", path: take, body: `{"amount": 1, "x": 1}`, status: 400},
		{method: "POST", path: take, body: ``, status: 400},
		{method: "POST", path: "/acct/not-an-id/add", body: `{"amount": 5}`, status: 400},
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"Content-Type", "text/plain"}, status: 415},
		{method: "POST", path: add, body: `{"amount": 5, "pad": "` + strings.Repeat("x", 2000) + `"}`, status: 413},
		{method: "GET", path: balance, status: 200},
		{method: "GET", path: "/acct/not-an-id/balance", status: 400},
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/readyz", status: 200},
		{method: "GET", path: "/metrics", status: 200},
		{method: "GET", path: "/openapi.json", status: 200},
	})

	// The bus and the read model failing.
	for _, c := range []struct {
		err    error
		status int
	}{
		{uneventful.Errorf(uneventful.ErrUnavailable, "no_writer", "no writer"), 503},
		{&uneventful.Error{Kind: uneventful.ErrTimeout, Code: "timeout", Message: "no answer"}, 504},
		{errors.New("boom"), 500},
	} {
		f.bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) { return nil, c.err }
		f.reader.mu.Lock()
		f.reader.err = c.err
		f.reader.mu.Unlock()
		checkAnswers(t, doc, f.url, []exchange{
			{method: "POST", path: add, body: `{"amount": 5}`, status: c.status},
			{method: "GET", path: balance, status: c.status},
		})
	}
	f.bus.send = func(ctx context.Context, e *uneventful.Event) (*uneventful.Reply, error) {
		return &uneventful.Reply{EventID: e.EventID, Error: uneventful.NewReplyError(uneventful.Errorf(uneventful.ErrConflict, "conflict", "taken"))}, nil
	}
	checkAnswers(t, doc, f.url, []exchange{{method: "POST", path: add, body: `{"amount": 5}`, status: 409}})

	// Not ready.
	g := newFixture(t, func(s *uhttp.Server) {
		s.Ready = map[string]func(context.Context) error{"bus": func(context.Context) error { return errors.New("down") }}
	})
	gdoc, _ := loadDoc(t, g.url)
	checkAnswers(t, gdoc, g.url, []exchange{{method: "GET", path: "/readyz", status: 503}})

	// API keys.
	h := newFixture(t, describeAcct, func(s *uhttp.Server) { s.APIKeys = writeKeys(t) })
	hdoc, raw := loadDoc(t, h.url)
	checkAnswers(t, hdoc, h.url, []exchange{
		{method: "POST", path: add, body: `{"amount": 5}`, status: 401},
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"Authorization", "Bearer nope-nope-nope-nope"}, status: 401},
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"X-API-Key", "viewer-key-0123456789abcdef"}, status: 403},
		{method: "POST", path: add, body: `{"amount": 5}`, header: []string{"X-API-Key", "ops-key-0123456789abcdef"}, status: 200},
		{method: "GET", path: balance, status: 401},
		{method: "GET", path: balance, header: []string{"X-API-Key", "viewer-key-0123456789abcdef"}, status: 200},
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/openapi.json", status: 200},
	})
	if _, ok := raw["components"].(map[string]any)["securitySchemes"]; !ok {
		t.Error("with API keys, the document has no securitySchemes")
	}
}

// TestOpenAPIDocument: the document has every command and query of every
// domain, with the domain's schemas where it describes them and any object
// where it does not.
func TestOpenAPIDocument(t *testing.T) {
	f := newFixture(t, describeAcct)
	_, raw := loadDoc(t, f.url)
	if raw["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", raw["openapi"])
	}
	paths := raw["paths"].(map[string]any)
	for _, p := range []string{"/acct/{id}/add", "/acct/{id}/take", "/acct/{id}/balance", "/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("no path %s", p)
		}
	}
	body := paths["/acct/{id}/add"].(map[string]any)["post"].(map[string]any)["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
	if b, _ := json.Marshal(body); !strings.Contains(string(b), `"minimum":1`) {
		t.Errorf("add's body schema is not the domain's: %s", b)
	}

	plain := newFixture(t) // no API description
	_, raw = loadDoc(t, plain.url)
	body = raw["paths"].(map[string]any)["/acct/{id}/add"].(map[string]any)["post"].(map[string]any)["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
	if b, _ := json.Marshal(body); string(b) != `{"type":"object"}` {
		t.Errorf("an undescribed body is %s, want any object", b)
	}
}

// TestOpenAPICatchesLies: the checker fails answers that do not match the
// document, so that the tests above can fail.
func TestOpenAPICatchesLies(t *testing.T) {
	f := newFixture(t, describeAcct)
	doc, _ := loadDoc(t, f.url)
	path := "/acct/" + uneventful.NewID() + "/add"
	for _, c := range []struct {
		status int
		body   string
	}{
		{200, `{"success":true,"detail":"add accepted","event_id":"x","version":1}`},                // no view
		{200, `{"success":true,"detail":"add accepted","event_id":"x","version":"1","balance":1}`},  // version a string
		{400, `{"success":false,"detail":"bad","method":"POST","url":"/x","error":"invalid"}`},      // no code
		{418, `{"success":false,"detail":"bad","method":"POST","url":"/x","error":"x","code":"x"}`}, // undocumented status
	} {
		if err := doc.Check("POST", path, c.status, "application/json", []byte(c.body)); err == nil {
			t.Errorf("%d %s passed", c.status, c.body)
		}
	}
	if err := doc.Check("GET", "/nowhere", 200, "application/json", []byte(`{}`)); err == nil {
		t.Error("an undocumented path passed")
	}
}

// TestOpenAPIBadSchema: a domain schema that is not a JSON object fails Open.
func TestOpenAPIBadSchema(t *testing.T) {
	m := newAcct()
	m.API = &uneventful.API{View: json.RawMessage(`[1`)}
	s := &uhttp.Server{Domains: []uneventful.Model{m}, Bus: newFakeBus(m, newFakeReader()), Reader: newFakeReader()}
	if err := s.Open(); err == nil || !strings.Contains(err.Error(), "API.View") {
		t.Errorf("Open = %v, want an error naming API.View", err)
	}
}
