package wallet

import (
	"encoding/json"
	"fmt"

	"github.com/uneventful/uneventful"
)

// The commands of a transfer between wallets. Users send Transfer; the
// transfer process manager sends the others, as NextStep says, and they
// are refused over HTTP, since a receive or a refund made by hand would
// create money.
const (
	// Transfer takes an amount from the balance, if the balance covers
	// it, and sends it to another wallet. Until the transfer is settled
	// the amount is in flight: gone from the balance, not yet anywhere
	// else. The transfer's id is the event_id of the accepted transfer.
	Transfer = "transfer"
	// Receive credits the target of a transfer. It is rejected with
	// balance_overflow if the target cannot hold the amount, and then
	// the transfer is refunded.
	Receive = "receive"
	// Refund returns to the source the amount of a transfer that its
	// target rejected. It takes back money in flight, so it never
	// overflows.
	Refund = "refund"
	// Settle records on the source that the target received the
	// transfer: the amount is no longer in flight.
	Settle = "settle"
)

// transferRequest is the body of a transfer.
type transferRequest struct {
	To     *string         `json:"to"`
	Amount json.RawMessage `json:"amount"` // the literal, so that no float sees it
}

// JSONShape tells uneventful.DecodeJSON what to ask for.
func (transferRequest) JSONShape() string { return `{"to": "<wallet id>", "amount": <number>}` }

// move is the data of the transfer commands and, once decided, their
// recorded change: {"transfer":"…","to":"…","from":"…","amount":5,"scale":2},
// each of the three ids only where it applies. A transfer names its
// target (to) and has no transfer id yet, since the id is its own
// event_id; a receive names the transfer and its source (from); a refund
// and a settle name the transfer and its target (to), the counterparty.
type move struct {
	Transfer string
	To       string
	From     string
	Amount   Amount
	Scale    int
}

func (m move) MarshalJSON() ([]byte, error) {
	if m.Scale < 0 || m.Scale > MaxScale {
		return nil, fmt.Errorf("wallet: scale %d is not in 0 to %d", m.Scale, MaxScale)
	}
	b := make([]byte, 0, 128)
	b = append(b, '{')
	for _, f := range [...]struct{ key, id string }{{"transfer", m.Transfer}, {"to", m.To}, {"from", m.From}} {
		if f.id == "" {
			continue
		}
		q, err := json.Marshal(f.id)
		if err != nil {
			return nil, err
		}
		b = append(b, '"')
		b = append(b, f.key...)
		b = append(b, `":`...)
		b = append(b, q...)
		b = append(b, ',')
	}
	b = append(b, `"amount":`...)
	b = appendAmount(b, m.Amount, m.Scale)
	b = append(b, `,"scale":`...)
	b = append(b, byte('0'+m.Scale))
	return append(b, '}'), nil
}

