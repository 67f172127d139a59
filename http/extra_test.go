package http_test

import (
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

func hello(text string) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"hello":"` + text + `"}` + "\n"))
	})
}

// TestRoutes: extra routes are served beside the domains' routes, which
// stay as they are, and unknown paths still get the JSON 404.
func TestRoutes(t *testing.T) {
	f := newFixture(t, func(s *uhttp.Server) {
		s.Routes = []uhttp.Route{
			{Pattern: "GET /{$}", Handler: hello("page"), Public: true},
			{Pattern: "GET /acct/{id}/events", Handler: hello("events")},
		}
	})
	id := uneventful.NewID()
	if r := f.do(t, "GET", "/", ""); r.status != 200 || r.field("hello") != "page" {
		t.Errorf("GET /: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/acct/"+id+"/events", ""); r.status != 200 || r.field("hello") != "events" {
		t.Errorf("GET /acct/{id}/events: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "POST", "/acct/"+id+"/add", `{"amount": 5}`); r.status != 200 {
		t.Errorf("the domain's command: %d %s", r.status, r.raw)
	}
	checkError(t, f.do(t, "GET", "/nope", ""), "GET", "/nope", 404, "not_found", "not_found")
	checkError(t, f.do(t, "GET", "/acct/"+id+"/nope", ""), "GET", "/acct/"+id+"/nope", 404, "not_found", "unknown_query")
}

// TestRoutesNeedKeys: with API keys, an extra route needs its scope (read
// by default) unless it is public.
func TestRoutesNeedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(path, []byte("viewer read viewer-key-0123456789abcdef\n"), 0o600)
	keys, err := uhttp.LoadAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(s *uhttp.Server) {
		s.APIKeys = keys
		s.Routes = []uhttp.Route{
			{Pattern: "GET /{$}", Handler: hello("page"), Public: true},
			{Pattern: "GET /feed", Handler: hello("feed")},
			{Pattern: "POST /poke", Handler: hello("poke"), Scope: uhttp.ScopeWrite},
		}
	})
	viewer := []string{"Authorization", "Bearer viewer-key-0123456789abcdef"}
	if r := f.do(t, "GET", "/", ""); r.status != 200 {
		t.Errorf("public route without a key: %d %s", r.status, r.raw)
	}
	checkError(t, f.do(t, "GET", "/feed", ""), "GET", "/feed", 401, "unauthorized", "missing_api_key")
	if r := f.do(t, "GET", "/feed", "", viewer...); r.status != 200 {
		t.Errorf("read route with a read key: %d %s", r.status, r.raw)
	}
	checkError(t, f.do(t, "POST", "/poke", "", viewer...), "POST", "/poke", 403, "forbidden", "insufficient_scope")
}

// TestRoutesInvalid: a route that conflicts with a domain's, has no
// handler, or an unknown scope makes Open fail with a message.
func TestRoutesInvalid(t *testing.T) {
	for _, c := range []struct {
		route uhttp.Route
		want  string
	}{
		{uhttp.Route{Pattern: "GET /acct/{id}/balance", Handler: hello("x")}, "conflicts"},
		{uhttp.Route{Pattern: "GET /x"}, "no handler"},
		{uhttp.Route{Pattern: "GET /x", Handler: hello("x"), Scope: "admin"}, "scope"},
	} {
		s := &uhttp.Server{Domains: []uneventful.Model{newAcct()}, Bus: newFakeBus(newAcct(), newFakeReader()), Reader: newFakeReader(), Routes: []uhttp.Route{c.route}}
		err := s.Open()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Open() = %v, want an error about %q", c.route, err, c.want)
		}
	}
}
