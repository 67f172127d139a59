package uneventful

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DecodeJSON decodes a request body from outside into v, a non-nil pointer,
// strictly: the body must be exactly one JSON object in UTF-8, with no key
// twice in any object, no field that v does not have, and nothing but
// whitespace after it. Numbers decode as json.Number where v leaves the type
// open, never through float64.
//
// Keys that differ only in case count as the same key, because encoding/json
// matches struct fields case-insensitively: {"amount":1,"Amount":2} would
// otherwise decode as 2.
//
// Every error is an *Error of kind ErrInvalid with one of the codes
// empty_body, malformed_json, not_object, duplicate_field, trailing_data,
// unknown_field, wrong_type and invalid_value, or the *Error returned by an
// UnmarshalJSON method of v (v itself being no pointer is a bug, reported
// as ErrInternal). If v has a method JSONShape() string describing the body
// (e.g. `{"amount": <number>}`), messages quote it to say what to send.
func DecodeJSON(body []byte, v any) error {
	var shape string
	if s, ok := v.(interface{ JSONShape() string }); ok {
		shape = s.JSONShape()
	}
	if err := checkObject(body, shape); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, shape)
	}
	return nil
}

// maxDepth is how deep objects and arrays may nest, as in encoding/json.
const maxDepth = 10000

// checkObject walks the body's tokens and checks that it is one JSON object
// with no duplicate keys and no trailing data. It keeps one frame per open
// object or array instead of recursing, so deep nesting cannot exhaust the
// stack.
func checkObject(body []byte, shape string) error {
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return Errorf(ErrInvalid, "empty_body", "the body is empty; send a JSON object%s", such(shape))
	}
	if !utf8.Valid(body) {
		return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: it is not UTF-8 text")
	}
	if bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("\ufeff")) {
		// encoding/json would name the BOM's first byte, 'ï', which
		// the sender never sees.
		return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: it begins with a byte order mark (U+FEFF); send the JSON without it")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a huge number is not an error here
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if tok != json.Delim('{') {
		return Errorf(ErrInvalid, "not_object", "the body must be a JSON object%s, not %s", such(shape), describe(tok))
	}
	type frame struct {
		name  string            // how the parent names this value: "key" or "[i]"
		keys  map[string]string // folded key -> key as sent; nil in an array
		index int               // values seen so far in an array
	}
	stack := []frame{{keys: map[string]string{}}}
	// path names a member of the innermost open value for messages,
	// e.g. "meta.tags[1].name".
	path := func(name string) string {
		var b strings.Builder
		for i, f := range append(stack[1:len(stack):len(stack)], frame{name: name}) {
			if i > 0 && stack[i].keys != nil { // stack[i] is f's parent
				b.WriteByte('.')
			}
			b.WriteString(f.name)
		}
		return b.String()
	}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		var name string
		if top.keys != nil {
			name = tok.(string) // Token rejects any other key
			f := fold(name)
			if prev, dup := top.keys[f]; dup {
				if prev == name {
					return Errorf(ErrInvalid, "duplicate_field", "field %q appears twice", truncate(path(name), 100))
				}
				return Errorf(ErrInvalid, "duplicate_field", "fields %q and %q differ only in case, so they name the same field twice", truncate(path(prev), 100), truncate(path(name), 100))
			}
			top.keys[f] = name
			if tok, err = dec.Token(); err != nil {
				return syntaxError(err)
			}
		} else {
			top.index++
		}
		if d, ok := tok.(json.Delim); ok {
			if len(stack) == maxDepth {
				return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: it nests deeper than %d levels", maxDepth)
			}
			if top.keys == nil {
				name = "[" + strconv.Itoa(top.index-1) + "]"
			}
			f := frame{name: name}
			if d == '{' {
				f.keys = map[string]string{}
			}
			stack = append(stack, f)
		}
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return Errorf(ErrInvalid, "trailing_data", "the body has more after its JSON object (at byte %d); send exactly one object", len(body)-len(rest))
	}
	return nil
}

// decodeError turns an error of json.Decoder.Decode into an *Error.
func decodeError(err error, shape string) error {
	var (
		e        *Error
		typeErr  *json.UnmarshalTypeError
		syntax   *json.SyntaxError
		badValue *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &typeErr):
		field := "the body"
		if typeErr.Field != "" {
			field = "field " + strconv.Quote(typeErr.Field)
		}
		return Errorf(ErrInvalid, "wrong_type", "%s takes %s; got %s", field, want(typeErr.Type), got(typeErr.Value))
	case errors.As(err, &syntax):
		return syntaxError(err) // e.g. nested too deeply
	case errors.As(err, &badValue):
		return Errorf(ErrInternal, "internal", "decode JSON: %v", badValue)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok { // name is quoted
		if n, err := strconv.Unquote(name); err == nil {
			name = strconv.Quote(truncate(n, 100)) // a name can be as long as the body
		}
		if shape != "" {
			return Errorf(ErrInvalid, "unknown_field", "unknown field %s; the body takes %s", name, shape)
		}
		return Errorf(ErrInvalid, "unknown_field", "unknown field %s", name)
	}
	return Errorf(ErrInvalid, "invalid_value", "the body has an invalid value: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func syntaxError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: it ends in the middle of the object")
	case errors.As(err, &syntax):
		return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	}
	return Errorf(ErrInvalid, "malformed_json", "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// such returns " such as <shape>" when the shape is known.
func such(shape string) string {
	if shape == "" {
		return ""
	}
	return " such as " + shape
}

// describe names the kind of a JSON token that begins a value.
func describe(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return strconv.FormatBool(tok)
	}
	return "null"
}

// want names the JSON values a Go type takes.
func want(t reflect.Type) string {
	if t == reflect.TypeFor[json.Number]() {
		return "a number"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer in the range of " + t.Kind().String()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer in the range of " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value of type " + t.String()
}

// got names the JSON value described by json.UnmarshalTypeError.Value.
func got(value string) string {
	if n, ok := strings.CutPrefix(value, "number "); ok {
		return n
	}
	switch value {
	case "array", "object":
		return "an " + value
	case "bool":
		return "a boolean"
	}
	return "a " + value
}

// fold maps a key to the same string as every key that encoding/json
// matches to the same struct field, as bytes.EqualFold does.
func fold(key string) string {
	return strings.Map(func(r rune) rune {
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				return next
			}
			r = next
		}
	}, key)
}