func (m *move) UnmarshalJSON(data []byte) error {
	var v struct {
		Transfer string          `json:"transfer"`
		To       string          `json:"to"`
		From     string          `json:"from"`
		Amount   json.RawMessage `json:"amount"`
		Scale    json.RawMessage `json:"scale"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	a, scale, err := positive(v.Amount, v.Scale)
	if err != nil {
		return fmt.Errorf("wallet transfer data: %w", err)
	}
	*m = move{Transfer: v.Transfer, To: v.To, From: v.From, Amount: a, Scale: scale}
	return nil
}

// at returns the amount in minor units of the given scale; see change.at.
func (m move) at(scale int) (Amount, error) {
	return change{Amount: m.Amount, Scale: m.Scale}.at(scale)
}

// check checks that the ids a command needs are KSUIDs, given as pairs of
// a field name and its value. The writer trusts no server and no process
// manager: a command that fails is invalid, and nothing is recorded.
func check(command string, fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if uneventful.ValidID(fields[i+1]) != nil {
			return invalid("invalid_"+fields[i], "the %s command's %q is not a wallet or transfer id: %q", command, fields[i], short([]byte(fields[i+1])))
		}
	}
	return nil
}

// parseTransfer returns the parser of a transfer's body at the scale.
func parseTransfer(scale int) func(body []byte) (move, error) {
	return func(body []byte) (move, error) {
		var req transferRequest
		if err := uneventful.DecodeJSON(body, &req); err != nil {
			return move{}, err
		}
		if req.To == nil {
			return move{}, invalid("to_required", `the wallet to transfer to is missing or null; send its id as in {"to": "%s", "amount": 5}`, uneventful.NewID())
		}
		if uneventful.ValidID(*req.To) != nil {
			return move{}, invalid("invalid_to", `"to" must be the id of the wallet to transfer to, a 27-character KSUID such as %s; got %q`, uneventful.NewID(), short([]byte(*req.To)))
		}
		a, err := ParseAmount(req.Amount, scale)
		return move{To: *req.To, Amount: a, Scale: scale}, err
	}
}

// internal returns the parser of a command that only the transfer process
// manager sends: over HTTP it is refused, whatever the body.
func internal(command string) func(body []byte) (move, error) {
	return func([]byte) (move, error) {
		return move{}, invalid("internal_command", `%s is a step of a transfer that the transfer process sends, not a command for clients; to move money to another wallet, POST /wallet/{id}/transfer {"to": "<wallet id>", "amount": 5}`, command)
	}
}

func transfer(s State, in move) (move, error) {
	if err := check(Transfer, "to", in.To); err != nil {
		return move{}, err
	}
	a, err := in.at(s.Scale)
	if err != nil {
		return move{}, err
	}
	if a > s.Balance {
		return move{}, &uneventful.Error{
			Kind:    uneventful.ErrRejected,
			Code:    "insufficient_funds",
			Message: fmt.Sprintf("insufficient funds: the balance is %s and the transfer is %s", FormatAmount(s.Balance, s.Scale), FormatAmount(a, s.Scale)),
			Err:     uneventful.ErrInsufficientFunds,
		}
	}
	return move{To: in.To, Amount: a, Scale: s.Scale}, nil
}

func receive(s State, in move) (move, error) {
	if err := check(Receive, "transfer", in.Transfer, "from", in.From); err != nil {
		return move{}, err
	}
	a, err := in.at(s.Scale)
	if err != nil {
		return move{}, err
	}
	if err := s.room(a, "a transfer of "+FormatAmount(a, s.Scale)+" from "+in.From); err != nil {
		return move{}, err
	}
	return move{Transfer: in.Transfer, From: in.From, Amount: a, Scale: s.Scale}, nil
}

// refund and settle take money out of flight, and a wallet's InFlight is
// the sum of its unsettled transfers, so neither can take more than that.
// When one would, the state it is decided against does not have the
// transfer yet: the writer deciding it holds an out-of-date copy of the
// wallet (another writer recorded the transfer; a rejection is recorded
// without an expected-version check, so it could be decided on that copy
// for good). So it is a conflict, not a rejection: nothing is recorded, and
// the process manager sends it again until a writer with the wallet's
// latest state takes it. A second settle or refund of one transfer, which
// the manager's idempotency keys prevent, would also end here, never
// creating money.
func refund(s State, in move) (move, error) { return outOfFlight(s, Refund, in) }

func settle(s State, in move) (move, error) { return outOfFlight(s, Settle, in) }

func outOfFlight(s State, command string, in move) (move, error) {
	if err := check(command, "transfer", in.Transfer, "to", in.To); err != nil {
		return move{}, err
	}
	a, err := in.at(s.Scale)
	if err != nil {
		return move{}, err
	}
	if a > s.InFlight {
		return move{}, uneventful.Errorf(uneventful.ErrConflict, "not_in_flight", "a %s of %s for transfer %s is more than the %s in flight from this wallet in the state it was decided against; nothing was applied, retry",
			command, FormatAmount(a, s.Scale), in.Transfer, FormatAmount(s.InFlight, s.Scale))
	}
	return move{Transfer: in.Transfer, To: in.To, Amount: a, Scale: s.Scale}, nil
}

func applyTransfer(s State, m move) State {
	s.Balance -= m.Amount
	s.InFlight += m.Amount
	return s
}

func applyReceive(s State, m move) State {
	s.Balance += m.Amount
	return s
}

func applyRefund(s State, m move) State {
	s.Balance += m.Amount
	s.InFlight -= m.Amount
	return s
}

func applySettle(s State, m move) State {
	s.InFlight -= m.Amount
	return s
}

// Step is a command of a transfer, for the transfer process manager to
// send to a wallet.
type Step struct {
	// Transfer is the transfer's id: the correlation id of every step.
	Transfer string
	// EntityID is the wallet the command is for.
	EntityID string
	// Command is Receive, Refund or Settle.
	Command string
	// Data is the command's data, as the wallet's Decide takes it.
	Data json.RawMessage
}

// NextStep returns the command that follows from a recorded wallet event
// in a transfer, or nil if none does. It is the transfer's process:
//
//	transfer accepted on the source  ->  receive on the target
//	receive accepted on the target   ->  settle on the source   (completed)
//	receive rejected on the target   ->  refund on the source   (compensated)
//
// A transfer to its own wallet is refunded at once: the wallet cannot
// refuse it, since Decide does not know which wallet it decides for.
//
// NextStep is pure: the same event gives the same step, so that a process
// manager that handles an event twice sends the same command twice, which
// its idempotency key then applies once. Its error means that the event's
// data cannot be read, which no retry changes.
func NextStep(e *uneventful.Event) (*Step, error) {
	if e.Domain != Name {
		return nil, nil
	}
	var m move
	read := func() error {
		if err := json.Unmarshal(e.Data, &m); err != nil {
			return fmt.Errorf("read %s %s: %w", e.TypeName, e.EventID, err)
		}
		return nil
	}
	step := func(entity, command string, data move) (*Step, error) {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		return &Step{Transfer: data.Transfer, EntityID: entity, Command: command, Data: b}, nil
	}
	switch {
	case e.Command == Transfer && e.Outcome == uneventful.Accepted:
		if err := read(); err != nil {
			return nil, err
		}
		back := move{Transfer: e.EventID, To: m.To, Amount: m.Amount, Scale: m.Scale}
		if m.To == e.EntityID {
			return step(e.EntityID, Refund, back)
		}
		return step(m.To, Receive, move{Transfer: e.EventID, From: e.EntityID, Amount: m.Amount, Scale: m.Scale})
	case e.Command == Receive && (e.Outcome == uneventful.Accepted || e.Outcome == uneventful.Rejected):
		// An accepted receive records its change, at the target's
		// scale; a rejected one the command as it was sent. Either
		// way the amount is the transfer's.
		if err := read(); err != nil {
			return nil, err
		}
		back := move{Transfer: m.Transfer, To: e.EntityID, Amount: m.Amount, Scale: m.Scale}
		if e.Outcome == uneventful.Accepted {
			return step(m.From, Settle, back)
		}
		return step(m.From, Refund, back)
	}
	return nil, nil
}
