package domaintest_test

import (
	"fmt"
	"testing"

	"github.com/uneventful/uneventful/domaintest"
	"github.com/uneventful/uneventful/inventory"
)

// printer is a testing.TB that prints failures, so that the examples can
// show them. In a test, pass the test's *testing.T instead.
type printer struct{ testing.TB }

func (printer) Helper()                           {}
func (printer) Errorf(format string, args ...any) { fmt.Printf("FAIL "+format+"\n", args...) }
func (printer) Fatalf(format string, args ...any) { fmt.Printf("FATAL "+format+"\n", args...) }

// A scenario that holds reports nothing; one that does not says what came
// of the command instead.
func Example() {
	t := printer{} // in a test: func TestReserve(t *testing.T)

	domaintest.New(t, inventory.New()).
		Given("add", `{"quantity": 5}`).
		When("reserve", `{"quantity": 7, "reservation": "r1"}`).
		ThenRejected("insufficient_stock")

	domaintest.New(t, inventory.New()).
		Given("add", `{"quantity": 5}`).
		When("reserve", `{"quantity": 5, "reservation": "r1"}`).
		ThenRejected("insufficient_stock")
	// Output:
	// FAIL inventory: given add {"quantity":5}; when reserve {"quantity":5,"reservation":"r1"}: want rejected insufficient_stock, but it was accepted with the change {"quantity":5,"reservation":"r1"}
}

// ThenAccepted checks the change that the event log records; ThenState and
// ThenView check the state after it. JSON is compared by meaning, numbers
// exactly.
func ExampleScenario_ThenAccepted() {
	t := printer{}
	domaintest.New(t, inventory.New()).
		Given("add", `{"quantity": 5}`).
		Given("reserve", `{"quantity": 2, "reservation": "r1"}`).
		When("release", `{"reservation": "r1"}`).
		ThenAccepted(`{"reservation": "r1", "quantity": 2}`).
		ThenState(`{"on_hand": 5, "reserved": 0}`).
		ThenView(`{"available": 5, "reserved": 1}`)
	// Output:
	// FAIL inventory: given add {"quantity":5}; given reserve {"quantity":2,"reservation":"r1"}; when release {"reservation":"r1"}: the view is {"available":5,"reserved":0}, want {"available":5,"reserved":1} (at reserved: got 0, want 1)
}

// A given command that is not accepted stops the test: what follows would
// test the wrong state.
func ExampleScenario_Given() {
	t := printer{}
	domaintest.New(t, inventory.New()).
		Given("reserve", `{"quantity": 2, "reservation": "r1"}`).
		When("release", `{"reservation": "r1"}`).
		ThenAccepted(`{"quantity": 2, "reservation": "r1"}`)
	// Output:
	// FATAL inventory: given reserve {"quantity":2,"reservation":"r1"}: a given command must be accepted, but Decide rejected it with insufficient_stock: insufficient stock: 0 available, 2 asked for
}

// GivenChange applies a change as the event log records it, without
// deciding it again, and GivenState starts from a state as the state log
// keeps it. State returns the state for checks that JSON cannot make.
func ExampleScenario_GivenState() {
	t := printer{}
	s := domaintest.New(t, inventory.New()).
		GivenState(`{"on_hand": 5, "reserved": 2, "reservations": {"r1": 2}}`).
		GivenChange("reserve", `{"quantity": 3, "reservation": "r2"}`).
		When("reserve", `{"quantity": 1, "reservation": "r3"}`).
		ThenRejected("insufficient_stock")
	fmt.Printf("%+v\n", s.State())
	// Output:
	// {OnHand:5 Reserved:5 Reservations:map[r1:2 r2:3]}
}
