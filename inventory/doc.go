// Package inventory is the inventory domain: the stock of a product, which
// can be added, reserved and released, and never reserved beyond what is on
// hand. It is written with the public API of package uneventful alone and is
// the worked example of docs/FRAMEWORK.md.
//
// A product is an entity named by a KSUID. Quantities are whole numbers of
// 1 or more that fit an int64; there is no fraction of an item, so no
// floating point anywhere. The JSON it reads and writes:
//
//	command body   POST /inventory/{id}/add       {"quantity": 5}
//	               POST /inventory/{id}/reserve   {"quantity": 2, "reservation": "order-1"}
//	               POST /inventory/{id}/release   {"reservation": "order-1"}
//	change         the event log                  {"quantity":2,"reservation":"order-1"}
//	state          the state log and read model   {"on_hand":5,"reserved":2,"reservations":{"order-1":2}}
//	view           merged into command replies    {"available":3,"reserved":2}
//	stock query    GET /inventory/{id}/stock      {"entity_id":"…","version":2,"timestamp":"…","available":3,"reserved":2}
//
// A release records the quantity it returned, so the event log alone says
// how the stock moved.
//
// Error codes: a bad body gets those of uneventful.DecodeJSON (a quantity
// that is not an integer in the range of int64, such as 2.5 or 1e3, is
// wrong_type) and quantity_required, quantity_not_positive,
// reservation_required and invalid_reservation (kind ErrInvalid, HTTP 400).
// Decide rejects (kind ErrRejected, recorded, HTTP 409) a reserve beyond the
// available stock with insufficient_stock, a reservation id the product
// holds already with reservation_exists, a reserve past MaxReservations
// with too_many_reservations, a release of a reservation the product does
// not hold with unknown_reservation, and an add past the largest int64 with
// stock_overflow. The stock query answers product_not_found (ErrNotFound,
// HTTP 404) for a product with no accepted change.
package inventory
