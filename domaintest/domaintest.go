package domaintest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
)

// Scenario is one test of a domain: the entity's history so far, the last
// command, and what came of it. Build it with New and chain its methods.
// Each When acts on the state that everything before it left, so a
// scenario may go on after a Then with more Given and When steps; the
// Then methods that check an outcome check the last When, which must come
// after the last Given.
//
// A failed Given stops the scenario with t.Fatalf: what follows it would
// test the wrong state. A failed Then reports with t.Errorf and the
// scenario goes on. A Scenario is not safe for concurrent use.
type Scenario struct {
	t       testing.TB
	model   uneventful.Model
	state   any
	steps   []string // what happened so far, for messages
	last    *outcome // what came of the last When; nil before one and after a Given
	stopped bool     // a fatal failure was reported
}

// outcome is what came of a command.
type outcome struct {
	change json.RawMessage // the accepted change
	err    error           // the error of Parse or Decide
	step   string          // the method that returned err
	broken bool            // the domain broke its contract; reported already
}

// New starts a scenario of model's entity in its initial state. It
// reports failures to t, usually the test's *testing.T.
func New(t testing.TB, model uneventful.Model) *Scenario {
	t.Helper()
	s := &Scenario{t: t, model: model}
	if model == nil {
		s.fatalf("domaintest.New: the model is nil")
		return s
	}
	s.state = model.Initial()
	if _, err := model.EncodeState(s.state); err != nil {
		s.errorf("%s: EncodeState of the initial state failed: %v", model.Name(), err)
	}
	return s
}

// Given runs a command that happened before, through Parse, Decide and
// Apply as a writer would. The command must be accepted; if it is not, the
// test stops with t.Fatalf.
func (s *Scenario) Given(command, body string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	s.last = nil // a Then after a Given has no When to check
	s.steps = append(s.steps, "given "+command+" "+show(body))
	o := s.run(command, body)
	switch {
	case o.broken:
		s.fatalf("%s: the given command broke the domain's contract (see above)", s.where())
	case o.err != nil:
		s.fatalf("%s: a given command must be accepted, but %s", s.where(), o)
	}
	return s
}

// GivenChange applies a change that was accepted before, as the event log
// records it: command and the change's JSON, with Apply alone. If Apply
// fails, the test stops with t.Fatalf.
func (s *Scenario) GivenChange(command, change string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	s.last = nil
	s.steps = append(s.steps, "given change "+command+" "+show(change))
	before := s.encoded()
	next, err := s.model.Apply(s.state, command, json.RawMessage(change))
	if err != nil {
		s.fatalf("%s: Apply failed: %v", s.where(), err)
		return s
	}
	s.unchanged(before, "Apply")
	s.advance(next)
	return s
}

// GivenState sets the entity's state from its JSON as the state log keeps
// it, with DecodeState. If DecodeState fails, the test stops with
// t.Fatalf.
func (s *Scenario) GivenState(state string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	s.last = nil
	s.steps = append(s.steps, "given state "+show(state))
	st, err := s.model.DecodeState(json.RawMessage(state))
	if err != nil {
		s.fatalf("%s: DecodeState failed: %v", s.where(), err)
		return s
	}
	s.advance(st)
	return s
}

// When runs a command through Parse, Decide and, if it is accepted, Apply.
// The Then methods check what came of it.
func (s *Scenario) When(command, body string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	s.steps = append(s.steps, "when "+command+" "+show(body))
	o := s.run(command, body)
	s.last = &o
	return s
}

// ThenAccepted checks that the last command was accepted with the change
// want, the JSON that the event log records.
func (s *Scenario) ThenAccepted(want string) *Scenario {
	s.t.Helper()
	o := s.outcome("ThenAccepted")
	switch {
	case o == nil || o.broken:
	case o.err != nil:
		s.errorf("%s: want accepted, but %s", s.where(), o)
	default:
		s.compare("the change", o.change, want)
	}
	return s
}

// ThenRejected checks that Decide rejected the last command (an error of
// kind uneventful.ErrRejected, recorded as a rejected attempt) with code.
func (s *Scenario) ThenRejected(code string) *Scenario {
	s.t.Helper()
	return s.then("ThenRejected", uneventful.ErrRejected, code)
}

// ThenInvalid checks that the last command was refused as invalid (an
// error of kind uneventful.ErrInvalid, never recorded) with code, by Parse
// or by Decide.
func (s *Scenario) ThenInvalid(code string) *Scenario {
	s.t.Helper()
	return s.then("ThenInvalid", uneventful.ErrInvalid, code)
}

// ThenError checks that Parse or Decide returned an error with code for
// which errors.Is(err, kind) holds, e.g. kind uneventful.ErrNotFound and
// code "unknown_command".
func (s *Scenario) ThenError(kind error, code string) *Scenario {
	s.t.Helper()
	return s.then("ThenError", kind, code)
}

