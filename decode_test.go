package uneventful_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
)

type body struct {
	Amount json.RawMessage `json:"amount"`
	Note   string          `json:"note"`
	Count  int8            `json:"count"`
	Meta   *struct {
		ID   string `json:"id"`
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
	} `json:"meta"`
	Any any `json:"any"`
}

func (body) JSONShape() string { return `{"amount": <number>}` }

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		code, msg string // want; code "" means no error
	}{
		{name: "object", in: `{"amount": 5}`},
		{name: "whitespace around", in: " \r\n\t{\"amount\":5}\n "},
		{name: "nested", in: `{"meta":{"id":"a","tags":[{"name":"x"},{"name":"y"}]}}`},
		{name: "same key in sibling objects", in: `{"meta":{"tags":[{"name":"x"},{"name":"x"}]}}`},
		{name: "empty", in: ``, code: "empty_body", msg: `the body is empty; send a JSON object such as {"amount": <number>}`},
		{name: "only whitespace", in: " \n", code: "empty_body"},
		{name: "array", in: `[{"amount":5}]`, code: "not_object", msg: `the body must be a JSON object such as {"amount": <number>}, not an array`},
		{name: "number", in: `5`, code: "not_object", msg: `the body must be a JSON object such as {"amount": <number>}, not a number`},
		{name: "huge number", in: `1e400`, code: "not_object"},
		{name: "string", in: `"x"`, code: "not_object"},
		{name: "null", in: `null`, code: "not_object", msg: `the body must be a JSON object such as {"amount": <number>}, not null`},
		{name: "boolean", in: `true`, code: "not_object", msg: `the body must be a JSON object such as {"amount": <number>}, not true`},
		{name: "duplicate", in: `{"amount":5,"amount":6}`, code: "duplicate_field", msg: `field "amount" appears twice`},
		{name: "duplicate escaped", in: `{"amount":5,"\u0061mount":6}`, code: "duplicate_field", msg: `field "amount" appears twice`},
		{name: "duplicate in other case", in: `{"amount":5,"AMOUNT":6}`, code: "duplicate_field", msg: `fields "amount" and "AMOUNT" differ only in case, so they name the same field twice`},
		{name: "duplicate nested", in: `{"meta":{"id":"a","id":"b"}}`, code: "duplicate_field", msg: `field "meta.id" appears twice`},
		{name: "duplicate in array", in: `{"meta":{"tags":[{"name":"x"},{"name":"x","name":"y"}]}}`, code: "duplicate_field", msg: `field "meta.tags[1].name" appears twice`},
		{name: "duplicate empty key", in: `{"any":{"":{"[0]":[{"":1,"":2}]}}}`, code: "duplicate_field", msg: `field "any..[0][0]." appears twice`},
		{name: "duplicate under any", in: `{"any":{"k":1,"k":2}}`, code: "duplicate_field", msg: `field "any.k" appears twice`},
		{name: "unknown", in: `{"amout":5}`, code: "unknown_field", msg: `unknown field "amout"; the body takes {"amount": <number>}`},
		{name: "unknown long", in: `{"` + strings.Repeat("x", 1000) + `":5}`, code: "unknown_field", msg: `unknown field "` + strings.Repeat("x", 100) + `..."; the body takes {"amount": <number>}`},
		{name: "unknown nested", in: `{"meta":{"idd":"a"}}`, code: "unknown_field", msg: `unknown field "idd"; the body takes {"amount": <number>}`},
		{name: "trailing object", in: `{"amount":5}{"amount":6}`, code: "trailing_data", msg: `the body has more after its JSON object (at byte 12); send exactly one object`},
		{name: "trailing garbage", in: `{"amount":5} x`, code: "trailing_data"},
		{name: "trailing brace", in: `{"amount":5}}`, code: "trailing_data"},
		{name: "truncated", in: `{"amount":`, code: "malformed_json", msg: `the body is not valid JSON: it ends in the middle of the object`},
		{name: "trailing comma", in: `{"amount":5,}`, code: "malformed_json"},
		{name: "single quotes", in: `{'amount':5}`, code: "malformed_json"},
		{name: "bare word", in: `{"amount":five}`, code: "malformed_json"},
		{name: "NaN", in: `{"amount":NaN}`, code: "malformed_json"},
		{name: "leading zero", in: `{"amount":05}`, code: "malformed_json"},
		{name: "plus sign", in: `{"amount":+5}`, code: "malformed_json"},
		{name: "not UTF-8", in: "{\"note\":\"\xff\"}", code: "malformed_json", msg: `the body is not valid JSON: it is not UTF-8 text`},
		{name: "byte order mark", in: "\ufeff{\"amount\":5}", code: "malformed_json", msg: `the body is not valid JSON: it begins with a byte order mark (U+FEFF); send the JSON without it`},
		{name: "byte order mark after space", in: " \ufeff{\"amount\":5}", code: "malformed_json", msg: `the body is not valid JSON: it begins with a byte order mark (U+FEFF); send the JSON without it`},
		{name: "wrong type", in: `{"note":5}`, code: "wrong_type", msg: `field "note" takes a string; got a number`},
		{name: "out of range", in: `{"count":300}`, code: "wrong_type", msg: `field "count" takes an integer in the range of int8; got 300`},
		{name: "array for object", in: `{"meta":[]}`, code: "wrong_type", msg: `field "meta" takes an object; got an array`},
		{name: "too deep", in: `{"any":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, code: "malformed_json", msg: "the body is not valid JSON: it nests deeper than 10000 levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v body
			err := uneventful.DecodeJSON([]byte(tc.in), &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("DecodeJSON(%s) = %v, want nil", tc.in, err)
				}
				return
			}
			e := checkInvalid(t, err)
			if e.Code != tc.code {
				t.Errorf("code = %q, want %q (message %q)", e.Code, tc.code, e.Message)
			}
			if tc.msg != "" && e.Message != tc.msg {
				t.Errorf("message = %q, want %q", e.Message, tc.msg)
			}
		})
	}
}

func TestDecodeJSONKeepsNumbersExact(t *testing.T) {
	var v body
	if err := uneventful.DecodeJSON([]byte(`{"amount": 12345678901234567890.01, "any": 0.1}`), &v); err != nil {
		t.Fatal(err)
	}
	if got, want := string(v.Amount), "12345678901234567890.01"; got != want {
		t.Errorf("amount = %s, want %s", got, want)
	}
	if got, want := v.Any, any(json.Number("0.1")); got != want {
		t.Errorf("any = %#v, want %#v", got, want)
	}
}

func TestDecodeJSONWithoutShape(t *testing.T) {
	var v struct{ A int }
	err := uneventful.DecodeJSON([]byte(`{"b":1}`), &v)
	if got, want := checkInvalid(t, err).Message, `unknown field "b"`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestDecodeJSONIntoOtherTypes(t *testing.T) {
	var n int
	err := uneventful.DecodeJSON([]byte(`{"a":1}`), &n)
	if got, want := checkInvalid(t, err).Message, "the body takes an integer in the range of int; got an object"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	m := map[string]any{}
	if err := uneventful.DecodeJSON([]byte(`{"a":1.5,"b":[true,null]}`), &m); err != nil || m["a"] != json.Number("1.5") {
		t.Errorf("DecodeJSON into a map = %v, %v", m, err)
	}
}

func TestDecodeJSONPassesFieldErrorsThrough(t *testing.T) {
	var v struct{ A rejecting }
	err := uneventful.DecodeJSON([]byte(`{"A":1}`), &v)
	if got := checkInvalid(t, err); got != errRejecting {
		t.Errorf("error = %v, want the field's own *Error", got)
	}
}

func TestDecodeJSONNonPointerIsABug(t *testing.T) {
	var v struct{ A int }
	if err := uneventful.DecodeJSON([]byte(`{"A":1}`), v); !errors.Is(err, uneventful.ErrInternal) {
		t.Errorf("DecodeJSON into a non-pointer = %v, want ErrInternal", err)
	}
}

var errRejecting = uneventful.Errorf(uneventful.ErrInvalid, "bad_a", "a is bad")

type rejecting struct{}

func (*rejecting) UnmarshalJSON([]byte) error { return errRejecting }

// checkInvalid checks that err is an *uneventful.Error of kind ErrInvalid
// with a code and a message, and returns it.
func checkInvalid(t testing.TB, err error) *uneventful.Error {
	t.Helper()
	var e *uneventful.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %#v, want an *uneventful.Error", err)
	}
	if !errors.Is(err, uneventful.ErrInvalid) || e.Code == "" || e.Message == "" {
		t.Fatalf("error = %#v, want kind ErrInvalid with a code and a message", e)
	}
	return e
}

var codes = map[string]bool{
	"empty_body": true, "malformed_json": true, "not_object": true, "duplicate_field": true,
	"trailing_data": true, "unknown_field": true, "wrong_type": true, "invalid_value": true,
}

func FuzzDecodeJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		var v body
		err := uneventful.DecodeJSON(in, &v)
		var m map[string]any
		errMap := uneventful.DecodeJSON(in, &m)
		if errMap == nil {
			if !json.Valid(in) {
				t.Fatalf("accepted invalid JSON %q", in)
			}
			// Compare with encoding/json as DecodeJSON uses it: numbers
			// kept as their text (json.Number), never as float64, so
			// 1E1000 is a number, not an overflow.
			dec := json.NewDecoder(bytes.NewReader(in))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("accepted %q that encoding/json refuses: %v", in, err)
			}
		}
		for _, err := range []error{err, errMap} {
			if err == nil {
				continue
			}
			if e := checkInvalid(t, err); !codes[e.Code] {
				t.Fatalf("unknown code %q for %q", e.Code, in)
			}
		}
		if err == nil && errMap != nil {
			t.Fatalf("accepted %q into a struct but not into a map: %v", in, errMap)
		}
	})
}
