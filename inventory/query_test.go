package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/inventory"
)

// reader holds one product's latest state.
type reader struct {
	id    string
	state *uneventful.State
	err   error // returned by every call when set
}

func (r *reader) State(_ context.Context, domain, id string) (uneventful.State, error) {
	if r.err != nil {
		return uneventful.State{}, r.err
	}
	if domain != inventory.Name || id != r.id || r.state == nil {
		return uneventful.State{}, fmt.Errorf("state %s.%s: %w", domain, id, uneventful.ErrNotFound)
	}
	return *r.state, nil
}

func (r *reader) Events(context.Context, string, string, int64, int) ([]uneventful.Event, error) {
	return nil, errors.New("the stock query reads no events")
}

func stock(t *testing.T, r *reader, id string) (string, error) {
	t.Helper()
	v, err := inventory.New().Queries()["stock"](context.Background(), r, id, nil)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

func TestStock(t *testing.T) {
	id := uneventful.NewID()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	r := &reader{id: id, state: &uneventful.State{Domain: inventory.Name, EntityID: id, Version: 3, Timestamp: at,
		Data: json.RawMessage(`{"on_hand":5,"reserved":2,"reservations":{"r1":2}}`)}}
	got, err := stock(t, r, id)
	want := `{"entity_id":"` + id + `","version":3,"timestamp":"2025-01-02T02:04:05Z","available":3,"reserved":2}`
	if err != nil || got != want {
		t.Fatalf("stock = %s, %v; want %s", got, err, want)
	}
}

func TestStockOfUnknownProduct(t *testing.T) {
	id := uneventful.NewID()
	_, err := stock(t, &reader{id: uneventful.NewID()}, id)
	if !errors.Is(err, uneventful.ErrNotFound) || uneventful.ErrorCode(err) != "product_not_found" {
		t.Fatalf("stock of an unknown product = %v (code %s); want ErrNotFound with code product_not_found", err, uneventful.ErrorCode(err))
	}
	if got, want := uneventful.ErrorMessage(err), "product "+id+" has no stock recorded yet"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestStockReadFails(t *testing.T) {
	id := uneventful.NewID()
	down := fmt.Errorf("redis: %w", uneventful.ErrUnavailable)
	if _, err := stock(t, &reader{id: id, err: down}, id); !errors.Is(err, uneventful.ErrUnavailable) || errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("stock while the read model is down = %v; want ErrUnavailable", err)
	}
	bad := &reader{id: id, state: &uneventful.State{Data: json.RawMessage(`{"on_hand":"five"}`)}}
	if _, err := stock(t, bad, id); err == nil || errors.Is(err, uneventful.ErrInvalid) || errors.Is(err, uneventful.ErrNotFound) {
		t.Errorf("stock of a state that cannot be read = %v; want an internal error", err)
	}
}