func (s *Scenario) then(method string, kind error, code string) *Scenario {
	s.t.Helper()
	o := s.outcome(method)
	if o == nil || o.broken {
		return s
	}
	if o.err == nil || !errors.Is(o.err, kind) || uneventful.ErrorCode(o.err) != code {
		s.errorf("%s: want %s %s, but %s", s.where(), kindName(kind), code, o)
	}
	return s
}

// ThenState checks the entity's state now, as EncodeState writes it to
// the state log, against want.
func (s *Scenario) ThenState(want string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	got, err := s.model.EncodeState(s.state)
	if err != nil {
		s.errorf("%s: EncodeState failed: %v", s.where(), err)
		return s
	}
	s.compare("the state", got, want)
	return s
}

// ThenView checks the entity's view now, the public fields that View
// merges into command replies, against want.
func (s *Scenario) ThenView(want string) *Scenario {
	s.t.Helper()
	if s.stopped {
		return s
	}
	got, err := s.model.View(s.state)
	if err != nil {
		s.errorf("%s: View failed: %v", s.where(), err)
		return s
	}
	s.compare("the view", got, want)
	return s
}

// State returns the entity's state now, for checks that JSON cannot make.
func (s *Scenario) State() any { return s.state }

// Err returns the error that Parse or Decide returned for the last When,
// nil if it was accepted or there was no When: for checks of the message.
func (s *Scenario) Err() error {
	if s.last == nil {
		return nil
	}
	return s.last.err
}

// run parses, decides and applies a command, checking the domain's
// contract, and moves the scenario to the new state if it is accepted.
func (s *Scenario) run(command, body string) outcome {
	s.t.Helper()
	data, err := s.model.Parse(command, []byte(body))
	if err != nil {
		return outcome{err: err, step: "Parse"}
	}
	before := s.encoded()
	change, err := s.model.Decide(s.state, command, data)
	again, err2 := s.model.Decide(s.state, command, data)
	if a, b := (outcome{change: change, err: err, step: "Decide"}), (outcome{change: again, err: err2, step: "Decide"}); !same(a, b) {
		s.errorf("%s: Decide is not deterministic: for the same state and command, first %s, then %s", s.where(), a, b)
		return outcome{broken: true}
	}
	if err != nil {
		if !s.unchanged(before, "Decide") {
			return outcome{broken: true}
		}
		return outcome{err: err, step: "Decide"}
	}
	next, err := s.model.Apply(s.state, command, change)
	if err != nil {
		s.errorf("%s: Decide accepted it with the change %s, but Apply failed: %v; Apply must take every change that Decide returns", s.where(), change, err)
		return outcome{broken: true}
	}
	next2, err := s.model.Apply(s.state, command, change)
	if err != nil {
		s.errorf("%s: Apply is not deterministic: it took the change %s once, then failed: %v", s.where(), change, err)
		return outcome{broken: true}
	}
	if !s.unchanged(before, "Decide or Apply") {
		return outcome{broken: true}
	}
	e1, err1 := s.model.EncodeState(next)
	e2, err2 := s.model.EncodeState(next2)
	if err1 == nil && err2 == nil && difference(e1, e2) != "" {
		s.errorf("%s: Apply is not deterministic: the same change %s made the state %s, then %s", s.where(), change, e1, e2)
		return outcome{broken: true}
	}
	if !s.advance(next) {
		return outcome{broken: true}
	}
	return outcome{change: change}
}

// encoded returns the current state's JSON, nil if it has none.
func (s *Scenario) encoded() json.RawMessage {
	b, _ := s.model.EncodeState(s.state)
	return b
}

// unchanged reports whether the current state still encodes as before,
// which method may not have changed; if not, it fails the test.
func (s *Scenario) unchanged(before json.RawMessage, method string) bool {
	s.t.Helper()
	if before == nil {
		return true
	}
	after := s.encoded()
	if d := difference(after, before); d != "" {
		s.errorf("%s: %s changed the state it was given from %s to %s; it must return a new state and leave the old one as it was (copy maps and slices before changing them)", s.where(), method, before, after)
		return false
	}
	return true
}

// advance checks that next survives the state log and has a view, as a
// writer needs, and makes it the current state. It reports whether next
// passed.
func (s *Scenario) advance(next any) bool {
	s.t.Helper()
	s.state = next
	enc, err := s.model.EncodeState(next)
	if err != nil {
		s.errorf("%s: EncodeState failed: %v", s.where(), err)
		return false
	}
	back, err := s.model.DecodeState(enc)
	if err != nil {
		s.errorf("%s: DecodeState cannot read the state %s that EncodeState wrote: %v", s.where(), enc, err)
		return false
	}
	enc2, err := s.model.EncodeState(back)
	if err != nil {
		s.errorf("%s: EncodeState failed on the state that DecodeState read from %s: %v", s.where(), enc, err)
		return false
	}
	if d := difference(enc2, enc); d != "" {
		s.errorf("%s: the state does not survive the state log: EncodeState wrote %s, and what DecodeState read from it encodes as %s (%s)", s.where(), enc, enc2, d)
		return false
	}
	view, err := s.model.View(next)
	if err != nil {
		s.errorf("%s: View failed: %v", s.where(), err)
		return false
	}
	if v, err := decode(view); err != nil {
		s.errorf("%s: View returned %q, which is not JSON: %v", s.where(), view, err)
		return false
	} else if _, ok := v.(map[string]any); !ok {
		s.errorf("%s: View returned %s; want a JSON object", s.where(), view)
		return false
	}
	return true
}

