package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/uneventful/uneventful"
)

// Name is the wallet domain's name, the first part of its streams and
// routes.
const Name = "wallet"

// The wallet's commands.
const (
	// Credit adds an amount to the balance.
	Credit = "credit"
	// Debit takes an amount from the balance if the balance covers it.
	Debit = "debit"
)

// New returns the wallet domain whose amounts have scale decimal places
// (DefaultScale for most currencies). It panics if scale is not in 0 to
// MaxScale: the scale is a constant of the deployment, so a bad one is a
// bug to catch at start, not an error to handle.
//
// A wallet keeps the scale it was created with in its state, so changing
// the scale of a deployment never changes the meaning of a recorded
// balance; an amount that the wallet's scale cannot hold exactly is
// rejected.
func New(scale int) *uneventful.Domain[State] {
	if scale < 0 || scale > MaxScale {
		panic(fmt.Sprintf("wallet: scale %d is not in 0 to %d", scale, MaxScale))
	}
	parse := func(body []byte) (change, error) {
		var req request
		if err := uneventful.DecodeJSON(body, &req); err != nil {
			return change{}, err
		}
		a, err := ParseAmount(req.Amount, scale)
		return change{Amount: a, Scale: scale}, err
	}
	return &uneventful.Domain[State]{
		DomainName:   Name,
		InitialState: State{Scale: scale},
		Handlers: map[string]uneventful.Handler[State]{
			Credit:   uneventful.Handle(parse, credit, applyCredit),
			Debit:    uneventful.Handle(parse, debit, applyDebit),
			Transfer: uneventful.Handle(parseTransfer(scale), transfer, applyTransfer),
			Receive:  uneventful.Handle(internal(Receive), receive, applyReceive),
			Refund:   uneventful.Handle(internal(Refund), refund, applyRefund),
			Settle:   uneventful.Handle(internal(Settle), settle, applySettle),
		},
		ViewFunc: func(s State) any { return newView(s) },
		API:      describe(scale),
		QueryFuncs: map[string]uneventful.Query{
			"balance":      balance,
			"transactions": transactions,
			"transfer":     transferStatus,
		},
	}
}

// view is the public part of a State, merged into command replies:
// {"balance":5.3}, and {"balance":5.3,"in_flight":2} while transfers
// from the wallet are not settled yet.
type view struct {
	Balance  json.Number `json:"balance"`
	InFlight json.Number `json:"in_flight,omitempty"`
}

func newView(s State) view {
	v := view{Balance: json.Number(FormatAmount(s.Balance, s.Scale))}
	if s.InFlight != 0 {
		v.InFlight = json.Number(FormatAmount(s.InFlight, s.Scale))
	}
	return v
}

// request is the body of a credit or a debit.
type request struct {
	Amount json.RawMessage `json:"amount"` // the literal, so that no float sees it
}

// JSONShape tells uneventful.DecodeJSON what to ask for.
func (request) JSONShape() string { return `{"amount": <number>}` }

// State is a wallet's state, as recorded in the state log: its balance,
// the money it sent by transfers that are not settled yet, and the scale
// of their minor unit. Its JSON is {"balance":5.3,"scale":2}, the amounts
// as exact decimals, with "in_flight" added while it is not 0:
// {"balance":5.3,"scale":2,"in_flight":1}.
type State struct {
	// Balance is never negative.
	Balance Amount
	// InFlight is the sum of the transfers from this wallet that are
	// neither settled nor refunded; never negative. It is not part of
	// the balance, but the wallet must be able to hold it again should
	// it be refunded: Balance + InFlight never exceeds the largest
	// Amount, so a refund never overflows.
	InFlight Amount
	// Scale is the number of decimal places of Balance's minor unit,
	// fixed when the wallet is created.
	Scale int
}

// MarshalJSON implements json.Marshaler.
func (s State) MarshalJSON() ([]byte, error) {
	b, err := marshalScaled("balance", s.Balance, s.Scale)
	if err != nil || s.InFlight == 0 {
		return b, err
	}
	b = append(b[:len(b)-1], `,"in_flight":`...)
	b = appendAmount(b, s.InFlight, s.Scale)
	return append(b, '}'), nil
}

