package domaintest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/domaintest"
	"github.com/uneventful/uneventful/inventory"
	"github.com/uneventful/uneventful/wallet"
)

// recorder is a testing.TB that records failures instead of failing. Its
// Fatalf returns, unlike testing.T's, so that the tests see whether a
// scenario stops by itself after a fatal failure. Any other method of
// testing.TB panics: domaintest must not need it.
type recorder struct {
	testing.TB
	errors []string
	fatals []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

// check fails t unless r recorded errors with exactly the given messages
// and, if fatal is set, one fatal failure with that message.
func (r *recorder) check(t *testing.T, errors []string, fatal string) {
	t.Helper()
	if strings.Join(r.errors, "\n") != strings.Join(errors, "\n") {
		t.Errorf("errors:\n\t%s\nwant:\n\t%s", strings.Join(r.errors, "\n\t"), strings.Join(errors, "\n\t"))
	}
	switch {
	case fatal == "" && len(r.fatals) > 0:
		t.Errorf("fatal %q, want none", r.fatals)
	case fatal != "" && (len(r.fatals) != 1 || r.fatals[0] != fatal):
		t.Errorf("fatal:\n\t%s\nwant one:\n\t%s", strings.Join(r.fatals, "\n\t"), fatal)
	}
}

const (
	addFive   = `{"quantity": 5}`
	reserveR1 = `{"quantity": 2, "reservation": "r1"}`
)

// TestPasses runs scenarios that hold and checks that they report nothing.
func TestPasses(t *testing.T) {
	for name, run := range map[string]func(t testing.TB){
		"the example": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				Given("add", `{"quantity": 5}`).
				When("reserve", `{"quantity": 7, "reservation": "r1"}`).
				ThenRejected("insufficient_stock")
		},
		"accepted, then the state and view": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				Given("add", addFive).
				When("reserve", reserveR1).
				ThenAccepted(`{"reservation": "r1", "quantity": 2.0}`).
				ThenState(`{"reservations": {"r1": 2}, "reserved": 2, "on_hand": 5}`).
				ThenView(`{"available": 3, "reserved": 2}`)
		},
		"a rejection changes nothing": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				Given("add", addFive).
				When("release", `{"reservation": "r1"}`).
				ThenRejected("unknown_reservation").
				ThenState(`{"on_hand":5,"reserved":0}`)
		},
		"invalid": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				When("add", `{"quantity": 0}`).ThenInvalid("quantity_not_positive").
				When("add", `{"quantity": 5, "extra": 1}`).ThenInvalid("unknown_field").
				When("ship", `{}`).ThenError(uneventful.ErrNotFound, "unknown_command")
		},
		"the scenario goes on after a Then": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				When("add", addFive).ThenAccepted(`{"quantity":5}`).
				When("reserve", reserveR1).ThenAccepted(`{"quantity":2,"reservation":"r1"}`).
				When("reserve", reserveR1).ThenRejected("reservation_exists").
				ThenView(`{"available":3,"reserved":2}`)
		},
		"given a recorded change": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				GivenChange("add", `{"quantity":5}`).
				GivenChange("reserve", `{"quantity":2,"reservation":"r1"}`).
				When("release", `{"reservation": "r1"}`).
				ThenAccepted(`{"quantity":2,"reservation":"r1"}`)
		},
		"given a state": func(t testing.TB) {
			domaintest.New(t, inventory.New()).
				GivenState(`{"on_hand":5,"reserved":2,"reservations":{"r1":2}}`).
				When("reserve", `{"quantity": 4, "reservation": "r2"}`).
				ThenRejected("insufficient_stock")
		},
		"the initial state": func(t testing.TB) {
			domaintest.New(t, inventory.New()).ThenState(`{"on_hand":0,"reserved":0}`).ThenView(`{"available":0,"reserved":0}`)
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{}
			run(r)
			r.check(t, nil, "")
			run(t) // and the same with a real *testing.T
		})
	}
}

