package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/uneventful/uneventful"
)

// The limits of a page of transactions.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// balance answers GET /wallet/{id}/balance with
// {"entity_id", "version", "timestamp", "balance"}.
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
		EntityID  string      `json:"entity_id"`
		Version   int64       `json:"version"`
		Timestamp time.Time   `json:"timestamp"`
		Balance   json.Number `json:"balance"`
	}{id, st.Version, st.Timestamp.UTC(), json.Number(FormatAmount(s.Balance, s.Scale))}, nil
}

// transaction is one accepted credit or debit as the transactions query
// shows it; a debit's amount is negative.
type transaction struct {
	Timestamp      time.Time   `json:"timestamp"`
	SourceEntityID string      `json:"source_entity_id"`
	Amount         json.Number `json:"amount"`
	Version        int64       `json:"version"`
	EventID        string      `json:"event_id"`
	Type           string      `json:"type"`
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
	for i, e := range events {
		var c change
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return nil, fmt.Errorf("read wallet %s version %d: %w", id, e.Version, err)
		}
		a := c.Amount
		switch e.Command {
		case Credit:
		case Debit:
			a = -a
		default:
			return nil, fmt.Errorf("read wallet %s version %d: unknown command %q", id, e.Version, e.Command)
		}
		page.Transactions[i] = transaction{
			Timestamp:      e.Timestamp.UTC(),
			SourceEntityID: e.EntityID,
			Amount:         json.Number(FormatAmount(a, c.Scale)),
			Version:        e.Version,
			EventID:        e.EventID,
			Type:           e.Command,
		}
	}
	if len(events) == int(limit) {
		page.NextAfter = &events[len(events)-1].Version
	}
	return page, nil
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