// UnmarshalJSON implements json.Unmarshaler. Its errors are plain errors,
// not uneventful.ErrInvalid: a recorded state that cannot be read is
// damage or a bug, not bad input.
func (s *State) UnmarshalJSON(data []byte) error {
	var v struct {
		Balance  json.RawMessage `json:"balance"`
		Scale    json.RawMessage `json:"scale"`
		InFlight json.RawMessage `json:"in_flight"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	b, scale, err := scaled(v.Balance, v.Scale)
	if err != nil {
		return fmt.Errorf("wallet state: %w", err)
	}
	var inFlight Amount
	if v.InFlight != nil {
		if inFlight, _, err = scaled(v.InFlight, v.Scale); err != nil {
			return fmt.Errorf("wallet state: in_flight: %w", err)
		}
		if inFlight > math.MaxInt64-b {
			return fmt.Errorf("wallet state: the balance %s and in_flight %s add up to more than a wallet holds", v.Balance, v.InFlight)
		}
	}
	*s = State{Balance: b, InFlight: inFlight, Scale: scale}
	return nil
}

// change is a command's input as Parse normalises it and, once decided,
// the change to record: a positive amount and the scale of its minor unit,
// {"amount":5,"scale":2}. A decided change has the scale of the state.
type change struct {
	Amount Amount
	Scale  int
}

func (c change) MarshalJSON() ([]byte, error) {
	return marshalScaled("amount", c.Amount, c.Scale)
}

func (c *change) UnmarshalJSON(data []byte) error {
	var v struct {
		Amount json.RawMessage `json:"amount"`
		Scale  json.RawMessage `json:"scale"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	a, scale, err := positive(v.Amount, v.Scale)
	if err != nil {
		return fmt.Errorf("wallet change: %w", err)
	}
	*c = change{Amount: a, Scale: scale}
	return nil
}

// at returns the amount in minor units of the given scale, or a rejection
// if that scale cannot hold it exactly. The scales differ only when a
// wallet was created under another scale than the one the command was
// parsed with.
func (c change) at(scale int) (Amount, error) {
	a := c.Amount
	for s := c.Scale; s < scale; s++ {
		if a > math.MaxInt64/10 {
			return 0, uneventful.Reject("amount_too_large", "the amount %s is too large; the largest is %s", FormatAmount(c.Amount, c.Scale), FormatAmount(math.MaxInt64, scale))
		}
		a *= 10
	}
	for s := c.Scale; s > scale; s-- {
		if a%10 != 0 {
			return 0, uneventful.Reject("too_many_decimals", "%s has more than %d decimal place%s, the scale of this wallet; amounts are never rounded", FormatAmount(c.Amount, c.Scale), scale, plural(scale))
		}
		a /= 10
	}
	return a, nil
}

func credit(s State, in change) (change, error) {
	a, err := in.at(s.Scale)
	if err != nil {
		return change{}, err
	}
	if err := s.room(a, "a credit of "+FormatAmount(a, s.Scale)); err != nil {
		return change{}, err
	}
	return change{Amount: a, Scale: s.Scale}, nil
}

// room returns a balance_overflow rejection if adding a to the balance
// would leave no room for the money in flight to come back.
func (s State) room(a Amount, what string) error {
	if a <= math.MaxInt64-s.Balance-s.InFlight {
		return nil
	}
	if s.InFlight == 0 {
		return uneventful.Reject("balance_overflow", "%s would take the balance of %s past the most a wallet holds, %s",
			what, FormatAmount(s.Balance, s.Scale), FormatAmount(math.MaxInt64, s.Scale))
	}
	return uneventful.Reject("balance_overflow", "%s would take the balance of %s, with %s in flight that may come back, past the most a wallet holds, %s",
		what, FormatAmount(s.Balance, s.Scale), FormatAmount(s.InFlight, s.Scale), FormatAmount(math.MaxInt64, s.Scale))
}

func debit(s State, in change) (change, error) {
	a, err := in.at(s.Scale)
	if err != nil {
		return change{}, err
	}
	if a > s.Balance {
		return change{}, &uneventful.Error{
			Kind:    uneventful.ErrRejected,
			Code:    "insufficient_funds",
			Message: fmt.Sprintf("insufficient funds: the balance is %s and the debit is %s", FormatAmount(s.Balance, s.Scale), FormatAmount(a, s.Scale)),
			Err:     uneventful.ErrInsufficientFunds,
		}
	}
	return change{Amount: a, Scale: s.Scale}, nil
}

func applyCredit(s State, c change) State {
	s.Balance += c.Amount
	return s
}

func applyDebit(s State, c change) State {
	s.Balance -= c.Amount
	return s
}

// marshalScaled returns {"<key>":<decimal>,"scale":<scale>}, the JSON of
// a State and of a change.
func marshalScaled(key string, a Amount, scale int) ([]byte, error) {
	if scale < 0 || scale > MaxScale {
		return nil, fmt.Errorf("wallet: scale %d is not in 0 to %d", scale, MaxScale)
	}
	b := make([]byte, 0, len(key)+40)
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	b = appendAmount(b, a, scale)
	b = append(b, `,"scale":`...)
	b = strconv.AppendInt(b, int64(scale), 10)
	return append(b, '}'), nil
}

// scaled reads the decimal text of a non-negative amount at the scale
// given by the JSON scale, one digit. It reads recorded data, so its errors
// are plain errors (see State.UnmarshalJSON).
// positive is scaled for the recorded amount of a change, which is never 0.
func positive(text, scale json.RawMessage) (Amount, int, error) {
	a, s, err := scaled(text, scale)
	if err == nil && a == 0 {
		err = errors.New("the amount is 0")
	}
	return a, s, err
}

func scaled(text, scale json.RawMessage) (Amount, int, error) {
	if len(scale) != 1 || scale[0] < '0' || scale[0] > '0'+MaxScale {
		return 0, 0, fmt.Errorf("the scale %q is not a whole number from 0 to %d", scale, MaxScale)
	}
	s := int(scale[0] - '0')
	a, err := parseDecimal(text, s)
	if err != nil {
		return 0, 0, errors.New(uneventful.ErrorMessage(err))
	}
	return a, s, nil
}