// TestFails checks that scenarios that do not hold fail, with messages
// that say what happened.
func TestFails(t *testing.T) {
	const where = `inventory: given add {"quantity":5}; when reserve {"quantity":2,"reservation":"r1"}: `
	for _, tc := range []struct {
		name   string
		run    func(t testing.TB)
		errors []string
		fatal  string
	}{
		{
			name: "rejected, want accepted",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).
					When("reserve", `{"quantity": 7, "reservation": "r1"}`).ThenAccepted(`{"quantity":7,"reservation":"r1"}`)
			},
			errors: []string{`inventory: given add {"quantity":5}; when reserve {"quantity":7,"reservation":"r1"}: want accepted, but Decide rejected it with insufficient_stock: insufficient stock: 5 available, 7 asked for`},
		},
		{
			name: "accepted, want rejected",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).When("reserve", reserveR1).ThenRejected("insufficient_stock")
			},
			errors: []string{where + `want rejected insufficient_stock, but it was accepted with the change {"quantity":2,"reservation":"r1"}`},
		},
		{
			name: "rejected with another code",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).When("reserve", reserveR1).ThenRejected("reservation_exists")
			},
			errors: []string{`inventory: when reserve {"quantity":2,"reservation":"r1"}: want rejected reservation_exists, but Decide rejected it with insufficient_stock: insufficient stock: 0 available, 2 asked for`},
		},
		{
			name: "invalid, want rejected",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).When("add", `{"quantity": 0}`).ThenRejected("quantity_not_positive")
			},
			errors: []string{`inventory: when add {"quantity":0}: want rejected quantity_not_positive, but Parse found it invalid with quantity_not_positive: the quantity must be a whole number of 1 or more; got 0`},
		},
		{
			name: "rejected, want invalid",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).When("reserve", reserveR1).ThenInvalid("insufficient_stock")
			},
			errors: []string{`inventory: when reserve {"quantity":2,"reservation":"r1"}: want invalid insufficient_stock, but Decide rejected it with insufficient_stock: insufficient stock: 0 available, 2 asked for`},
		},
		{
			name: "not found, want invalid",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).When("ship", `{}`).ThenInvalid("unknown_command")
			},
			errors: []string{`inventory: when ship {}: want invalid unknown_command, but Parse returned a not found error with unknown_command: inventory has no command "ship"; its commands are add, release, reserve`},
		},
		{
			name: "another change",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).When("reserve", reserveR1).ThenAccepted(`{"quantity":3,"reservation":"r1"}`)
			},
			errors: []string{where + `the change is {"quantity":2,"reservation":"r1"}, want {"quantity":3,"reservation":"r1"} (at quantity: got 2, want 3)`},
		},
		{
			name: "another state",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).When("reserve", reserveR1).
					ThenState(`{"on_hand":5,"reserved":2}`).
					ThenState(`{"on_hand":5,"reserved":2,"reservations":{"r1":"2"}}`).
					ThenState(`{"on_hand":5,"reserved":2,"reservations":{"r1":2},"note":null}`).
					ThenState(`[5, 2]`)
			},
			errors: []string{
				where + `the state is {"on_hand":5,"reserved":2,"reservations":{"r1":2}}, want {"on_hand":5,"reserved":2} (reservations is not wanted)`,
				where + `the state is {"on_hand":5,"reserved":2,"reservations":{"r1":2}}, want {"on_hand":5,"reserved":2,"reservations":{"r1":"2"}} (at reservations.r1: got 2, want "2")`,
				where + `the state is {"on_hand":5,"reserved":2,"reservations":{"r1":2}}, want {"on_hand":5,"reserved":2,"reservations":{"r1":2},"note":null} (note is missing)`,
				where + `the state is {"on_hand":5,"reserved":2,"reservations":{"r1":2}}, want [5,2] (got an object with 3 keys, want an array of 2)`,
			},
		},
		{
			name: "another view",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).When("reserve", reserveR1).ThenView(`{"available":5,"reserved":0}`)
			},
			errors: []string{where + `the view is {"available":3,"reserved":2}, want {"available":5,"reserved":0} (at available: got 3, want 5)`},
		},
		{
			name: "a given command rejected",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("reserve", reserveR1).
					When("add", addFive).ThenRejected("x").ThenState(`{}`).ThenView(`{}`)
			},
			fatal: `inventory: given reserve {"quantity":2,"reservation":"r1"}: a given command must be accepted, but Decide rejected it with insufficient_stock: insufficient stock: 0 available, 2 asked for`,
		},
		{
			name:  "a given command invalid",
			run:   func(t testing.TB) { domaintest.New(t, inventory.New()).Given("add", `{}`).Given("add", `{}`) },
			fatal: `inventory: given add {}: a given command must be accepted, but Parse found it invalid with quantity_required: the quantity is missing or null; send it as a whole number such as {"quantity": 5}`,
		},
		{
			name: "a given change that Apply cannot take",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).GivenChange("add", `{"quantity":"5"}`).When("add", addFive)
			},
			fatal: `inventory: given change add {"quantity":"5"}: Apply failed: decode change: json: cannot unmarshal string into Go struct field change.quantity of type int64`,
		},
		{
			name:  "a given state that DecodeState cannot read",
			run:   func(t testing.TB) { domaintest.New(t, inventory.New()).GivenState(`{"on_hand":1.5}`).ThenState(`{}`) },
			fatal: `inventory: given state {"on_hand":1.5}: DecodeState failed: decode inventory state: json: cannot unmarshal number 1.5 into Go struct field State.on_hand of type int64`,
		},
		{
			name: "Then before When",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).Given("add", addFive).ThenAccepted(`{}`).ThenRejected("x")
			},
			fatal: `inventory: given add {"quantity":5}: ThenAccepted needs a When before it`,
		},
		{
			name: "Then after a Given",
			run: func(t testing.TB) {
				domaintest.New(t, inventory.New()).When("add", addFive).ThenAccepted(`{"quantity":5}`).Given("add", addFive).ThenAccepted(`{"quantity":5}`)
			},
			fatal: `inventory: when add {"quantity":5}; given add {"quantity":5}: ThenAccepted needs a When before it`,
		},
		{
			name:  "want is not JSON",
			run:   func(t testing.TB) { domaintest.New(t, inventory.New()).ThenState(`{on_hand: 0}`).ThenView(`{}`) },
			fatal: `inventory: initially: the wanted state "{on_hand: 0}" is not JSON: invalid character 'o' looking for beginning of object key string`,
		},
		{
			name: "a nil model",
			run: func(t testing.TB) {
				domaintest.New(t, nil).Given("add", addFive).When("add", addFive).ThenAccepted(`{}`)
			},
			fatal: `domaintest.New: the model is nil`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			tc.run(r)
			r.check(t, tc.errors, tc.fatal)
		})
	}
}

