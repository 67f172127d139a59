package wallet

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/uneventful/uneventful"
)

// do parses and decides a command against s and, if it is accepted,
// applies it. It returns the new state and the recorded change.
func do(t testing.TB, d *uneventful.Domain[State], s State, command, body string) (State, string, error) {
	t.Helper()
	data, err := d.Parse(command, []byte(body))
	if err != nil {
		return s, "", err
	}
	change, err := d.Decide(s, command, data)
	if err != nil {
		return s, "", err
	}
	next, err := d.Apply(s, command, change)
	if err != nil {
		t.Fatalf("apply %s %s: %v", command, change, err)
	}
	return next.(State), string(change), nil
}

func TestDecide(t *testing.T) {
	d := New(DefaultScale)
	for _, tc := range []struct {
		name    string
		balance Amount
		command string
		body    string
		want    Amount // balance after
		change  string // recorded change when accepted
		code    string // rejection code
		msg     string
	}{
		{name: "credit a new wallet", command: Credit, body: `{"amount": 5}`, want: 500, change: `{"amount":5,"scale":2}`},
		{name: "credit cents", balance: 500, command: Credit, body: `{"amount": 0.3}`, want: 530, change: `{"amount":0.3,"scale":2}`},
		{name: "debit", balance: 530, command: Debit, body: `{"amount": 5.29}`, want: 1, change: `{"amount":5.29,"scale":2}`},
		{name: "debit the whole balance", balance: 530, command: Debit, body: `{"amount": 5.3}`, want: 0, change: `{"amount":5.3,"scale":2}`},
		{name: "overdraw by a cent", balance: 530, command: Debit, body: `{"amount": 5.31}`, code: "insufficient_funds",
			msg: "insufficient funds: the balance is 5.3 and the debit is 5.31"},
		{name: "debit a new wallet", command: Debit, body: `{"amount": 5}`, code: "insufficient_funds",
			msg: "insufficient funds: the balance is 0 and the debit is 5"},
		{name: "credit to the largest balance", balance: math.MaxInt64 - 1, command: Credit, body: `{"amount": 0.01}`, want: math.MaxInt64},
		{name: "credit past the largest balance", balance: math.MaxInt64, command: Credit, body: `{"amount": 0.01}`, code: "balance_overflow",
			msg: "a credit of 0.01 would take the balance of 92233720368547758.07 past the most a wallet holds, 92233720368547758.07"},
		{name: "debit the largest balance", balance: math.MaxInt64, command: Debit, body: `{"amount": 92233720368547758.07}`, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, change, err := do(t, d, State{Balance: tc.balance, Scale: DefaultScale}, tc.command, tc.body)
			if tc.code != "" {
				e := checkError(t, err, uneventful.ErrRejected, tc.code)
				if e.Message != tc.msg {
					t.Errorf("message = %q, want %q", e.Message, tc.msg)
				}
				if got := errors.Is(err, uneventful.ErrInsufficientFunds); got != (tc.code == "insufficient_funds") {
					t.Errorf("errors.Is(%v, ErrInsufficientFunds) = %v", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := (State{Balance: tc.want, Scale: DefaultScale}); got != want {
				t.Errorf("state = %+v, want %+v", got, want)
			}
			if tc.change != "" && change != tc.change {
				t.Errorf("change = %s, want %s", change, tc.change)
			}
		})
	}
}

func TestAmountsAddUpExactly(t *testing.T) {
	d := New(DefaultScale)
	s := d.InitialState
	for _, body := range []string{`{"amount": 0.1}`, `{"amount": 0.2}`} {
		var err error
		if s, _, err = do(t, d, s, Credit, body); err != nil {
			t.Fatal(err)
		}
	}
	view, err := d.View(s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(view), `{"balance":0.3}`; got != want {
		t.Errorf("view = %s, want %s", got, want)
	}
}

func TestParse(t *testing.T) {
	d := New(DefaultScale)
	for _, tc := range []struct {
		body, code, msg string
	}{
		{body: `{"amount": 5}`},
		{body: `{"amount":null}`, code: "amount_required"},
		{body: `{}`, code: "amount_required", msg: `the amount is missing or null; send it as a JSON number such as {"amount": 5}`},
		{body: `{"amount":"5"}`, code: "amount_not_number"},
		{body: `{"amount":true}`, code: "amount_not_number"},
		{body: `{"amount":{}}`, code: "amount_not_number"},
		{body: `{"amount":1e3}`, code: "amount_not_decimal"},
		{body: `{"amount":1e309}`, code: "amount_not_decimal"},
		{body: `{"amount":-5}`, code: "amount_not_positive"},
		{body: `{"amount":0}`, code: "amount_not_positive"},
		{body: `{"amount":0.001}`, code: "too_many_decimals", msg: "0.001 has more than 2 decimal places; amounts are never rounded"},
		{body: `{"amount":92233720368547758.08}`, code: "amount_too_large"},
		{body: `{"amout":5}`, code: "unknown_field", msg: `unknown field "amout"; the body takes {"amount": <number>}`},
		{body: `{"amount":5,"amount":6}`, code: "duplicate_field", msg: `field "amount" appears twice`},
		{body: `{"amount":5} {"amount":6}`, code: "trailing_data"},
		{body: `{"amount":NaN}`, code: "malformed_json"},
		{body: ``, code: "empty_body", msg: `the body is empty; send a JSON object such as {"amount": <number>}`},
		{body: `[5]`, code: "not_object"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			for _, command := range []string{Credit, Debit} {
				data, err := d.Parse(command, []byte(tc.body))
				if tc.code == "" {
					if got, want := string(data), `{"amount":5,"scale":2}`; err != nil || got != want {
						t.Fatalf("Parse(%s, %s) = %s, %v; want %s", command, tc.body, data, err, want)
					}
					continue
				}
				e := checkError(t, err, uneventful.ErrInvalid, tc.code)
				if tc.msg != "" && e.Message != tc.msg {
					t.Errorf("message = %q, want %q", e.Message, tc.msg)
				}
			}
		})
	}
}

func TestWalletKeepsItsScale(t *testing.T) {
	cents := State{Balance: 500, Scale: 2}
	for _, tc := range []struct {
		name, body string
		scale      int // of the domain that parses the command
		command    string
		want       State
		code       string
	}{
		{name: "fewer places", body: `{"amount": 1.5}`, scale: 1, command: Credit, want: State{Balance: 650, Scale: 2}},
		{name: "more places", body: `{"amount": 1.250}`, scale: 3, command: Debit, want: State{Balance: 375, Scale: 2}},
		{name: "more places than the wallet has", body: `{"amount": 0.001}`, scale: 3, command: Credit, code: "too_many_decimals"},
		{name: "too large for the wallet", body: `{"amount": 9223372036854775807}`, scale: 0, command: Credit, code: "amount_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, change, err := do(t, New(tc.scale), cents, tc.command, tc.body)
			if tc.code != "" {
				checkError(t, err, uneventful.ErrRejected, tc.code)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			var c struct{ Scale int }
			if err := json.Unmarshal([]byte(change), &c); err != nil || c.Scale != 2 {
				t.Errorf("change %s is not at the wallet's scale 2", change)
			}
		})
	}
}

func TestStateJSON(t *testing.T) {
	d := New(DefaultScale)
	for _, tc := range []struct {
		state State
		json  string
	}{
		{State{Scale: 2}, `{"balance":0,"scale":2}`},
		{State{Balance: 530, Scale: 2}, `{"balance":5.3,"scale":2}`},
		{State{Balance: math.MaxInt64, Scale: 9}, `{"balance":9223372036.854775807,"scale":9}`},
		{State{Balance: 7, Scale: 0}, `{"balance":7,"scale":0}`},
	} {
		data, err := d.EncodeState(tc.state)
		if err != nil || string(data) != tc.json {
			t.Errorf("EncodeState(%+v) = %s, %v; want %s", tc.state, data, err, tc.json)
		}
		back, err := d.DecodeState(data)
		if err != nil || back != tc.state {
			t.Errorf("DecodeState(%s) = %+v, %v; want %+v", data, back, err, tc.state)
		}
	}
	if data, err := d.EncodeState(State{Balance: 5, Scale: MaxScale + 1}); err == nil {
		t.Errorf("EncodeState of a state with scale %d = %s, want an error", MaxScale+1, data)
	}
	for _, bad := range []string{
		`{"balance":5.3}`, `{"scale":2}`, `{"balance":-1,"scale":2}`, `{"balance":5.333,"scale":2}`,
		`{"balance":"5.3","scale":2}`, `{"balance":5,"scale":10}`, `{"balance":5,"scale":2.0}`, `{"balance":5,"scale":"2"}`,
		`{"balance":null,"scale":2}`, `{"balance":1e3,"scale":2}`, `[]`, `{`,
	} {
		_, err := d.DecodeState(json.RawMessage(bad))
		if err == nil {
			t.Errorf("DecodeState(%s) succeeded", bad)
		}
		// A recorded state that cannot be read is not the user's bad input.
		if errors.Is(err, uneventful.ErrInvalid) {
			t.Errorf("DecodeState(%s) = %v, want an error that is not ErrInvalid", bad, err)
		}
	}
}

func TestNewRejectsBadScale(t *testing.T) {
	for _, scale := range []int{-1, MaxScale + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", scale)
				}
			}()
			New(scale)
		}()
	}
}