// outcome returns what came of the last When, or nil if there is nothing
// to check.
func (s *Scenario) outcome(method string) *outcome {
	s.t.Helper()
	if s.stopped {
		return nil
	}
	if s.last == nil {
		s.fatalf("%s: %s needs a When before it", s.where(), method)
		return nil
	}
	return s.last
}

// compare fails the test if got and want are not the same JSON.
func (s *Scenario) compare(what string, got json.RawMessage, want string) {
	s.t.Helper()
	if _, err := decode([]byte(want)); err != nil {
		s.fatalf("%s: the wanted %s %s is not JSON: %v", s.where(), strings.TrimPrefix(what, "the "), show(want), err)
		return
	}
	if d := difference(got, []byte(want)); d != "" {
		s.errorf("%s: %s is %s, want %s (%s)", s.where(), what, compact(got), show(want), d)
	}
}

func (s *Scenario) where() string {
	name := "<nil model>"
	if s.model != nil {
		name = s.model.Name()
	}
	if len(s.steps) == 0 {
		return name + ": initially"
	}
	return name + ": " + strings.Join(s.steps, "; ")
}

func (s *Scenario) errorf(format string, args ...any) {
	s.t.Helper()
	s.t.Errorf(format, args...)
}

func (s *Scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.stopped = true
	s.t.Fatalf(format, args...)
}

// String describes an outcome for messages.
func (o outcome) String() string {
	if o.err == nil {
		return "it was accepted with the change " + compact(o.change)
	}
	var what string
	switch k := kindName(o.err); k {
	case "rejected":
		what = o.step + " rejected it"
	case "invalid":
		what = o.step + " found it invalid"
	default:
		what = o.step + " returned " + article(k) + " " + k + " error"
	}
	return fmt.Sprintf("%s with %s: %s", what, uneventful.ErrorCode(o.err), uneventful.ErrorMessage(o.err))
}

func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// same reports whether two outcomes of Decide are the same.
func same(a, b outcome) bool {
	if (a.err == nil) != (b.err == nil) {
		return false
	}
	if a.err != nil {
		return kindName(a.err) == kindName(b.err) && uneventful.ErrorCode(a.err) == uneventful.ErrorCode(b.err) &&
			uneventful.ErrorMessage(a.err) == uneventful.ErrorMessage(b.err)
	}
	return difference(a.change, b.change) == ""
}

// kindName names the sentinel kind of err: "rejected", "invalid", ...
func kindName(err error) string {
	return strings.ReplaceAll(uneventful.NewReplyError(err).Kind, "_", " ")
}

// show returns JSON text from a test for a message: compacted if it is
// JSON, quoted if not.
func show(text string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(text)) != nil {
		return fmt.Sprintf("%q", text)
	}
	return b.String()
}

func compact(data []byte) string { return show(string(data)) }

// decode reads exactly one JSON value, with numbers as json.Number.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("there is more after the JSON value")
	}
	return v, nil
}

// difference says where the JSON got differs from want in meaning, "" if
// nowhere.
func difference(got, want []byte) string {
	g, err := decode(got)
	if err != nil {
		return fmt.Sprintf("got is not JSON: %v", err)
	}
	w, err := decode(want)
	if err != nil {
		return fmt.Sprintf("want is not JSON: %v", err)
	}
	return diff("", g, w)
}

func diff(path string, got, want any) string {
	mismatch := func() string {
		at := ""
		if path != "" {
			at = "at " + path + ": "
		}
		return fmt.Sprintf("%sgot %s, want %s", at, describe(got), describe(want))
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return mismatch()
		}
		keys := make([]string, 0, len(g)+len(w))
		for k := range g {
			keys = append(keys, k)
		}
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			p := member(path, k)
			gv, inGot := g[k]
			wv, inWant := w[k]
			switch {
			case !inGot:
				return fmt.Sprintf("%s is missing", p)
			case !inWant:
				return fmt.Sprintf("%s is not wanted", p)
			}
			if d := diff(p, gv, wv); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return mismatch()
		}
		for i := range w {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); d != "" {
				return d
			}
		}
	case json.Number:
		if g, ok := got.(json.Number); !ok || !sameNumber(g, w) {
			return mismatch()
		}
	default: // string, bool, nil
		if got != want {
			return mismatch()
		}
	}
	return ""
}

// sameNumber reports whether two JSON numbers have the same exact value.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// member names the member k of the value at path: a.b, or a["b c"].
func member(path, k string) string {
	if !identRE.MatchString(k) {
		return fmt.Sprintf("%s[%q]", path, k)
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// describe names a decoded JSON value for messages.
func describe(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return fmt.Sprintf("an object with %d key%s", len(v), plural(len(v)))
	case []any:
		return fmt.Sprintf("an array of %d", len(v))
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