// tally is a domain for testing domaintest: a count per key, with the
// command inc {"key": "a"}. broken names the rule of the Model contract
// that it breaks, if any.
func tally(broken string) uneventful.Model {
	type inc struct {
		Key string `json:"key"`
		N   int64  `json:"n,omitempty"`
	}
	var calls int64
	d := &uneventful.Domain[map[string]int64]{
		DomainName:   "tally",
		InitialState: map[string]int64{},
		Handlers: map[string]uneventful.Handler[map[string]int64]{
			"inc": uneventful.Handle(
				func(body []byte) (inc, error) {
					var in inc
					return in, uneventful.DecodeJSON(body, &in)
				},
				func(s map[string]int64, in inc) (inc, error) {
					if broken == "decide is not deterministic" {
						calls++
						in.N = calls
					}
					return in, nil
				},
				func(s map[string]int64, c inc) map[string]int64 {
					if broken == "apply changes its state" {
						s[c.Key]++
						return s
					}
					s = maps.Clone(s)
					s[c.Key]++
					if broken == "apply is not deterministic" {
						calls++
						s["calls"] = calls
					}
					return s
				}),
		},
		ViewFunc: func(s map[string]int64) any {
			if broken == "view is not an object" {
				return []int{1}
			}
			return s
		},
	}
	switch broken {
	case "apply fails":
		return failingApply{d}
	case "the state does not survive the state log":
		return forgetful{d}
	}
	return d
}

type failingApply struct{ uneventful.Model }

func (failingApply) Apply(any, string, json.RawMessage) (any, error) {
	return nil, errors.New("cannot apply")
}

type forgetful struct{ uneventful.Model }

func (forgetful) DecodeState(json.RawMessage) (any, error) { return map[string]int64{}, nil }

// TestContract checks that domaintest catches a domain that breaks the
// contract a writer relies on, in a When and in a Given.
func TestContract(t *testing.T) {
	for _, tc := range []struct {
		broken string
		err    string
	}{
		{"decide is not deterministic", `Decide is not deterministic: for the same state and command, first it was accepted with the change {"key":"a","n":1}, then it was accepted with the change {"key":"a","n":2}`},
		{"apply changes its state", `Decide or Apply changed the state it was given from {} to {"a":2}; it must return a new state and leave the old one as it was (copy maps and slices before changing them)`},
		{"apply is not deterministic", `Apply is not deterministic: the same change {"key":"a"} made the state {"a":1,"calls":1}, then {"a":1,"calls":2}`},
		{"apply fails", `Decide accepted it with the change {"key":"a"}, but Apply failed: cannot apply; Apply must take every change that Decide returns`},
		{"the state does not survive the state log", `the state does not survive the state log: EncodeState wrote {"a":1}, and what DecodeState read from it encodes as {} (a is missing)`},
		{"view is not an object", `View returned [1]; want a JSON object`},
	} {
		t.Run(tc.broken, func(t *testing.T) {
			r := &recorder{}
			domaintest.New(r, tally(tc.broken)).When("inc", `{"key": "a"}`).ThenAccepted(`{"key":"a"}`)
			r.check(t, []string{`tally: when inc {"key":"a"}: ` + tc.err}, "")

			r = &recorder{}
			domaintest.New(r, tally(tc.broken)).Given("inc", `{"key": "a"}`).When("inc", `{"key": "a"}`)
			r.check(t, []string{`tally: given inc {"key":"a"}: ` + tc.err},
				`tally: given inc {"key":"a"}: the given command broke the domain's contract (see above)`)
		})
	}
	t.Run("a sound tally passes", func(t *testing.T) {
		domaintest.New(t, tally("")).Given("inc", `{"key": "a"}`).When("inc", `{"key": "b"}`).
			ThenAccepted(`{"key":"b"}`).ThenState(`{"a":1,"b":1}`).ThenView(`{"a":1,"b":1}`)
	})
}