// checkSequence runs commands decoded from ops against a wallet of the
// given scale and against a reference model in math/big, restoring the
// state from its JSON after each change as a writer does. Each op is a
// byte: bit 0 picks credit or debit; bits 1-2 make the amount the model's
// balance (1), the room left below the largest balance (2) or one more (3);
// when they are 0, the top three bits say how many bytes (1 to 8) of
// big-endian minor units follow.
func checkSequence(t testing.TB, scale int, ops []byte) {
	d := New(scale)
	var state any = d.Initial()
	maxUnits := big.NewInt(math.MaxInt64)
	balance, credits, debits := new(big.Int), new(big.Int), new(big.Int)
	for len(ops) > 0 {
		command := Credit
		if ops[0]&1 == 1 {
			command = Debit
		}
		units := new(big.Int)
		switch ops[0] >> 1 & 3 {
		case 0:
			n := int(ops[0]>>5) + 1
			if len(ops) < 1+n {
				return
			}
			units.SetBytes(ops[1 : 1+n])
			ops = ops[n:]
		case 1:
			units.Set(balance)
		case 2:
			units.Sub(maxUnits, balance)
		case 3:
			units.Sub(maxUnits, balance).Add(units, big.NewInt(1))
		}
		ops = ops[1:]
		// The reference writes the amount with every decimal place.
		body := `{"amount":` + new(big.Rat).SetFrac(units, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale) + `}`
		data, err := d.Parse(command, []byte(body))
		switch {
		case units.Sign() == 0:
			checkError(t, err, uneventful.ErrInvalid, "amount_not_positive")
			continue
		case units.Cmp(maxUnits) > 0:
			checkError(t, err, uneventful.ErrInvalid, "amount_too_large")
			continue
		case err != nil:
			t.Fatalf("parse %s %s: %v", command, body, err)
		}
		next := new(big.Int)
		if command == Credit {
			next.Add(balance, units)
		} else {
			next.Sub(balance, units)
		}
		change, err := d.Decide(state, command, data)
		switch {
		case command == Credit && next.Cmp(maxUnits) > 0:
			checkError(t, err, uneventful.ErrRejected, "balance_overflow")
			continue
		case command == Debit && next.Sign() < 0:
			checkError(t, err, uneventful.ErrInsufficientFunds, "insufficient_funds")
			continue
		case err != nil:
			t.Fatalf("%s %s on %s: %v", command, body, balance, err)
		}
		if state, err = d.Apply(state, command, change); err != nil {
			t.Fatalf("apply %s: %v", change, err)
		}
		balance = next
		if command == Credit {
			credits.Add(credits, units)
		} else {
			debits.Add(debits, units)
		}
		data, err = d.EncodeState(state)
		if want := `{"balance":` + decimal(balance, scale) + `,"scale":` + strconv.Itoa(scale) + `}`; err != nil || string(data) != want {
			t.Fatalf("state = %s, %v; want %s", data, err, want)
		}
		if state, err = d.DecodeState(data); err != nil {
			t.Fatal(err)
		}
		if got := big.NewInt(int64(state.(State).Balance)); got.Cmp(balance) != 0 || balance.Sign() < 0 || new(big.Int).Sub(credits, debits).Cmp(balance) != 0 {
			t.Fatalf("balance %s, model %s, credits %s, debits %s", got, balance, credits, debits)
		}
	}
}

func TestWalletMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		ops := make([]byte, rng.IntN(200))
		for i := range ops {
			ops[i] = byte(rng.Uint32())
		}
		checkSequence(t, rng.IntN(MaxScale+1), ops)
	}
}

func FuzzWallet(f *testing.F) {
	f.Fuzz(func(t *testing.T, scale uint8, ops []byte) {
		checkSequence(t, int(scale%(MaxScale+1)), ops)
	})
}

func BenchmarkParse(b *testing.B) {
	b.Run("amount", func(b *testing.B) {
		text := []byte("12345.67")
		for b.Loop() {
			if _, err := ParseAmount(text, DefaultScale); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("body", func(b *testing.B) {
		d, body := New(DefaultScale), []byte(`{"amount": 12345.67}`)
		for b.Loop() {
			if _, err := d.Parse(Credit, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecideApply(b *testing.B) {
	d := New(DefaultScale)
	data, err := d.Parse(Credit, []byte(`{"amount": 0.01}`))
	if err != nil {
		b.Fatal(err)
	}
	var state any = d.Initial()
	for b.Loop() {
		change, err := d.Decide(state, Credit, data)
		if err != nil {
			b.Fatal(err)
		}
		if state, err = d.Apply(state, Credit, change); err != nil {
			b.Fatal(err)
		}
	}
}
