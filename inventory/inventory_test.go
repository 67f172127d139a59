package inventory_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/domaintest"
	"github.com/uneventful/uneventful/inventory"
)

const maxStock = "9223372036854775807" // math.MaxInt64

func TestDecide(t *testing.T) {
	addFive := []string{inventory.Add, `{"quantity": 5}`}
	for _, tc := range []struct {
		name          string
		given         []string // command, body, command, body, ...
		command, body string
		change        string // the accepted change
		code, msg     string // the rejection
		state         string // the state after
	}{
		{name: "add to a new product", command: inventory.Add, body: `{"quantity": 5}`,
			change: `{"quantity":5}`, state: `{"on_hand":5,"reserved":0}`},
		{name: "add more", given: addFive, command: inventory.Add, body: `{"quantity": 3}`,
			change: `{"quantity":3}`, state: `{"on_hand":8,"reserved":0}`},
		{name: "add up to the most a product holds", given: []string{inventory.Add, `{"quantity": 9223372036854775806}`},
			command: inventory.Add, body: `{"quantity": 1}`, change: `{"quantity":1}`, state: `{"on_hand":` + maxStock + `,"reserved":0}`},
		{name: "add past the most a product holds", given: []string{inventory.Add, `{"quantity": ` + maxStock + `}`},
			command: inventory.Add, body: `{"quantity": 1}`, code: "stock_overflow",
			msg:   "adding 1 to the 9223372036854775807 on hand would pass the most a product can hold, 9223372036854775807",
			state: `{"on_hand":` + maxStock + `,"reserved":0}`},
		{name: "reserve", given: addFive, command: inventory.Reserve, body: `{"quantity": 2, "reservation": "order-1"}`,
			change: `{"quantity":2,"reservation":"order-1"}`, state: `{"on_hand":5,"reserved":2,"reservations":{"order-1":2}}`},
		{name: "reserve all there is", given: addFive, command: inventory.Reserve, body: `{"quantity": 5, "reservation": "order-1"}`,
			change: `{"quantity":5,"reservation":"order-1"}`, state: `{"on_hand":5,"reserved":5,"reservations":{"order-1":5}}`},
		{name: "reserve more than there is", given: addFive, command: inventory.Reserve, body: `{"quantity": 7, "reservation": "r1"}`,
			code: "insufficient_stock", msg: "insufficient stock: 5 available, 7 asked for", state: `{"on_hand":5,"reserved":0}`},
		{name: "reserve a product never stocked", command: inventory.Reserve, body: `{"quantity": 1, "reservation": "r1"}`,
			code: "insufficient_stock", msg: "insufficient stock: 0 available, 1 asked for", state: `{"on_hand":0,"reserved":0}`},
		{name: "reserve more than other reservations left", given: append(addFive, inventory.Reserve, `{"quantity": 4, "reservation": "r1"}`),
			command: inventory.Reserve, body: `{"quantity": 2, "reservation": "r2"}`,
			code: "insufficient_stock", msg: "insufficient stock: 1 available, 2 asked for", state: `{"on_hand":5,"reserved":4,"reservations":{"r1":4}}`},
		{name: "reserve under an id held", given: append(addFive, inventory.Reserve, `{"quantity": 1, "reservation": "r1"}`),
			command: inventory.Reserve, body: `{"quantity": 1, "reservation": "r1"}`,
			code: "reservation_exists", msg: `reservation "r1" is held already; release it first, or use a new id`,
			state: `{"on_hand":5,"reserved":1,"reservations":{"r1":1}}`},
		{name: "reserve under a released id", given: append(addFive, inventory.Reserve, `{"quantity": 1, "reservation": "r1"}`, inventory.Release, `{"reservation": "r1"}`),
			command: inventory.Reserve, body: `{"quantity": 5, "reservation": "r1"}`,
			change: `{"quantity":5,"reservation":"r1"}`, state: `{"on_hand":5,"reserved":5,"reservations":{"r1":5}}`},
		{name: "release", given: append(addFive, inventory.Reserve, `{"quantity": 2, "reservation": "r1"}`, inventory.Reserve, `{"quantity": 1, "reservation": "r2"}`),
			command: inventory.Release, body: `{"reservation": "r1"}`,
			change: `{"quantity":2,"reservation":"r1"}`, state: `{"on_hand":5,"reserved":1,"reservations":{"r2":1}}`},
		{name: "release the last reservation", given: append(addFive, inventory.Reserve, `{"quantity": 2, "reservation": "r1"}`),
			command: inventory.Release, body: `{"reservation": "r1"}`, change: `{"quantity":2,"reservation":"r1"}`, state: `{"on_hand":5,"reserved":0}`},
		{name: "release an unknown reservation", given: addFive, command: inventory.Release, body: `{"reservation": "r1"}`,
			code: "unknown_reservation", msg: `the product holds no reservation "r1"`, state: `{"on_hand":5,"reserved":0}`},
		{name: "release twice", given: append(addFive, inventory.Reserve, `{"quantity": 2, "reservation": "r1"}`, inventory.Release, `{"reservation": "r1"}`),
			command: inventory.Release, body: `{"reservation": "r1"}`, code: "unknown_reservation", state: `{"on_hand":5,"reserved":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := domaintest.New(t, inventory.New())
			for i := 0; i < len(tc.given); i += 2 {
				s.Given(tc.given[i], tc.given[i+1])
			}
			s.When(tc.command, tc.body)
			if tc.code != "" {
				s.ThenRejected(tc.code)
				if tc.msg != "" {
					if got := uneventful.ErrorMessage(s.Err()); got != tc.msg {
						t.Errorf("message = %q, want %q", got, tc.msg)
					}
				}
			} else {
				s.ThenAccepted(tc.change)
			}
			s.ThenState(tc.state)
		})
	}
}

func TestView(t *testing.T) {
	domaintest.New(t, inventory.New()).
		ThenView(`{"available":0,"reserved":0}`).
		Given(inventory.Add, `{"quantity": 5}`).
		Given(inventory.Reserve, `{"quantity": 2, "reservation": "r1"}`).
		ThenView(`{"available":3,"reserved":2}`)
}

func TestTooManyReservations(t *testing.T) {
	held := make([]string, inventory.MaxReservations)
	for i := range held {
		held[i] = fmt.Sprintf(`"r%d":1`, i)
	}
	n := inventory.MaxReservations
	domaintest.New(t, inventory.New()).
		GivenState(fmt.Sprintf(`{"on_hand":%d,"reserved":%d,"reservations":{%s}}`, n+5, n, strings.Join(held, ","))).
		When(inventory.Reserve, `{"quantity": 1, "reservation": "one-more"}`).
		ThenRejected("too_many_reservations").
		Given(inventory.Release, `{"reservation": "r0"}`).
		When(inventory.Reserve, `{"quantity": 1, "reservation": "one-more"}`).
		ThenAccepted(`{"quantity":1,"reservation":"one-more"}`).
		ThenView(fmt.Sprintf(`{"available":5,"reserved":%d}`, n))
}

func TestParse(t *testing.T) {
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		command, body string
		want          string // the parsed data
		code, msg     string // the error
	}{
		{command: inventory.Add, body: `{"quantity": 5}`, want: `{"quantity":5}`},
		{command: inventory.Add, body: `{"quantity": ` + maxStock + `}`, want: `{"quantity":` + maxStock + `}`},
		{command: inventory.Add, body: `{"quantity": 2.5}`, code: "wrong_type", msg: `field "quantity" takes an integer in the range of int64; got 2.5`},
		{command: inventory.Add, body: `{"quantity": 5.0}`, code: "wrong_type"},
		{command: inventory.Add, body: `{"quantity": 1e3}`, code: "wrong_type"},
		{command: inventory.Add, body: `{"quantity": 9223372036854775808}`, code: "wrong_type"},
		{command: inventory.Add, body: `{"quantity": "5"}`, code: "wrong_type", msg: `field "quantity" takes an integer in the range of int64; got a string`},
		{command: inventory.Add, body: `{"quantity": 0}`, code: "quantity_not_positive", msg: "the quantity must be a whole number of 1 or more; got 0"},
		{command: inventory.Add, body: `{"quantity": -3}`, code: "quantity_not_positive"},
		{command: inventory.Add, body: `{}`, code: "quantity_required", msg: `the quantity is missing or null; send it as a whole number such as {"quantity": 5}`},
		{command: inventory.Add, body: `{"quantity": null}`, code: "quantity_required"},
		{command: inventory.Add, body: `{"quantity": 5, "reservation": "r1"}`, code: "unknown_field", msg: `unknown field "reservation"; the body takes {"quantity": <whole number>}`},
		{command: inventory.Add, body: `{"quantity": 5, "Quantity": 6}`, code: "duplicate_field"},
		{command: inventory.Add, body: ``, code: "empty_body", msg: `the body is empty; send a JSON object such as {"quantity": <whole number>}`},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": "order-1"}`, want: `{"quantity":2,"reservation":"order-1"}`},
		{command: inventory.Reserve, body: `{"reservation": "r1", "quantity": 2}`, want: `{"quantity":2,"reservation":"r1"}`},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": "` + long[:64] + `"}`, want: `{"quantity":2,"reservation":"` + long[:64] + `"}`},
		{command: inventory.Reserve, body: `{"quantity": 2}`, code: "reservation_required", msg: `the reservation is missing or null; send its id as a string such as {"reservation": "order-1"}`},
		{command: inventory.Reserve, body: `{"reservation": "r1"}`, code: "quantity_required"},
		{command: inventory.Reserve, body: `{"quantity": 0, "reservation": "r1"}`, code: "quantity_not_positive"},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": ""}`, code: "invalid_reservation",
			msg: `the reservation id must be 1 to 64 letters, digits, '-', '_', '.' or ':'; got ""`},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": "a b"}`, code: "invalid_reservation"},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": "` + long + `"}`, code: "invalid_reservation"},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": 7}`, code: "wrong_type"},
		{command: inventory.Reserve, body: `{"quantity": 2, "reservation": "r1", "note": "x"}`, code: "unknown_field",
			msg: `unknown field "note"; the body takes {"quantity": <whole number>, "reservation": "<id>"}`},
		{command: inventory.Release, body: `{"reservation": "r1"}`, want: `{"reservation":"r1"}`},
		{command: inventory.Release, body: `{"reservation": "r1", "quantity": 2}`, code: "unknown_field"},
		{command: inventory.Release, body: `{}`, code: "reservation_required"},
		{command: inventory.Release, body: `{"reservation": "r\u00e9"}`, code: "invalid_reservation"},
	} {
		t.Run(tc.command+" "+tc.body, func(t *testing.T) {
			data, err := inventory.New().Parse(tc.command, []byte(tc.body))
			if tc.code == "" {
				if err != nil || string(data) != tc.want {
					t.Fatalf("Parse = %s, %v; want %s", data, err, tc.want)
				}
				return
			}
			if !errors.Is(err, uneventful.ErrInvalid) || uneventful.ErrorCode(err) != tc.code {
				t.Fatalf("Parse = %s, %v (code %s); want an ErrInvalid with code %s", data, err, uneventful.ErrorCode(err), tc.code)
			}
			if tc.msg != "" && uneventful.ErrorMessage(err) != tc.msg {
				t.Errorf("message = %q, want %q", uneventful.ErrorMessage(err), tc.msg)
			}
		})
	}
	domaintest.New(t, inventory.New()).When("ship", `{"quantity": 1}`).ThenError(uneventful.ErrNotFound, "unknown_command")
}

