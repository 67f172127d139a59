package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"time"

	"github.com/uneventful/uneventful"
)

// Name is the inventory domain's name, the first part of its streams and
// routes.
const Name = "inventory"

// The inventory's commands.
const (
	// Add puts a quantity of the product in stock.
	Add = "add"
	// Reserve sets a quantity of the available stock aside under a
	// reservation id, if that much is available.
	Reserve = "reserve"
	// Release returns a reservation's quantity to the available stock.
	Release = "release"
)

// MaxReservations is the most reservations a product holds at once. Its
// state, reservations included, is written on every change, so the bound
// keeps each write small.
const MaxReservations = 1000

// State is a product's stock as the state log records it, e.g.
// {"on_hand":5,"reserved":2,"reservations":{"order-1":2}}. Reserved is the
// sum of Reservations and never more than OnHand.
type State struct {
	OnHand       int64            `json:"on_hand"`
	Reserved     int64            `json:"reserved"`
	Reservations map[string]int64 `json:"reservations,omitempty"`
}

// Available returns the stock that can still be reserved.
func (s State) Available() int64 { return s.OnHand - s.Reserved }

// New returns the inventory domain.
func New() *uneventful.Domain[State] {
	return &uneventful.Domain[State]{
		DomainName: Name,
		Handlers: map[string]uneventful.Handler[State]{
			Add:     uneventful.Handle(parseAdd, add, applyAdd),
			Reserve: uneventful.Handle(parseReserve, reserve, applyReserve),
			Release: uneventful.Handle(parseRelease, release, applyRelease),
		},
		ViewFunc:   func(s State) any { return view{Available: s.Available(), Reserved: s.Reserved} },
		QueryFuncs: map[string]uneventful.Query{"stock": stock},
		API:        api,
	}
}

// view is the public part of a State, in command replies and the stock
// query.
type view struct {
	Available int64 `json:"available"`
	Reserved  int64 `json:"reserved"`
}

// The command bodies. DecodeJSON rejects any other field, and a quantity
// that is not an integer in the range of int64.
type (
	addBody struct {
		Quantity *int64 `json:"quantity"`
	}
	reserveBody struct {
		Quantity    *int64  `json:"quantity"`
		Reservation *string `json:"reservation"`
	}
	releaseBody struct {
		Reservation *string `json:"reservation"`
	}
)

func (addBody) JSONShape() string     { return `{"quantity": <whole number>}` }
func (reserveBody) JSONShape() string { return `{"quantity": <whole number>, "reservation": "<id>"}` }
func (releaseBody) JSONShape() string { return `{"reservation": "<id>"}` }

func parseAdd(body []byte) (change, error) {
	var b addBody
	if err := uneventful.DecodeJSON(body, &b); err != nil {
		return change{}, err
	}
	return parsed(Add, b.Quantity, nil)
}

func parseReserve(body []byte) (change, error) {
	var b reserveBody
	if err := uneventful.DecodeJSON(body, &b); err != nil {
		return change{}, err
	}
	return parsed(Reserve, b.Quantity, b.Reservation)
}

func parseRelease(body []byte) (change, error) {
	var b releaseBody
	if err := uneventful.DecodeJSON(body, &b); err != nil {
		return change{}, err
	}
	return parsed(Release, nil, b.Reservation)
}

// change is a command's input as Parse normalises it and the change that
// Decide records: {"quantity":5} for add, {"reservation":"order-1"} for
// release, and {"quantity":2,"reservation":"order-1"} for reserve and for a
// decided release.
type change struct {
	Quantity    int64  `json:"quantity,omitempty"`
	Reservation string `json:"reservation,omitempty"`
}

// parsed returns the input of command with the fields it takes, checked.
func parsed(command string, quantity *int64, reservation *string) (change, error) {
	switch {
	case quantity == nil && command != Release:
		return change{}, invalid("quantity_required", `the quantity is missing or null; send it as a whole number such as {"quantity": 5}`)
	case reservation == nil && command != Add:
		return change{}, invalid("reservation_required", `the reservation is missing or null; send its id as a string such as {"reservation": "order-1"}`)
	}
	var c change
	if quantity != nil {
		c.Quantity = *quantity
	}
	if reservation != nil {
		c.Reservation = *reservation
	}
	return c, c.check(command)
}

