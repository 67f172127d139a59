package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// Ids of wallets and transfers in the tests.
const (
	walletA   = "2fVrxbGB1P4iL3XmKLpNEtOQK0S"
	walletB   = "2fVrxkEK0bTbUgFvl1OYfF8sTsm"
	transfer1 = "3MgJ0yH1YCvqIqtIeIeL5ZtV7ZW"
)

// decide decides a command's data against s, as a writer does, and applies
// it if it is accepted. The transfer steps come from the process manager,
// not from Parse, so the data is given as the manager sends it.
func decide(t testing.TB, d *uneventful.Domain[State], s State, command, data string) (State, string, error) {
	t.Helper()
	change, err := d.Decide(s, command, json.RawMessage(data))
	if err != nil {
		return s, "", err
	}
	next, err := d.Apply(s, command, change)
	if err != nil {
		t.Fatalf("apply %s %s: %v", command, change, err)
	}
	return next.(State), string(change), nil
}

func TestTransferDecide(t *testing.T) {
	d := New(DefaultScale)
	const max = math.MaxInt64
	for _, tc := range []struct {
		name    string
		state   State
		command string
		data    string
		want    State  // state after
		change  string // recorded change when accepted
		kind    error  // ErrRejected or ErrInvalid when not accepted
		code    string
		msg     string
	}{
		{name: "transfer", state: State{Balance: 500}, command: Transfer,
			data:   `{"to":"` + walletB + `","amount":2,"scale":2}`,
			want:   State{Balance: 300, InFlight: 200},
			change: `{"to":"` + walletB + `","amount":2,"scale":2}`},
		{name: "transfer the whole balance", state: State{Balance: 500, InFlight: 100}, command: Transfer,
			data: `{"to":"` + walletB + `","amount":5,"scale":2}`, want: State{Balance: 0, InFlight: 600}},
		{name: "transfer at another scale", state: State{Balance: 500}, command: Transfer,
			data: `{"to":"` + walletB + `","amount":1.5,"scale":1}`, want: State{Balance: 350, InFlight: 150},
			change: `{"to":"` + walletB + `","amount":1.5,"scale":2}`},
		{name: "overdraw", state: State{Balance: 500, InFlight: 1000}, command: Transfer,
			data: `{"to":"` + walletB + `","amount":5.01,"scale":2}`, kind: uneventful.ErrRejected, code: "insufficient_funds",
			msg: "insufficient funds: the balance is 5 and the transfer is 5.01"},
		{name: "transfer from a new wallet", command: Transfer,
			data: `{"to":"` + walletB + `","amount":1,"scale":2}`, kind: uneventful.ErrRejected, code: "insufficient_funds"},
		{name: "transfer to no wallet", state: State{Balance: 500}, command: Transfer,
			data: `{"to":"x","amount":1,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_to"},
		{name: "transfer of nothing", state: State{Balance: 500}, command: Transfer,
			data: `{"to":"` + walletB + `","amount":0,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_command"},

		{name: "receive", state: State{Balance: 100}, command: Receive,
			data:   `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`,
			want:   State{Balance: 300},
			change: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`},
		{name: "receive in a new wallet", command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`, want: State{Balance: 200}},
		{name: "receive to the largest balance", state: State{Balance: max - 200}, command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`, want: State{Balance: max}},
		{name: "receive past the largest balance", state: State{Balance: max - 199}, command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`, kind: uneventful.ErrRejected, code: "balance_overflow",
			msg: "a transfer of 2 from " + walletA + " would take the balance of 92233720368547756.08 past the most a wallet holds, 92233720368547758.07"},
		{name: "receive with no room for the money in flight", state: State{Balance: 100, InFlight: max - 200}, command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`, kind: uneventful.ErrRejected, code: "balance_overflow",
			msg: "a transfer of 2 from " + walletA + " would take the balance of 1, with 92233720368547756.07 in flight that may come back, past the most a wallet holds, 92233720368547758.07"},
		{name: "receive more decimals than the wallet has", state: State{Balance: 100}, command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":0.001,"scale":3}`, kind: uneventful.ErrRejected, code: "too_many_decimals"},
		{name: "receive with no transfer id", command: Receive,
			data: `{"from":"` + walletA + `","amount":2,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_transfer"},
		{name: "receive from no wallet", command: Receive,
			data: `{"transfer":"` + transfer1 + `","from":"","amount":2,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_from"},

		{name: "refund", state: State{Balance: 100, InFlight: 300}, command: Refund,
			data:   `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`,
			want:   State{Balance: 300, InFlight: 100},
			change: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`},
		{name: "refund at the largest balance", state: State{Balance: max - 200, InFlight: 200}, command: Refund,
			data: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`, want: State{Balance: max}},
		{name: "refund more than is in flight", state: State{Balance: 100, InFlight: 100}, command: Refund,
			data: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`, kind: uneventful.ErrConflict, code: "not_in_flight",
			msg: "a refund of 2 for transfer " + transfer1 + " is more than the 1 in flight from this wallet in the state it was decided against; nothing was applied, retry"},
		{name: "refund with no transfer id", state: State{InFlight: 200}, command: Refund,
			data: `{"to":"` + walletB + `","amount":2,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_transfer"},

		{name: "settle", state: State{Balance: 100, InFlight: 300}, command: Settle,
			data:   `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`,
			want:   State{Balance: 100, InFlight: 100},
			change: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`},
		{name: "settle at the target's scale", state: State{InFlight: 200}, command: Settle,
			data: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2.000,"scale":3}`, want: State{},
			change: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`},
		{name: "settle more than is in flight", state: State{Balance: 1000}, command: Settle,
			data: `{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`, kind: uneventful.ErrConflict, code: "not_in_flight"},
		{name: "settle to no wallet", state: State{InFlight: 200}, command: Settle,
			data: `{"transfer":"` + transfer1 + `","to":"nope","amount":2,"scale":2}`, kind: uneventful.ErrInvalid, code: "invalid_to"},

		{name: "a credit leaves room for the money in flight", state: State{Balance: 100, InFlight: max - 200}, command: Credit,
			data: `{"amount":1,"scale":2}`, want: State{Balance: 200, InFlight: max - 200}},
		{name: "a credit must leave room for the money in flight", state: State{Balance: 100, InFlight: max - 200}, command: Credit,
			data: `{"amount":1.01,"scale":2}`, kind: uneventful.ErrRejected, code: "balance_overflow",
			msg: "a credit of 1.01 would take the balance of 1, with 92233720368547756.07 in flight that may come back, past the most a wallet holds, 92233720368547758.07"},
		{name: "money in flight cannot be debited", state: State{Balance: 100, InFlight: 500}, command: Debit,
			data: `{"amount":2,"scale":2}`, kind: uneventful.ErrRejected, code: "insufficient_funds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.state.Scale, tc.want.Scale = DefaultScale, DefaultScale
			got, change, err := decide(t, d, tc.state, tc.command, tc.data)
			if tc.code != "" {
				e := checkError(t, err, tc.kind, tc.code)
				if tc.msg != "" && e.Message != tc.msg {
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
			if got != tc.want {
				t.Errorf("state = %+v, want %+v", got, tc.want)
			}
			if tc.change != "" && change != tc.change {
				t.Errorf("change = %s, want %s", change, tc.change)
			}
			if got.Balance+got.InFlight < 0 || got.Balance < 0 || got.InFlight < 0 {
				t.Errorf("state %+v breaks the invariant", got)
			}
		})
	}
}

func TestTransferParse(t *testing.T) {
	d := New(DefaultScale)
	for _, tc := range []struct {
		body, code, msg string
	}{
		{body: `{"to": "` + walletB + `", "amount": 5}`},
		{body: `{"amount": 5, "to": "` + walletB + `"}`},
		{body: `{"amount": 5}`, code: "to_required"},
		{body: `{"to": null, "amount": 5}`, code: "to_required"},
		{body: `{"to": "nobody", "amount": 5}`, code: "invalid_to"},
		{body: `{"to": "` + walletB + `x", "amount": 5}`, code: "invalid_to"},
		{body: `{"to": 5, "amount": 5}`, code: "wrong_type"},
		{body: `{"to": "` + walletB + `"}`, code: "amount_required"},
		{body: `{"to": "` + walletB + `", "amount": -5}`, code: "amount_not_positive"},
		{body: `{"to": "` + walletB + `", "amount": 0.001}`, code: "too_many_decimals"},
		{body: `{"to": "` + walletB + `", "amount": "5"}`, code: "amount_not_number"},
		{body: `{"to": "` + walletB + `", "amount": 5, "from": "` + walletA + `"}`, code: "unknown_field",
			msg: `unknown field "from"; the body takes {"to": "<wallet id>", "amount": <number>}`},
		{body: `{"to": "` + walletB + `", "to": "` + walletA + `", "amount": 5}`, code: "duplicate_field"},
		{body: ``, code: "empty_body"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			data, err := d.Parse(Transfer, []byte(tc.body))
			if tc.code == "" {
				if want := `{"to":"` + walletB + `","amount":5,"scale":2}`; err != nil || string(data) != want {
					t.Fatalf("Parse = %s, %v; want %s", data, err, want)
				}
				return
			}
			e := checkError(t, err, uneventful.ErrInvalid, tc.code)
			if tc.msg != "" && e.Message != tc.msg {
				t.Errorf("message = %q, want %q", e.Message, tc.msg)
			}
		})
	}
}

// A client cannot send the steps of a transfer: a receive or a refund made
// by hand would create money.
func TestTransferStepsAreNotForClients(t *testing.T) {
	d := New(DefaultScale)
	for _, command := range []string{Receive, Refund, Settle} {
		body := `{"transfer":"` + transfer1 + `","from":"` + walletA + `","to":"` + walletB + `","amount":5,"scale":2}`
		_, err := d.Parse(command, []byte(body))
		e := checkError(t, err, uneventful.ErrInvalid, "internal_command")
		if !strings.Contains(e.Message, "POST /wallet/{id}/transfer") {
			t.Errorf("%s: message %q does not say how to transfer", command, e.Message)
		}
	}
}

func TestNextStep(t *testing.T) {
	event := func(entity, command string, outcome uneventful.Outcome, data string) *uneventful.Event {
		return &uneventful.Event{EventID: transfer1, Domain: Name, EntityID: entity, Command: command, TypeName: Name + "." + entity + "." + command,
			Outcome: outcome, Data: json.RawMessage(data)}
	}
	const receiveEvent = "3MgJ0yCnJFZA7KbkEFPVferSbVa"
	for _, tc := range []struct {
		name  string
		event *uneventful.Event
		want  *Step
	}{
		{name: "transfer accepted: receive on the target",
			event: event(walletA, Transfer, uneventful.Accepted, `{"to":"`+walletB+`","amount":2,"scale":2}`),
			want: &Step{Transfer: transfer1, EntityID: walletB, Command: Receive,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`)}},
		{name: "transfer to its own wallet: refund",
			event: event(walletA, Transfer, uneventful.Accepted, `{"to":"`+walletA+`","amount":2,"scale":2}`),
			want: &Step{Transfer: transfer1, EntityID: walletA, Command: Refund,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","to":"` + walletA + `","amount":2,"scale":2}`)}},
		{name: "transfer rejected: nothing",
			event: event(walletA, Transfer, uneventful.Rejected, `{"to":"`+walletB+`","amount":2,"scale":2}`)},
		{name: "receive accepted: settle on the source",
			event: &uneventful.Event{EventID: receiveEvent, Domain: Name, EntityID: walletB, Command: Receive, Outcome: uneventful.Accepted,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2.000,"scale":3}`)},
			want: &Step{Transfer: transfer1, EntityID: walletA, Command: Settle,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":3}`)}},
		{name: "receive rejected: refund on the source",
			event: &uneventful.Event{EventID: receiveEvent, Domain: Name, EntityID: walletB, Command: Receive, Outcome: uneventful.Rejected,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","from":"` + walletA + `","amount":2,"scale":2}`)},
			want: &Step{Transfer: transfer1, EntityID: walletA, Command: Refund,
				Data: json.RawMessage(`{"transfer":"` + transfer1 + `","to":"` + walletB + `","amount":2,"scale":2}`)}},
		{name: "credit: nothing", event: event(walletA, Credit, uneventful.Accepted, `{"amount":2,"scale":2}`)},
		{name: "settle: nothing", event: event(walletA, Settle, uneventful.Accepted, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":2,"scale":2}`)},
		{name: "refund: nothing", event: event(walletA, Refund, uneventful.Accepted, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":2,"scale":2}`)},
		{name: "another domain: nothing", event: &uneventful.Event{Domain: "inventory", EntityID: walletA, Command: Transfer, Outcome: uneventful.Accepted, Data: json.RawMessage(`{}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextStep(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("NextStep = %+v\nwant        %+v", show(got), show(tc.want))
			}
		})
	}
	if _, err := NextStep(event(walletA, Transfer, uneventful.Accepted, `{"to":"`+walletB+`"}`)); err == nil {
		t.Error("NextStep of a transfer without an amount succeeded")
	}
}

func show(s *Step) string {
	if s == nil {
		return "nil"
	}
	return fmt.Sprintf("{%s %s %s %s}", s.Transfer, s.EntityID, s.Command, s.Data)
}

// TestTransfersConserveMoney drives random transfers through Decide, Apply
// and NextStep as a process manager would, handling the events in a random
// order and some of them twice with the same step applied once: money is
// neither created nor destroyed, no balance goes below 0, and when every
// step is done no money is in flight.
func TestTransfersConserveMoney(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		d := New(DefaultScale)
		ids := []string{walletA, walletB, "3MgJ0wtxtvVBsV2bpFf8nI3hh6F"}
		states := map[string]State{}
		for _, id := range ids {
			states[id] = State{Balance: Amount(rng.IntN(1000)), Scale: DefaultScale}
		}
		if rng.IntN(2) == 0 { // a wallet that refuses most transfers
			states[ids[2]] = State{Balance: math.MaxInt64 - Amount(rng.IntN(300)), Scale: DefaultScale}
		}
		start := map[string]Amount{}
		for id, s := range states {
			start[id] = s.Balance
		}
		var queue []*uneventful.Event
		applied := map[string]bool{} // idempotency keys
		n := 0
		record := func(id, command, data, key string) {
			if applied[key] {
				return
			}
			applied[key] = true
			n++
			e := &uneventful.Event{EventID: fmt.Sprintf("%027d", n), Domain: Name, EntityID: id, Command: command, Data: json.RawMessage(data)}
			next, change, err := decide(t, d, states[id], command, data)
			switch {
			case err == nil:
				e.Outcome, e.Data, states[id] = uneventful.Accepted, json.RawMessage(change), next
			case errors.Is(err, uneventful.ErrRejected):
				e.Outcome = uneventful.Rejected
			default:
				t.Fatalf("%s %s: %v", command, data, err)
			}
			queue = append(queue, e)
		}
		for i := 0; i < 20; i++ {
			from, to := ids[rng.IntN(2)], ids[rng.IntN(3)]
			record(from, Transfer, fmt.Sprintf(`{"to":"%s","amount":%d,"scale":2}`, to, 1+rng.IntN(400)), fmt.Sprint("client", i))
		}
		for len(queue) > 0 {
			i := rng.IntN(len(queue))
			e := queue[i]
			if rng.IntN(4) > 0 { // else handled again later: a redelivery
				queue = append(queue[:i], queue[i+1:]...)
			}
			step, err := NextStep(e)
			if err != nil {
				t.Fatal(err)
			}
			if step != nil {
				record(step.EntityID, step.Command, string(step.Data), e.EventID+"/"+step.Command)
			}
		}
		// The sum of the balances may not fit an Amount: add the changes.
		var delta Amount
		for _, id := range ids {
			s := states[id]
			if s.Balance < 0 || s.InFlight != 0 {
				t.Fatalf("round %d: wallet %s ends with %+v", round, id, s)
			}
			delta += s.Balance - start[id]
		}
		if delta != 0 {
			t.Fatalf("round %d: the wallets hold %d more than they started with", round, delta)
		}
	}
}

func TestStateInFlightJSON(t *testing.T) {
	d := New(DefaultScale)
	s := State{Balance: 530, InFlight: 1, Scale: 2}
	data, err := d.EncodeState(s)
	if want := `{"balance":5.3,"scale":2,"in_flight":0.01}`; err != nil || string(data) != want {
		t.Fatalf("EncodeState = %s, %v; want %s", data, err, want)
	}
	if back, err := d.DecodeState(data); err != nil || back != s {
		t.Fatalf("DecodeState(%s) = %+v, %v", data, back, err)
	}
	view, err := d.View(s)
	if want := `{"balance":5.3,"in_flight":0.01}`; err != nil || string(view) != want {
		t.Fatalf("View = %s, %v; want %s", view, err, want)
	}
	for _, bad := range []string{
		`{"balance":1,"scale":2,"in_flight":-1}`, `{"balance":1,"scale":2,"in_flight":0.001}`, `{"balance":1,"scale":2,"in_flight":"1"}`,
		`{"balance":92233720368547758.07,"scale":2,"in_flight":0.01}`,
	} {
		if _, err := d.DecodeState(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeState(%s) succeeded", bad)
		}
	}
}

// history is a read model of one wallet whose accepted changes are given
// as recorded, with their event ids.
func history(t *testing.T, changes ...string) *reader {
	t.Helper()
	d := New(DefaultScale)
	r := &reader{id: walletA}
	s := d.InitialState
	for i := 0; i+2 < len(changes); i += 3 {
		id, command, data := changes[i], changes[i+1], changes[i+2]
		next, err := d.Apply(s, command, json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		s = next.(State)
		v := int64(len(r.events) + 1)
		e := uneventful.Event{EventID: id, Timestamp: start.Add(time.Duration(v) * time.Second),
			Domain: Name, EntityID: r.id, Command: command, Data: json.RawMessage(data), Version: v, Outcome: uneventful.Accepted}
		state, err := d.EncodeState(s)
		if err != nil {
			t.Fatal(err)
		}
		r.events = append(r.events, e)
		r.state = &uneventful.State{Domain: Name, EntityID: r.id, Version: v, Timestamp: e.Timestamp, EventID: e.EventID, Data: state}
	}
	return r
}

func TestTransferStatus(t *testing.T) {
	const (
		transfer2 = "3MgJ0yCnJFZA7KbkEFPVferSbVa"
		transfer3 = "3MgJ0wtxtvVBsV2bpFf8nI3hh6F"
		credit    = "3MgJ0td8UeAGEsRvS5RqpAkx2bE"
	)
	r := history(t,
		credit, Credit, `{"amount":10,"scale":2}`,
		transfer1, Transfer, `{"to":"`+walletB+`","amount":2,"scale":2}`,
		transfer2, Transfer, `{"to":"`+walletB+`","amount":3,"scale":2}`,
		transfer3, Transfer, `{"to":"`+walletB+`","amount":0.5,"scale":2}`,
		uneventful.NewID(), Settle, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":2,"scale":2}`,
		uneventful.NewID(), Refund, `{"transfer":"`+transfer3+`","to":"`+walletB+`","amount":0.5,"scale":2}`,
	)
	status := func(id string, v int, amount, status string) string {
		return fmt.Sprintf(`{"transfer":"%s","from":"%s","to":"%s","amount":%s,"status":"%s","version":%d,"timestamp":"2025-01-02T03:04:0%dZ"}`,
			id, walletA, walletB, amount, status, v, 5+v)
	}
	for _, tc := range []struct{ id, want string }{
		{transfer1, status(transfer1, 2, "2", Completed)},
		{transfer2, status(transfer2, 3, "3", Pending)},
		{transfer3, status(transfer3, 4, "0.5", Compensated)},
	} {
		r.limits = nil
		got, err := query(t, r, "transfer", "id="+tc.id)
		if err != nil || got != tc.want {
			t.Errorf("transfer?id=%s =\n%s, %v\nwant\n%s", tc.id, got, err, tc.want)
		}
		if len(r.limits) != 1 || r.limits[0] != 6 {
			t.Errorf("transfer?id=%s asked the reader for limits %v, want one page of the 6 changes", tc.id, r.limits)
		}
	}
	for _, tc := range []struct{ params, kind, code string }{
		{"id=" + credit, "not_found", "transfer_not_found"},
		{"id=" + walletB, "not_found", "transfer_not_found"},
		{"", "invalid", "invalid_transfer_id"},
		{"id=x", "invalid", "invalid_transfer_id"},
		{"id=" + transfer1 + "&id=" + transfer2, "invalid", "invalid_transfer_id"},
	} {
		_, err := query(t, r, "transfer", tc.params)
		kind := map[string]error{"invalid": uneventful.ErrInvalid, "not_found": uneventful.ErrNotFound}[tc.kind]
		checkError(t, err, kind, tc.code)
	}
	_, err := query(t, record(t), "transfer", "id="+transfer1)
	checkError(t, err, uneventful.ErrNotFound, "wallet_not_found")
}

// The transfer query reads from the newest change back to the transfer, a
// page at a time, and no further.
func TestTransferStatusReadsBackToTheTransfer(t *testing.T) {
	changes := []string{uneventful.NewID(), Credit, `{"amount":10000,"scale":2}`,
		transfer1, Transfer, `{"to":"` + walletB + `","amount":2,"scale":2}`}
	for i := 0; i < 2500; i++ {
		changes = append(changes, uneventful.NewID(), Debit, `{"amount":0.01,"scale":2}`)
	}
	changes = append(changes, uneventful.NewID(), Refund, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":2,"scale":2}`)
	r := history(t, changes...)
	got, err := query(t, r, "transfer", "id="+transfer1)
	if err != nil || !strings.Contains(got, `"status":"compensated"`) || !strings.Contains(got, `"version":2,`) {
		t.Fatalf("transfer = %s, %v; want the transfer at version 2, compensated", got, err)
	}
	if want := []int{1000, 1000, 503}; fmt.Sprint(r.limits) != fmt.Sprint(want) {
		t.Errorf("read pages of %v, want %v", r.limits, want)
	}
	r.limits = nil
	if _, err := query(t, r, "transfer", "id="+uneventful.NewID()); !errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("an unknown transfer: %v, want ErrNotFound", err)
	}
	if len(r.limits) != 3 {
		t.Errorf("an unknown transfer read %d pages, want all 3", len(r.limits))
	}
}

func TestTransactionsShowTheCounterparty(t *testing.T) {
	const credit, settleID, refundID, receiveID = "3MgJ0td8UeAGEsRvS5RqpAkx2bE", "3MgJ0yCnJFZA7KbkEFPVferSbVa", "3MgJ0wtxtvVBsV2bpFf8nI3hh6F", "3MgJp7ETaaaaaaaaaaaaaaaaaaa"
	r := history(t,
		credit, Credit, `{"amount":10,"scale":2}`,
		transfer1, Transfer, `{"to":"`+walletB+`","amount":2.01,"scale":2}`,
		settleID, Settle, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":2,"scale":2}`,
		refundID, Refund, `{"transfer":"`+transfer1+`","to":"`+walletB+`","amount":0.01,"scale":2}`,
		receiveID, Receive, `{"transfer":"`+transfer1+`","from":"`+walletB+`","amount":1,"scale":2}`,
	)
	got, err := query(t, r, "transactions", "")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Transactions []map[string]any `json:"transactions"`
	}
	d := json.NewDecoder(strings.NewReader(got))
	d.UseNumber()
	if err := d.Decode(&page); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tx := range page.Transactions {
		lines = append(lines, fmt.Sprint(tx["type"], " ", tx["amount"], " ", tx["source_entity_id"], " ", tx["transfer"]))
	}
	want := []string{
		"credit 10 " + walletA + " <nil>",
		"transfer -2.01 " + walletB + " " + transfer1,
		"settle 0 " + walletB + " " + transfer1,
		"refund 0.01 " + walletB + " " + transfer1,
		"receive 1 " + walletB + " " + transfer1,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("transactions:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
