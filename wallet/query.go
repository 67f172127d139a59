package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uneventful/uneventful"
)

// The limits of a page of transactions.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// balance answers GET /wallet/{id}/balance with
// {"entity_id", "version", "timestamp", "balance"}, and "in_flight" while
// transfers from the wallet are not settled.
func balance(ctx context.Context, r uneventful.Reader, id string, _ url.Values) (any, error) {
	st, err := r.State(ctx, Name, id)
	if err != nil {
		return nil, readError(id, err)
	}
	var s State
	if err := json.Unmarshal(st.Data, &s); err != nil {
		return nil, fmt.Errorf("read wallet %s: %w", id, err)
	}
	return struct {
		EntityID  string    `json:"entity_id"`
		Version   int64     `json:"version"`
		Timestamp time.Time `json:"timestamp"`
		view
	}{id, st.Version, st.Timestamp.UTC(), newView(s)}, nil
}

// transaction is one accepted change as the transactions query shows it.
// A debit's and a transfer's amount is negative; a settle's is 0, since
// it only records that money in flight arrived. SourceEntityID is the
// counterparty: the other wallet of a transfer, receive, refund or
// settle, the wallet itself for a credit or debit. Transfer is the id of
// the transfer a change belongs to.
type transaction struct {
	Timestamp      time.Time   `json:"timestamp"`
	SourceEntityID string      `json:"source_entity_id"`
	Amount         json.Number `json:"amount"`
	Version        int64       `json:"version"`
	EventID        string      `json:"event_id"`
	Type           string      `json:"type"`
	Transfer       string      `json:"transfer,omitempty"`
}

// newTransaction reads an accepted event of the wallet.
func newTransaction(e *uneventful.Event) (transaction, error) {
	tx := transaction{Timestamp: e.Timestamp.UTC(), SourceEntityID: e.EntityID, Version: e.Version, EventID: e.EventID, Type: e.Command}
	var a Amount
	var scale int
	switch e.Command {
	case Credit, Debit:
		var c change
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return tx, err
		}
		a, scale = c.Amount, c.Scale
		if e.Command == Debit {
			a = -a
		}
	case Transfer, Receive, Refund, Settle:
		var m move
		if err := json.Unmarshal(e.Data, &m); err != nil {
			return tx, err
		}
		a, scale, tx.Transfer, tx.SourceEntityID = m.Amount, m.Scale, m.Transfer, m.To
		switch e.Command {
		case Transfer:
			a, tx.Transfer = -a, e.EventID
		case Receive:
			tx.SourceEntityID = m.From
		case Settle:
			a = 0
		}
	default:
		return tx, fmt.Errorf("unknown command %q", e.Command)
	}
	tx.Amount = json.Number(FormatAmount(a, scale))
	return tx, nil
}

// transactions answers GET /wallet/{id}/transactions?after=<version>&limit=<n>
// with one page of accepted changes, oldest first, and the after of the
// next page (null when this page is the last). It reads only the page.
func transactions(ctx context.Context, r uneventful.Reader, id string, params url.Values) (any, error) {
	limit, err := intParam(params, "limit", defaultLimit, 1, maxLimit, "invalid_limit", fmt.Sprintf("a whole number from 1 to %d", maxLimit))
	if err != nil {
		return nil, err
	}
	after, err := intParam(params, "after", 0, 0, math.MaxInt64, "invalid_after", "a version: a whole number, 0 or more")
	if err != nil {
		return nil, err
	}
	events, err := r.Events(ctx, Name, id, after, int(limit))
	if err != nil {
		return nil, readError(id, err)
	}
	if len(events) == 0 {
		// An empty page of a wallet that exists is not an error.
		if _, err := r.State(ctx, Name, id); err != nil {
			return nil, readError(id, err)
		}
	}
	page := struct {
		EntityID     string        `json:"entity_id"`
		Transactions []transaction `json:"transactions"`
		NextAfter    *int64        `json:"next_after"`
	}{EntityID: id, Transactions: make([]transaction, len(events))}
	for i := range events {
		tx, err := newTransaction(&events[i])
		if err != nil {
			return nil, fmt.Errorf("read wallet %s version %d: %w", id, events[i].Version, err)
		}
		page.Transactions[i] = tx
	}
	if len(events) == int(limit) {
		page.NextAfter = &events[len(events)-1].Version
	}
	return page, nil
}

// The statuses of a transfer.
const (
	// Pending: the amount left the source and is in flight.
	Pending = "pending"
	// Completed: the target received the amount.
	Completed = "completed"
	// Compensated: the target refused the amount, and it went back to
	// the source.
	Compensated = "compensated"
)