// check validates the input of command. Decide checks again: a writer
// trusts no server.
func (c change) check(command string) error {
	if command != Release && c.Quantity < 1 {
		return invalid("quantity_not_positive", "the quantity must be a whole number of 1 or more; got %d", c.Quantity)
	}
	if command != Add && !reservationRE.MatchString(c.Reservation) {
		return invalid("invalid_reservation", "the reservation id must be 1 to 64 letters, digits, '-', '_', '.' or ':'; got %.70q", c.Reservation)
	}
	return nil
}

// reservationRE is a reservation id: short, and safe in messages and logs.
var reservationRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

func add(s State, in change) (change, error) {
	if err := in.check(Add); err != nil {
		return change{}, err
	}
	if in.Quantity > math.MaxInt64-s.OnHand {
		return change{}, uneventful.Reject("stock_overflow", "adding %d to the %d on hand would pass the most a product can hold, %d", in.Quantity, s.OnHand, int64(math.MaxInt64))
	}
	return change{Quantity: in.Quantity}, nil
}

func reserve(s State, in change) (change, error) {
	if err := in.check(Reserve); err != nil {
		return change{}, err
	}
	if _, held := s.Reservations[in.Reservation]; held {
		return change{}, uneventful.Reject("reservation_exists", "reservation %q is held already; release it first, or use a new id", in.Reservation)
	}
	if in.Quantity > s.Available() {
		return change{}, uneventful.Reject("insufficient_stock", "insufficient stock: %d available, %d asked for", s.Available(), in.Quantity)
	}
	if len(s.Reservations) >= MaxReservations {
		return change{}, uneventful.Reject("too_many_reservations", "the product holds %d reservations, the most it can; release one first", len(s.Reservations))
	}
	return change{Quantity: in.Quantity, Reservation: in.Reservation}, nil
}

func release(s State, in change) (change, error) {
	if err := in.check(Release); err != nil {
		return change{}, err
	}
	q, held := s.Reservations[in.Reservation]
	if !held {
		return change{}, uneventful.Reject("unknown_reservation", "the product holds no reservation %q", in.Reservation)
	}
	return change{Quantity: q, Reservation: in.Reservation}, nil
}

// The apply functions get a copy of the state but share its map with the
// writer's cached state, so they replace the map instead of changing it.

func applyAdd(s State, c change) State {
	s.OnHand += c.Quantity
	return s
}

func applyReserve(s State, c change) State {
	s.Reservations = maps.Clone(s.Reservations)
	if s.Reservations == nil {
		s.Reservations = make(map[string]int64, 1)
	}
	s.Reservations[c.Reservation] = c.Quantity
	s.Reserved += c.Quantity
	return s
}

func applyRelease(s State, c change) State {
	s.Reservations = maps.Clone(s.Reservations)
	delete(s.Reservations, c.Reservation)
	s.Reserved -= c.Quantity
	return s
}

// stock answers GET /inventory/{id}/stock with
// {"entity_id", "version", "timestamp", "available", "reserved"}.
func stock(ctx context.Context, r uneventful.Reader, id string, _ url.Values) (any, error) {
	st, err := r.State(ctx, Name, id)
	if errors.Is(err, uneventful.ErrNotFound) {
		return nil, uneventful.Errorf(uneventful.ErrNotFound, "product_not_found", "product %s has no stock recorded yet", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read product %s: %w", id, err)
	}
	var s State
	if err := json.Unmarshal(st.Data, &s); err != nil {
		return nil, fmt.Errorf("read product %s: %w", id, err)
	}
	return struct {
		EntityID  string    `json:"entity_id"`
		Version   int64     `json:"version"`
		Timestamp time.Time `json:"timestamp"`
		view
	}{id, st.Version, st.Timestamp.UTC(), view{s.Available(), s.Reserved}}, nil
}

func invalid(code, format string, args ...any) error {
	return uneventful.Errorf(uneventful.ErrInvalid, code, format, args...)
}
