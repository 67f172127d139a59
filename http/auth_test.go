package http_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

func TestAPIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(path, []byte("# name scopes key\nops read,write ops-key-0123456789abcdef\nviewer read viewer-key-0123456789abcdef\n"), 0o600)
	keys, err := uhttp.LoadAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(s *uhttp.Server) { s.APIKeys = keys })
	id := uneventful.NewID()
	cmd, query := "/acct/"+id+"/add", "/acct/"+id+"/balance"
	for _, c := range []struct {
		name, method, path, header, value string
		status                            int
		code                              string
	}{
		{"no key", "POST", cmd, "", "", 401, "missing_api_key"},
		{"wrong key", "POST", cmd, "X-API-Key", "not-a-key-0123456789abcdef", 401, "invalid_api_key"},
		{"read key for a command", "POST", cmd, "Authorization", "Bearer viewer-key-0123456789abcdef", 403, "insufficient_scope"},
		{"no key for a query", "GET", query, "", "", 401, "missing_api_key"},
	} {
		var header []string
		if c.header != "" {
			header = []string{c.header, c.value}
		}
		body := `{"amount": 5}`
		if c.method == "GET" {
			body = ""
		}
		r := f.do(t, c.method, c.path, body, header...)
		if r.status != c.status || r.field("code") != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
		}
	}
	if r := f.do(t, "POST", cmd, `{"amount": 5}`, "Authorization", "Bearer ops-key-0123456789abcdef"); r.status != 200 {
		t.Errorf("write key: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", query, "", "X-API-Key", "viewer-key-0123456789abcdef"); r.status != 200 {
		t.Errorf("read key: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz needs no key: %d", r.status)
	}

	for name, content := range map[string]string{
		"short key":   "ops read,write short\n",
		"bad scope":   "ops admin ops-key-0123456789abcdef\n",
		"empty":       "# nothing\n",
		"two columns": "ops read\n",
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := uhttp.LoadAPIKeys(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