// MaxTransferScan is how many of a wallet's latest changes the transfer
// query reads, at most, to find a transfer.
const MaxTransferScan = 100 * maxLimit

// transferStatus answers GET /wallet/{id}/transfer?id=<transfer id>, where
// {id} is the wallet the transfer was made from, with
// {"transfer", "from", "to", "amount", "status", "version", "timestamp"}:
// the status is pending until the source records a settle (completed) or
// a refund (compensated) of the transfer, and version and timestamp are
// those of the transfer on the source.
//
// The read model has no index of events by id, so the query reads the
// wallet's accepted changes from the newest back to the transfer, a page
// at a time: its work is the number of changes since the transfer, not
// the wallet's history, and it finds a pending transfer in the first
// page. It gives up after MaxTransferScan changes.
func transferStatus(ctx context.Context, r uneventful.Reader, id string, params url.Values) (any, error) {
	vs := params["id"]
	if len(vs) != 1 || uneventful.ValidID(vs[0]) != nil {
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_transfer_id",
			"give the transfer's id once, as ?id=<the event_id of the transfer>, a 27-character KSUID; got %q", short([]byte(strings.Join(vs, ","))))
	}
	tid := vs[0]
	st, err := r.State(ctx, Name, id)
	if err != nil {
		return nil, readError(id, err)
	}
	status := Pending
	for hi := st.Version; hi > 0 && st.Version-hi < MaxTransferScan; {
		lo := max(hi-maxLimit, 0)
		events, err := r.Events(ctx, Name, id, lo, int(hi-lo))
		if err != nil {
			return nil, readError(id, err)
		}
		for i := len(events) - 1; i >= 0; i-- {
			e := &events[i]
			if e.Version > hi {
				continue // recorded since the page was chosen; seen or not, it is newer
			}
			if e.EventID == tid {
				if e.Command != Transfer {
					return nil, uneventful.Errorf(uneventful.ErrNotFound, "transfer_not_found", "%s is a %s of wallet %s, not a transfer", tid, e.Command, id)
				}
				var m move
				if err := json.Unmarshal(e.Data, &m); err != nil {
					return nil, fmt.Errorf("read wallet %s version %d: %w", id, e.Version, err)
				}
				return struct {
					Transfer  string      `json:"transfer"`
					From      string      `json:"from"`
					To        string      `json:"to"`
					Amount    json.Number `json:"amount"`
					Status    string      `json:"status"`
					Version   int64       `json:"version"`
					Timestamp time.Time   `json:"timestamp"`
				}{tid, id, m.To, json.Number(FormatAmount(m.Amount, m.Scale)), status, e.Version, e.Timestamp.UTC()}, nil
			}
			if e.Command == Settle || e.Command == Refund {
				var m move
				if err := json.Unmarshal(e.Data, &m); err != nil {
					return nil, fmt.Errorf("read wallet %s version %d: %w", id, e.Version, err)
				}
				if m.Transfer == tid {
					status = Completed
					if e.Command == Refund {
						status = Compensated
					}
				}
			}
		}
		if len(events) == 0 {
			break
		}
		hi = lo
	}
	if st.Version > MaxTransferScan {
		return nil, uneventful.Errorf(uneventful.ErrNotFound, "transfer_not_found",
			"wallet %s made no transfer %s in its last %d changes; older transfers are listed by GET /wallet/%s/transactions", id, tid, MaxTransferScan, id)
	}
	return nil, uneventful.Errorf(uneventful.ErrNotFound, "transfer_not_found",
		"wallet %s made no transfer %s; ask the wallet the transfer was made from", id, tid)
}

// readError turns ErrNotFound from a Reader into the wallet's 404.
func readError(id string, err error) error {
	if errors.Is(err, uneventful.ErrNotFound) {
		return uneventful.Errorf(uneventful.ErrNotFound, "wallet_not_found", "wallet %s has no transactions yet", id)
	}
	return fmt.Errorf("read wallet %s: %w", id, err)
}

// intParam returns the query parameter name as an integer from lo to hi,
// def if it is absent, or an error with code that says it must be want.
func intParam(params url.Values, name string, def, lo, hi int64, code, want string) (int64, error) {
	vs, ok := params[name]
	if !ok {
		return def, nil
	}
	if len(vs) > 1 {
		return 0, uneventful.Errorf(uneventful.ErrInvalid, code, "%s is given %d times; give it once", name, len(vs))
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, uneventful.Errorf(uneventful.ErrInvalid, code, "%s must be %s; got %q", name, want, short([]byte(vs[0])))
	}
	return n, nil
}