// TestDecideChecksItsInput sends Decide data that no Parse made: a writer
// trusts no server.
func TestDecideChecksItsInput(t *testing.T) {
	d := inventory.New()
	state := d.Initial()
	for _, tc := range []struct{ command, data, code string }{
		{inventory.Add, `{"quantity":-5}`, "quantity_not_positive"},
		{inventory.Add, `{}`, "quantity_not_positive"},
		{inventory.Add, `{"quantity":1.5}`, "invalid_command"},
		{inventory.Reserve, `{"quantity":1}`, "invalid_reservation"},
		{inventory.Reserve, `{"quantity":1,"reservation":"a b"}`, "invalid_reservation"},
		{inventory.Release, `{"reservation":""}`, "invalid_reservation"},
	} {
		change, err := d.Decide(state, tc.command, json.RawMessage(tc.data))
		if !errors.Is(err, uneventful.ErrInvalid) || uneventful.ErrorCode(err) != tc.code {
			t.Errorf("Decide(%s %s) = %s, %v; want an ErrInvalid with code %s", tc.command, tc.data, change, err, tc.code)
		}
	}
}

// model is the reference model of a product's stock: the sum of what was
// added, and what each reservation holds.
type model struct {
	onHand       int64
	reservations map[string]int64
}

func (m *model) reserved() int64 {
	var n int64
	for _, q := range m.reservations {
		n += q
	}
	return n
}