// TestNumbersAreExact checks that numbers compare as exact decimals:
// equal in any notation, different however close.
func TestNumbersAreExact(t *testing.T) {
	for _, want := range []string{`{"balance":0.3,"scale":2}`, `{"balance":0.30,"scale":2.0}`, `{"balance":3e-1,"scale":2}`, `{"scale":2,"balance":30E-2}`} {
		r := &recorder{}
		domaintest.New(r, wallet.New(wallet.DefaultScale)).
			Given("credit", `{"amount": 0.1}`).Given("credit", `{"amount": 0.2}`).ThenState(want)
		r.check(t, nil, "")
	}
	// 0.30000000000000001 is 0.3 as a float64; not here.
	for _, want := range []string{`{"balance":0.30000000000000001,"scale":2}`, `{"balance":0.29,"scale":2}`, `{"balance":"0.3","scale":2}`} {
		r := &recorder{}
		domaintest.New(r, wallet.New(wallet.DefaultScale)).
			Given("credit", `{"amount": 0.1}`).Given("credit", `{"amount": 0.2}`).ThenState(want)
		if len(r.errors) != 1 || !strings.Contains(r.errors[0], "(at balance: got 0.3, want ") {
			t.Errorf("state {\"balance\":0.3} compared with %s: errors %q, want one that says they differ", want, r.errors)
		}
	}
	// The largest balance, which float64 cannot hold exactly.
	r := &recorder{}
	domaintest.New(r, wallet.New(wallet.DefaultScale)).
		GivenState(`{"balance":92233720368547758.07,"scale":2}`).
		ThenView(`{"balance":92233720368547758.06}`)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "(at balance: got 92233720368547758.07, want 92233720368547758.06)") {
		t.Errorf("errors %q, want one that says the balances differ", r.errors)
	}
}

// The wallet, tested with domaintest.

func TestWalletDebitNeverOverdraws(t *testing.T) {
	domaintest.New(t, wallet.New(wallet.DefaultScale)).
		Given("credit", `{"amount": 5}`).
		When("debit", `{"amount": 5.01}`).
		ThenRejected("insufficient_funds").
		ThenError(uneventful.ErrInsufficientFunds, "insufficient_funds").
		ThenState(`{"balance":5,"scale":2}`).
		When("debit", `{"amount": 5}`).
		ThenAccepted(`{"amount":5,"scale":2}`).
		ThenView(`{"balance":0}`)
}

func TestWalletAmountsAreExact(t *testing.T) {
	domaintest.New(t, wallet.New(wallet.DefaultScale)).
		Given("credit", `{"amount": 0.1}`).
		When("credit", `{"amount": 0.2}`).
		ThenAccepted(`{"amount":0.2,"scale":2}`).
		ThenState(`{"balance":0.3,"scale":2}`).
		ThenView(`{"balance":0.3}`).
		When("credit", `{"amount": 0.001}`).
		ThenInvalid("too_many_decimals").
		When("debit", `{"amount": 1e2}`).
		ThenInvalid("amount_not_decimal")
}

func TestWalletBalanceOverflow(t *testing.T) {
	domaintest.New(t, wallet.New(wallet.DefaultScale)).
		GivenState(`{"balance":92233720368547758.06,"scale":2}`).
		When("credit", `{"amount": 0.01}`).
		ThenAccepted(`{"amount":0.01,"scale":2}`).
		When("credit", `{"amount": 0.01}`).
		ThenRejected("balance_overflow").
		ThenView(`{"balance":92233720368547758.07}`)
}

func TestWalletReplaysRecordedChanges(t *testing.T) {
	domaintest.New(t, wallet.New(wallet.DefaultScale)).
		GivenChange("credit", `{"amount":12.34,"scale":2}`).
		GivenChange("debit", `{"amount":2.34,"scale":2}`).
		ThenState(`{"balance":10,"scale":2}`).
		When("debit", `{"amount": 10}`).
		ThenAccepted(`{"amount":10,"scale":2}`)
}
