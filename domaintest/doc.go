// Package domaintest tests the rules of a domain the way its users see them:
// given what happened to an entity, when a command arrives, then it is
// accepted with this change, or rejected with this code, or refused as
// invalid, and the state is this.
//
//	domaintest.New(t, inventory.New()).
//		Given("add", `{"quantity": 5}`).
//		When("reserve", `{"quantity": 7, "reservation": "r1"}`).
//		ThenRejected("insufficient_stock")
//
// It drives any uneventful.Model through its public methods, as a writer
// does (Parse, Decide, Apply, EncodeState, DecodeState, View), and on the
// way checks the contract that the writer relies on, failing the test when
// the domain breaks it: Decide and Apply give the same answer twice and
// leave the state they are given as it was; Apply takes every change that
// Decide returned; a state reads back from its JSON as the same state; the
// view is a JSON object.
//
// JSON is compared by meaning: the order of keys and white space do not
// matter, and numbers are compared as exact decimals, never through
// float64: 5, 5.0 and 5e0 are equal, 0.3 and 0.30000000000000001 are not.
package domaintest