// ids are the reservation ids the sequences use; the last is invalid.
var ids = []string{"r0", "r1", "r2", "order-17", "a:b.c_d", "x", "r0-again", "bad id"}

// checkSequence runs commands decoded from ops through a domaintest
// scenario and the reference model, and checks that they agree on every
// outcome, change, state and view. Each op is a byte: bits 0-1 pick add,
// reserve or release (3 is add too); bits 2-4 pick a reservation id; bits
// 5-7 pick the quantity: a byte that follows (0), the available stock (1)
// or one more (2), the room left below the largest stock (3) or one more
// (4), minus a byte that follows (5), 1 (6) or the largest int64 (7).
func checkSequence(t *testing.T, ops []byte) {
	m := &model{reservations: map[string]int64{}}
	s := domaintest.New(t, inventory.New())
	for len(ops) > 0 && !t.Failed() {
		op := ops[0]
		ops = ops[1:]
		next := func() int64 {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int64(b)
		}
		command := []string{inventory.Add, inventory.Reserve, inventory.Release, inventory.Add}[op&3]
		id := ids[op>>2&7]
		available := m.onHand - m.reserved()
		q := new(big.Int)
		switch op >> 5 {
		case 0:
			q.SetInt64(next())
		case 1:
			q.SetInt64(available)
		case 2:
			q.SetInt64(available).Add(q, big.NewInt(1))
		case 3:
			q.SetInt64(math.MaxInt64 - m.onHand)
		case 4:
			q.SetInt64(math.MaxInt64-m.onHand).Add(q, big.NewInt(1))
		case 5:
			q.SetInt64(-next())
		case 6:
			q.SetInt64(1)
		case 7:
			q.SetInt64(math.MaxInt64)
		}
		var body string
		switch command {
		case inventory.Add:
			body = fmt.Sprintf(`{"quantity": %s}`, q)
		case inventory.Reserve:
			body = fmt.Sprintf(`{"quantity": %s, "reservation": %q}`, q, id)
		case inventory.Release:
			body = fmt.Sprintf(`{"reservation": %q}`, id)
		}
		s.When(command, body)
		held, isHeld := m.reservations[id]
		switch {
		case command != inventory.Release && !q.IsInt64():
			s.ThenInvalid("wrong_type")
		case command != inventory.Release && q.Sign() <= 0:
			s.ThenInvalid("quantity_not_positive")
		case command != inventory.Add && id == "bad id":
			s.ThenInvalid("invalid_reservation")
		case command == inventory.Add && q.Int64() > math.MaxInt64-m.onHand:
			s.ThenRejected("stock_overflow")
		case command == inventory.Add:
			m.onHand += q.Int64()
			s.ThenAccepted(fmt.Sprintf(`{"quantity":%s}`, q))
		case command == inventory.Reserve && isHeld:
			s.ThenRejected("reservation_exists")
		case command == inventory.Reserve && q.Int64() > available:
			s.ThenRejected("insufficient_stock")
		case command == inventory.Reserve:
			m.reservations[id] = q.Int64()
			s.ThenAccepted(fmt.Sprintf(`{"quantity":%s,"reservation":%q}`, q, id))
		case !isHeld:
			s.ThenRejected("unknown_reservation")
		default:
			delete(m.reservations, id)
			s.ThenAccepted(fmt.Sprintf(`{"quantity":%d,"reservation":%q}`, held, id))
		}
		want := struct {
			OnHand       int64            `json:"on_hand"`
			Reserved     int64            `json:"reserved"`
			Reservations map[string]int64 `json:"reservations,omitempty"`
		}{m.onHand, m.reserved(), m.reservations}
		b, _ := json.Marshal(want)
		s.ThenState(string(b))
		s.ThenView(fmt.Sprintf(`{"available":%d,"reserved":%d}`, m.onHand-m.reserved(), m.reserved()))
		if st := s.State().(inventory.State); st.Reserved < 0 || st.Reserved > st.OnHand {
			t.Fatalf("the invariant 0 <= reserved <= on hand is broken: %+v", st)
		}
	}
}

func TestInventoryMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		ops := make([]byte, rng.IntN(60))
		for i := range ops {
			ops[i] = byte(rng.Uint32())
		}
		checkSequence(t, ops)
		if t.Failed() {
			t.Fatalf("ops %q", ops)
		}
	}
}

func FuzzInventory(f *testing.F) {
	f.Fuzz(checkSequence)
}

// FuzzParse checks that Parse takes any body without panicking, refuses
// it with a coded ErrInvalid or returns data that Decide takes back.
func FuzzParse(f *testing.F) {
	d := inventory.New()
	f.Fuzz(func(t *testing.T, command uint8, body []byte) {
		c := d.Commands()[int(command)%len(d.Commands())]
		data, err := d.Parse(c, body)
		if err != nil {
			if !errors.Is(err, uneventful.ErrInvalid) || uneventful.ErrorCode(err) == "invalid" {
				t.Fatalf("Parse(%s, %q) = %v, want an ErrInvalid with a code", c, body, err)
			}
			return
		}
		var state any = inventory.State{OnHand: math.MaxInt64 / 2}
		if _, err := d.Decide(state, c, data); errors.Is(err, uneventful.ErrInvalid) {
			t.Fatalf("Parse(%s, %q) = %s, which Decide refuses: %v", c, body, data, err)
		}
	})
}

func BenchmarkDecideApply(b *testing.B) {
	d := inventory.New()
	var state any = inventory.State{OnHand: 1 << 40}
	reserve, _ := d.Parse(inventory.Reserve, []byte(`{"quantity": 1, "reservation": "r1"}`))
	release, _ := d.Parse(inventory.Release, []byte(`{"reservation": "r1"}`))
	for b.Loop() {
		for _, c := range []struct {
			command string
			data    json.RawMessage
		}{{inventory.Reserve, reserve}, {inventory.Release, release}} {
			change, err := d.Decide(state, c.command, c.data)
			if err != nil {
				b.Fatal(err)
			}
			if state, err = d.Apply(state, c.command, change); err != nil {
				b.Fatal(err)
			}
		}
	}
}
