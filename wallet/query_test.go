package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
)

// reader is a read model of one wallet's accepted events and latest state.
type reader struct {
	id     string
	state  *uneventful.State
	events []uneventful.Event
	limits []int // the limits Events was asked for
	err    error // returned by every call when set
}

func (r *reader) State(_ context.Context, domain, id string) (uneventful.State, error) {
	if r.err != nil {
		return uneventful.State{}, r.err
	}
	if domain != Name || id != r.id || r.state == nil {
		return uneventful.State{}, fmt.Errorf("state %s.%s: %w", domain, id, uneventful.ErrNotFound)
	}
	return *r.state, nil
}

func (r *reader) Events(_ context.Context, domain, id string, after int64, limit int) ([]uneventful.Event, error) {
	r.limits = append(r.limits, limit)
	if r.err != nil {
		return nil, r.err
	}
	var page []uneventful.Event
	for _, e := range r.events {
		if domain == Name && id == r.id && e.Version > after && len(page) < limit {
			page = append(page, e)
		}
	}
	return page, nil
}

var start = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// record runs the commands, each a command name and a body, as a writer
// would, and returns a reader of the accepted ones.
func record(t *testing.T, commands ...string) *reader {
	d := New(DefaultScale)
	r := &reader{id: uneventful.NewID()}
	s := d.InitialState
	for i := 0; i < len(commands); i += 2 {
		next, change, err := do(t, d, s, commands[i], commands[i+1])
		if errors.Is(err, uneventful.ErrRejected) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s = next
		v := int64(len(r.events) + 1)
		e := uneventful.Event{EventID: fmt.Sprintf("event%d", v), Timestamp: start.Add(time.Duration(v) * time.Second),
			Domain: Name, EntityID: r.id, Command: commands[i], Data: json.RawMessage(change), Version: v, Outcome: uneventful.Accepted}
		data, err := d.EncodeState(s)
		if err != nil {
			t.Fatal(err)
		}
		r.events = append(r.events, e)
		r.state = &uneventful.State{Domain: Name, EntityID: r.id, Version: v, Timestamp: e.Timestamp, EventID: e.EventID, Data: data}
	}
	return r
}

// query runs a query and returns its answer as JSON.
func query(t *testing.T, r *reader, name, params string) (string, error) {
	t.Helper()
	values, err := url.ParseQuery(params)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(DefaultScale).Queries()[name](context.Background(), r, r.id, values)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

func TestBalance(t *testing.T) {
	r := record(t, Credit, `{"amount": 5}`, Debit, `{"amount": 9}`, Credit, `{"amount": 0.3}`)
	got, err := query(t, r, "balance", "")
	want := `{"entity_id":"` + r.id + `","version":2,"timestamp":"2025-01-02T03:04:07Z","balance":5.3}`
	if err != nil || got != want {
		t.Errorf("balance = %s, %v; want %s", got, err, want)
	}
}

func TestQueriesOfUnknownWallet(t *testing.T) {
	r := record(t)
	for _, name := range []string{"balance", "transactions"} {
		_, err := query(t, r, name, "")
		e := checkError(t, err, uneventful.ErrNotFound, "wallet_not_found")
		if want := "wallet " + r.id + " has no transactions yet"; e.Message != want {
			t.Errorf("%s: message = %q, want %q", name, e.Message, want)
		}
	}
}

func TestQueriesPassReaderErrorsOn(t *testing.T) {
	r := record(t, Credit, `{"amount": 5}`)
	r.err = uneventful.Errorf(uneventful.ErrUnavailable, "unavailable", "the read model is down")
	for _, name := range []string{"balance", "transactions"} {
		if _, err := query(t, r, name, ""); !errors.Is(err, uneventful.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
	}
}

func TestTransactions(t *testing.T) {
	r := record(t,
		Credit, `{"amount": 5}`,
		Debit, `{"amount": 0.01}`,
		Debit, `{"amount": 100}`, // rejected, not a transaction
		Credit, `{"amount": 12.34}`,
	)
	tx := func(v int, amount, typ string) string {
		return fmt.Sprintf(`{"timestamp":"2025-01-02T03:04:0%dZ","source_entity_id":"%s","amount":%s,"version":%d,"event_id":"event%d","type":"%s"}`,
			5+v, r.id, amount, v, v, typ)
	}
	page := func(next string, txs ...string) string {
		s := `{"entity_id":"` + r.id + `","transactions":[`
		for i, tx := range txs {
			if i > 0 {
				s += ","
			}
			s += tx
		}
		return s + `],"next_after":` + next + `}`
	}
	all := []string{tx(1, "5", Credit), tx(2, "-0.01", Debit), tx(3, "12.34", Credit)}
	for _, tc := range []struct {
		params string
		want   string
		limit  int // asked of the reader
	}{
		{"", page("null", all...), 50},
		{"limit=2", page("2", all[:2]...), 2},
		{"limit=2&after=2", page("null", all[2]), 2},
		{"after=1", page("null", all[1:]...), 50},
		{"limit=3", page("3", all...), 3},
		{"after=3", page("null"), 50},
		{"after=99&limit=1000", page("null"), 1000},
	} {
		r.limits = nil
		got, err := query(t, r, "transactions", tc.params)
		if err != nil || got != tc.want {
			t.Errorf("transactions?%s =\n%s, %v\nwant\n%s", tc.params, got, err, tc.want)
		}
		if len(r.limits) != 1 || r.limits[0] != tc.limit {
			t.Errorf("transactions?%s asked the reader for limits %v, want [%d]", tc.params, r.limits, tc.limit)
		}
	}
}

func TestTransactionsRejectsBadParams(t *testing.T) {
	r := record(t, Credit, `{"amount": 5}`)
	for _, tc := range []struct {
		params, code, msg string
	}{
		{"limit=0", "invalid_limit", `limit must be a whole number from 1 to 1000; got "0"`},
		{"limit=1001", "invalid_limit", ""},
		{"limit=-1", "invalid_limit", ""},
		{"limit=ten", "invalid_limit", ""},
		{"limit=", "invalid_limit", ""},
		{"limit=1.5", "invalid_limit", ""},
		{"limit=1&limit=2", "invalid_limit", "limit is given 2 times; give it once"},
		{"after=-1", "invalid_after", `after must be a version: a whole number, 0 or more; got "-1"`},
		{"after=x", "invalid_after", ""},
		{"after=99999999999999999999", "invalid_after", ""},
	} {
		_, err := query(t, r, "transactions", tc.params)
		e := checkError(t, err, uneventful.ErrInvalid, tc.code)
		if tc.msg != "" && e.Message != tc.msg {
			t.Errorf("transactions?%s: message = %q, want %q", tc.params, e.Message, tc.msg)
		}
	}
}
