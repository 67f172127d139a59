package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/wallet"
)

// TestBadInputChangesNothing (contract 8): each bad request gets the right
// status, a stable code and a message, and the wallet's logs and balance
// stay as they were.
func TestBadInputChangesNothing(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	w := uneventful.NewID()
	want(t, s.do("POST", "/wallet/"+w+"/credit", `{"amount": 10}`, "Idempotency-Key", "first-credit"), 200, nil)
	// full holds the most a wallet holds, so that any credit overflows it.
	full := uneventful.NewID()
	most := wallet.FormatAmount(math.MaxInt64, wallet.DefaultScale)
	want(t, s.do("POST", "/wallet/"+full+"/credit", `{"amount": `+most+`}`), 200, map[string]string{"balance": most})
	path := "/wallet/" + w + "/credit"
	transfer := "/wallet/" + w + "/transfer"
	id := w[:26] // one character short of a KSUID
	deep := `{"amount": ` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	huge := `{"amount": 5, "pad": "` + strings.Repeat("x", 10<<20) + `"}`
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		// code is the error code of our JSON answer; "" for an answer
		// that net/http gives before any handler of ours runs, whose
		// body is its own text.
		code string
		// header replaces the request's headers of the same names; a
		// nil value removes one (Content-Type defaults to curl's).
		header http.Header
		// chunked sends the body without a Content-Length.
		chunked bool
	}{
		// The body's JSON.
		{name: "malformed JSON", method: "POST", path: path, body: `{"amount": 5`, status: 400, code: "malformed_json"},
		{name: "duplicate key", method: "POST", path: path, body: `{"amount": 5, "amount": 6}`, status: 400, code: "duplicate_field"},
		{name: "duplicate key in other case", method: "POST", path: path, body: `{"amount": 5, "AMOUNT": 6}`, status: 400, code: "duplicate_field"},
		{name: "duplicate key escaped", method: "POST", path: path, body: `{"amount": 5, "\u0061mount": 6}`, status: 400, code: "duplicate_field"},
		{name: "unknown field", method: "POST", path: path, body: `{"amount": 5, "currency": "EUR"}`, status: 400, code: "unknown_field"},
		{name: "unknown field with a long name", method: "POST", path: path, body: `{"amount": 5, "` + strings.Repeat("x", 60<<10) + `": 1}`, status: 400, code: "unknown_field"},
		{name: "trailing data", method: "POST", path: path, body: `{"amount": 5} {}`, status: 400, code: "trailing_data"},
		{name: "trailing NUL", method: "POST", path: path, body: "{\"amount\": 5}\x00", status: 400, code: "trailing_data"},
		{name: "empty body", method: "POST", path: path, body: ``, status: 400, code: "empty_body"},
		{name: "blank body", method: "POST", path: path, body: " \r\n\t ", status: 400, code: "empty_body"},
		{name: "array body", method: "POST", path: path, body: `[{"amount": 5}]`, status: 400, code: "not_object"},
		{name: "number body", method: "POST", path: path, body: `5`, status: 400, code: "not_object"},
		{name: "null body", method: "POST", path: path, body: `null`, status: 400, code: "not_object"},
		{name: "string body", method: "POST", path: path, body: `"amount=5"`, status: 400, code: "not_object"},
		{name: "form body", method: "POST", path: path, body: `amount=5`, status: 400, code: "malformed_json"},
		{name: "deeply nested", method: "POST", path: path, body: deep, status: 400, code: "malformed_json"},
		{name: "deeply nested, unclosed", method: "POST", path: path, body: strings.Repeat("[", 10000), status: 400, code: "not_object"},
		{name: "invalid UTF-8", method: "POST", path: path, body: "{\"amount\": 5, \"note\": \"\xff\xfe\"}", status: 400, code: "malformed_json"},
		{name: "invalid UTF-8 key", method: "POST", path: path, body: "{\"amount\xc3\": 5}", status: 400, code: "malformed_json"},
		{name: "byte order mark", method: "POST", path: path, body: "\ufeff{\"amount\": 5}", status: 400, code: "malformed_json"},
		{name: "block comment", method: "POST", path: path, body: `{"amount": 5 /* five */}`, status: 400, code: "malformed_json"},
		{name: "line comment", method: "POST", path: path, body: "// five\n{\"amount\": 5}", status: 400, code: "malformed_json"},
		{name: "single quotes", method: "POST", path: path, body: `{'amount': 5}`, status: 400, code: "malformed_json"},
		{name: "trailing comma", method: "POST", path: path, body: `{"amount": 5,}`, status: 400, code: "malformed_json"},

		// The amount.
		{name: "missing amount", method: "POST", path: path, body: `{}`, status: 400, code: "amount_required"},
		{name: "null amount", method: "POST", path: path, body: `{"amount": null}`, status: 400, code: "amount_required"},
		{name: "string amount", method: "POST", path: path, body: `{"amount": "5"}`, status: 400, code: "amount_not_number"},
		{name: "NaN", method: "POST", path: path, body: `{"amount": NaN}`, status: 400, code: "malformed_json"},
		{name: "NaN string", method: "POST", path: path, body: `{"amount": "NaN"}`, status: 400, code: "amount_not_number"},
		{name: "Infinity", method: "POST", path: path, body: `{"amount": Infinity}`, status: 400, code: "malformed_json"},
		{name: "Infinity string", method: "POST", path: path, body: `{"amount": "Infinity"}`, status: 400, code: "amount_not_number"},
		{name: "exponent", method: "POST", path: path, body: `{"amount": 1e309}`, status: 400, code: "amount_not_decimal"},
		{name: "small exponent", method: "POST", path: path, body: `{"amount": 1e2}`, status: 400, code: "amount_not_decimal"},
		{name: "negative exponent", method: "POST", path: path, body: `{"amount": 5E-1}`, status: 400, code: "amount_not_decimal"},
		{name: "negative", method: "POST", path: path, body: `{"amount": -5}`, status: 400, code: "amount_not_positive"},
		{name: "negative zero", method: "POST", path: path, body: `{"amount": -0}`, status: 400, code: "amount_not_positive"},
		{name: "zero", method: "POST", path: path, body: `{"amount": 0}`, status: 400, code: "amount_not_positive"},
		{name: "zero with decimals", method: "POST", path: path, body: `{"amount": 0.00}`, status: 400, code: "amount_not_positive"},
		{name: "plus sign", method: "POST", path: path, body: `{"amount": +5}`, status: 400, code: "malformed_json"},
		{name: "leading zero", method: "POST", path: path, body: `{"amount": 05}`, status: 400, code: "malformed_json"},
		{name: "bare decimal point", method: "POST", path: path, body: `{"amount": .5}`, status: 400, code: "malformed_json"},
		{name: "hexadecimal", method: "POST", path: path, body: `{"amount": 0x10}`, status: 400, code: "malformed_json"},
		{name: "too many decimals", method: "POST", path: path, body: `{"amount": 0.001}`, status: 400, code: "too_many_decimals"},
		{name: "trailing zero decimals", method: "POST", path: path, body: `{"amount": 0.1` + strings.Repeat("0", 1000) + `}`, status: 400, code: "too_many_decimals"},
		{name: "overflowing amount", method: "POST", path: path, body: `{"amount": 92233720368547758.08}`, status: 400, code: "amount_too_large"},
		{name: "very long amount", method: "POST", path: path, body: `{"amount": 1` + strings.Repeat("0", 1000) + `}`, status: 400, code: "amount_too_large"},
		{name: "bool amount", method: "POST", path: path, body: `{"amount": true}`, status: 400, code: "amount_not_number"},
		{name: "array amount", method: "POST", path: path, body: `{"amount": [5]}`, status: 400, code: "amount_not_number"},
		{name: "object amount", method: "POST", path: path, body: `{"amount": {"value": 5}}`, status: 400, code: "amount_not_number"},
		{name: "nested object amount", method: "POST", path: path, body: `{"amount": {"amount": {"amount": 5}}}`, status: 400, code: "amount_not_number"},
		{name: "debit overflow of the balance", method: "POST", path: "/wallet/" + w + "/debit", body: `{"amount": 11}`, status: 409, code: "insufficient_funds"},
		{name: "credit overflow of the balance", method: "POST", path: "/wallet/" + full + "/credit", body: `{"amount": 0.01}`, status: 409, code: "balance_overflow"},

		// The id in the path.
		{name: "bad id", method: "POST", path: "/wallet/not-a-ksuid/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id too short", method: "POST", path: "/wallet/" + id + "/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id too long", method: "POST", path: "/wallet/" + w + "0/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id with a character outside base62", method: "POST", path: "/wallet/" + id + "_/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id out of range", method: "POST", path: "/wallet/" + strings.Repeat("z", 27) + "/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id with an escaped slash", method: "POST", path: "/wallet/" + w[:13] + "%2F" + w[14:] + "/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id with escaped non-ASCII", method: "POST", path: "/wallet/" + w[:25] + "%C3%A9/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "id of 20 KB", method: "POST", path: "/wallet/" + strings.Repeat("a", 20<<10) + "/credit", body: `{"amount": 5}`, status: 400, code: "invalid_id"},
		{name: "path of 20 KB", method: "POST", path: "/" + strings.Repeat("a/", 10<<10), body: `{"amount": 5}`, status: 404, code: "not_found"},
		{name: "path of 100 KB", method: "POST", path: "/" + strings.Repeat("a", 100<<10), body: `{"amount": 5}`, status: 431},

		// The route and the method.
		{name: "unknown command", method: "POST", path: "/wallet/" + w + "/steal", body: `{"amount": 5}`, status: 404, code: "unknown_command"},
		{name: "unknown domain", method: "POST", path: "/bank/" + w + "/credit", body: `{"amount": 5}`, status: 404, code: "unknown_domain"},
		{name: "no command", method: "POST", path: "/wallet/" + w, body: `{"amount": 5}`, status: 404, code: "not_found"},
		{name: "extra path segment", method: "POST", path: path + "/now", body: `{"amount": 5}`, status: 404, code: "not_found"},
		{name: "root", method: "POST", path: "/", body: `{"amount": 5}`, status: 404, code: "not_found"},
		{name: "a step only the transfer process sends", method: "POST", path: "/wallet/" + w + "/receive", body: `{"transfer": "` + full + `", "from": "` + full + `", "amount": 5}`, status: 400, code: "internal_command"},
		{name: "wrong method", method: "GET", path: path, body: ``, status: 405, code: "method_not_allowed"},
		{name: "PUT on a command", method: "PUT", path: path, body: `{"amount": 5}`, status: 405, code: "method_not_allowed"},
		{name: "PATCH on a command", method: "PATCH", path: path, body: `{"amount": 5}`, status: 405, code: "method_not_allowed"},
		{name: "DELETE on a command", method: "DELETE", path: path, body: ``, status: 405, code: "method_not_allowed"},
		{name: "POST on a query", method: "POST", path: "/wallet/" + w + "/balance", body: `{"amount": 5}`, status: 405, code: "method_not_allowed"},
		{name: "made-up method", method: "BREW", path: path, body: `{"amount": 5}`, status: 405, code: "method_not_allowed"},

		// The headers and the size.
		{name: "10 MB body", method: "POST", path: path, body: huge, status: 413, code: "body_too_large"},
		{name: "10 MB body, chunked", method: "POST", path: path, body: huge, status: 413, code: "body_too_large", chunked: true},
		{name: "XML", method: "POST", path: path, body: `<amount>5</amount>`, status: 415, code: "unsupported_media_type", header: http.Header{"Content-Type": {"text/xml"}}},
		{name: "JSON body as XML", method: "POST", path: path, body: `{"amount": 5}`, status: 415, code: "unsupported_media_type", header: http.Header{"Content-Type": {"text/xml"}}},
		{name: "multipart form", method: "POST", path: path, body: `{"amount": 5}`, status: 415, code: "unsupported_media_type", header: http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}},
		{name: "two content types", method: "POST", path: path, body: `{"amount": 5}`, status: 415, code: "unsupported_media_type", header: http.Header{"Content-Type": {"application/json", "text/xml"}}},
		{name: "malformed content type", method: "POST", path: path, body: `{"amount": 5}`, status: 415, code: "unsupported_media_type", header: http.Header{"Content-Type": {"application/json; charset"}}},
		{name: "Idempotency-Key too long", method: "POST", path: path, body: `{"amount": 5}`, status: 400, code: "invalid_idempotency_key", header: http.Header{"Idempotency-Key": {strings.Repeat("k", 256)}}},
		{name: "Idempotency-Key empty", method: "POST", path: path, body: `{"amount": 5}`, status: 400, code: "invalid_idempotency_key", header: http.Header{"Idempotency-Key": {""}}},
		{name: "Idempotency-Key with a tab", method: "POST", path: path, body: `{"amount": 5}`, status: 400, code: "invalid_idempotency_key", header: http.Header{"Idempotency-Key": {"a\tb"}}},
		{name: "Idempotency-Key not ASCII", method: "POST", path: path, body: `{"amount": 5}`, status: 400, code: "invalid_idempotency_key", header: http.Header{"Idempotency-Key": {"clé"}}},
		{name: "two Idempotency-Keys", method: "POST", path: path, body: `{"amount": 5}`, status: 400, code: "invalid_idempotency_key", header: http.Header{"Idempotency-Key": {"a", "b"}}},
		{name: "Idempotency-Key reused for another request", method: "POST", path: path, body: `{"amount": 11}`, status: 422, code: "idempotency_key_reused", header: http.Header{"Idempotency-Key": {"first-credit"}}},

		// Transfers.
		{name: "transfer to a bad id", method: "POST", path: transfer, body: `{"to": "not-a-ksuid", "amount": 1}`, status: 400, code: "invalid_to"},
		{name: "transfer to an id out of range", method: "POST", path: transfer, body: `{"to": "` + strings.Repeat("z", 27) + `", "amount": 1}`, status: 400, code: "invalid_to"},
		{name: "transfer to nobody", method: "POST", path: transfer, body: `{"amount": 1}`, status: 400, code: "to_required"},
		{name: "transfer to null", method: "POST", path: transfer, body: `{"to": null, "amount": 1}`, status: 400, code: "to_required"},
		{name: "transfer to a number", method: "POST", path: transfer, body: `{"to": 5, "amount": 1}`, status: 400, code: "wrong_type"},
		{name: "transfer of nothing", method: "POST", path: transfer, body: `{"to": "` + full + `"}`, status: 400, code: "amount_required"},
		{name: "transfer of no fields", method: "POST", path: transfer, body: `{}`, status: 400, code: "to_required"},
		{name: "transfer of a negative amount", method: "POST", path: transfer, body: `{"to": "` + full + `", "amount": -1}`, status: 400, code: "amount_not_positive"},
		{name: "transfer with an unknown field", method: "POST", path: transfer, body: `{"to": "` + full + `", "amount": 1, "from": "` + full + `"}`, status: 400, code: "unknown_field"},
		{name: "transfer overdraw", method: "POST", path: transfer, body: `{"to": "` + full + `", "amount": 11}`, status: 409, code: "insufficient_funds"},

		// Queries.
		{name: "query with a bad id", method: "GET", path: "/wallet/" + id + "/balance", status: 400, code: "invalid_id"},
		{name: "unknown query", method: "GET", path: "/wallet/" + w + "/secrets", status: 404, code: "unknown_query"},
		{name: "query with a bad limit", method: "GET", path: "/wallet/" + w + "/transactions?limit=-1", status: 400, code: "invalid_limit"},
	} {
		r := send(t, s, c.method, c.path, c.body, c.header, c.chunked)
		if c.code == "" {
			// net/http's own answer: its status and status text, as
			// text.
			if r.status != c.status || !strings.Contains(r.raw, http.StatusText(c.status)) {
				t.Errorf("%s: %d %s, want %d %s", c.name, r.status, truncate(r.raw, 200), c.status, http.StatusText(c.status))
			}
			continue
		}
		if r.status != c.status || r.body["code"] != c.code || r.body["success"] != false {
			t.Errorf("%s: %d %s, want %d with code %s", c.name, r.status, truncate(r.raw, 300), c.status, c.code)
		}
		if d, _ := r.body["detail"].(string); len(d) < 10 {
			t.Errorf("%s: detail %q does not say what was wrong", c.name, d)
		} else if len(d) > 500 {
			t.Errorf("%s: detail of %d bytes echoes the input instead of saying what was wrong: %s", c.name, len(d), truncate(d, 200))
		}
	}
	// The Content-Types that curl and JSON clients send are taken, with
	// and without a charset, on a wallet of their own.
	ok := uneventful.NewID()
	for i, ct := range [][]string{
		{"application/x-www-form-urlencoded"}, // curl -d
		{"application/json"},
		{"application/json; charset=utf-8"},
		{"Application/JSON; charset=UTF-8"},
		nil, // none
	} {
		r := send(t, s, "POST", "/wallet/"+ok+"/credit", `{"amount": 1}`, http.Header{"Content-Type": ct}, false)
		if r.status != 200 || r.body["success"] != true || r.body["version"] != json.Number(strconv.Itoa(i+1)) {
			t.Errorf("Content-Type %q: %d %s, want 200 and version %d", ct, r.status, r.raw, i+1)
		}
	}
	want(t, s.do("GET", "/wallet/"+ok+"/balance", ""), 200, map[string]string{"balance": "5", "version": "5"})

	want(t, s.do("GET", "/wallet/"+w+"/balance", ""), 200, map[string]string{"balance": "10", "version": "1"})
	want(t, s.do("GET", "/wallet/"+full+"/balance", ""), 200, map[string]string{"balance": most, "version": "1"})
	// Only the credits and the rejected debit, transfer and credit
	// attempts are recorded.
	if events := cli(t, "events", "--data", data, "--entity", "wallet."+w); strings.Count(events, "\n") != 3 {
		t.Fatalf("bad input reached the event log:\n%s", events)
	}
	if events := cli(t, "events", "--data", data, "--entity", "wallet."+full); strings.Count(events, "\n") != 2 {
		t.Fatalf("bad input reached the event log:\n%s", events)
	}
	// And no bad request made a wallet of its own (a bad id taken as an
	// id would): the log holds those 5 and the 5 good credits, nothing
	// more.
	if events := cli(t, "events", "--data", data); strings.Count(events, "\n") != 10 {
		t.Fatalf("bad input reached the event log:\n%s", events)
	}
}

// send is service.do for hostile requests: header replaces the request's
// headers of its names (a nil value removes one), chunked hides the
// body's length, and an answer that is not JSON is kept as raw text.
func send(t *testing.T, s *service, method, path, body string, header http.Header, chunked bool) response {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // no Len method: sent chunked
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	for k, v := range header {
		if v == nil {
			req.Header.Del(k)
		} else {
			req.Header[k] = v
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, truncate(path, 100), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, raw: string(b)}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&r.body) != nil {
		r.body = nil
	}
	return r
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
