package main

import (
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
)

// TestBadInputChangesNothing (contract 8): each bad request gets the right
// status, a stable code and a message, and the wallet's logs and balance
// stay as they were.
func TestBadInputChangesNothing(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 10}`), 200, nil)
	path := "/wallet/" + w + "/credit"
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", path, `{"amount": 5`, 400, "malformed_json"},
		{"duplicate key", "POST", path, `{"amount": 5, "amount": 6}`, 400, "duplicate_field"},
		{"unknown field", "POST", path, `{"amount": 5, "currency": "EUR"}`, 400, "unknown_field"},
		{"trailing data", "POST", path, `{"amount": 5} {}`, 400, "trailing_data"},
		{"null amount", "POST", path, `{"amount": null}`, 400, "amount_required"},
		{"string amount", "POST", path, `{"amount": "5"}`, 400, "amount_not_number"},
		{"exponent", "POST", path, `{"amount": 1e309}`, 400, "amount_not_decimal"},
		{"negative", "POST", path, `{"amount": -5}`, 400, "amount_not_positive"},
		{"zero", "POST", path, `{"amount": 0}`, 400, "amount_not_positive"},
		{"too many decimals", "POST", path, `{"amount": 0.001}`, 400, "too_many_decimals"},
		{"overflowing amount", "POST", path, `{"amount": 92233720368547758.08}`, 400, "amount_too_large"},
		{"empty body", "POST", path, ``, 400, "empty_body"},
		{"bad id", "POST", "/wallet/not-a-ksuid/credit", `{"amount": 5}`, 400, "invalid_id"},
		{"unknown command", "POST", "/wallet/" + w + "/steal", `{"amount": 5}`, 404, "unknown_command"},
		{"unknown domain", "POST", "/bank/" + w + "/credit", `{"amount": 5}`, 404, "unknown_domain"},
		{"wrong method", "GET", path, ``, 405, "method_not_allowed"},
		{"debit overflow of the balance", "POST", "/wallet/" + w + "/debit", `{"amount": 11}`, 409, "insufficient_funds"},
	} {
		r := s.do(c.method, c.path, c.body)
		if r.status != c.status || r.body["code"] != c.code || r.body["success"] != false {
			t.Errorf("%s: %d %s, want %d with code %s", c.name, r.status, r.raw, c.status, c.code)
		}
		if d, _ := r.body["detail"].(string); len(d) < 10 {
			t.Errorf("%s: detail %q does not say what was wrong", c.name, d)
		}
	}
	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "10", "version": "1"})
	// Only the credit and the rejected debit attempt are recorded.
	if events := cli(t, "events", "--data", data, "--entity", "wallet."+w); strings.Count(events, "\n") != 2 {
		t.Fatalf("bad input reached the event log:\n%s", events)
	}
}
