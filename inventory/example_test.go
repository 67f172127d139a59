package inventory_test

import (
	"fmt"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/inventory"
)

// A writer runs each command through the domain as below: Parse checks the
// body (bad input is refused and never recorded), Decide accepts or
// rejects it against the product's state (both are recorded), and Apply
// makes the state after an accepted change.
func ExampleNew() {
	d := inventory.New()
	state := d.Initial()
	for _, c := range []struct{ command, body string }{
		{inventory.Add, `{"quantity": 5}`},
		{inventory.Reserve, `{"quantity": 7, "reservation": "order-1"}`},
		{inventory.Reserve, `{"quantity": 2, "reservation": "order-1"}`},
		{inventory.Add, `{"quantity": 2.5}`},
		{inventory.Release, `{"reservation": "order-1"}`},
	} {
		data, err := d.Parse(c.command, []byte(c.body))
		if err != nil {
			fmt.Printf("%s invalid (%s): %s\n", c.command, uneventful.ErrorCode(err), uneventful.ErrorMessage(err))
			continue
		}
		change, err := d.Decide(state, c.command, data)
		if err != nil {
			fmt.Printf("%s rejected (%s): %s\n", c.command, uneventful.ErrorCode(err), uneventful.ErrorMessage(err))
			continue
		}
		if state, err = d.Apply(state, c.command, change); err != nil {
			panic(err)
		}
		view, _ := d.View(state)
		fmt.Printf("%s accepted %s, now %s\n", c.command, change, view)
	}
	// Output:
	// add accepted {"quantity":5}, now {"available":5,"reserved":0}
	// reserve rejected (insufficient_stock): insufficient stock: 5 available, 7 asked for
	// reserve accepted {"quantity":2,"reservation":"order-1"}, now {"available":3,"reserved":2}
	// add invalid (wrong_type): field "quantity" takes an integer in the range of int64; got 2.5
	// release accepted {"quantity":2,"reservation":"order-1"}, now {"available":5,"reserved":0}
}
