package uneventful_test

import (
	"fmt"

	"github.com/uneventful/uneventful"
)

// A domain is its state type and one Handle per command: parse checks the
// body, decide accepts or rejects the command against the state, apply
// makes the new state. The framework runs them as below for every command
// (see package writer) and records the outcome.
func ExampleDomain() {
	type counter struct {
		Count int64 `json:"count"`
	}
	type increment struct {
		By int64 `json:"by"`
	}
	d := &uneventful.Domain[counter]{
		DomainName: "counter",
		Handlers: map[string]uneventful.Handler[counter]{
			"increment": uneventful.Handle(
				func(body []byte) (increment, error) {
					var in increment
					if err := uneventful.DecodeJSON(body, &in); err != nil {
						return in, err
					}
					if in.By < 1 {
						return in, uneventful.Errorf(uneventful.ErrInvalid, "by_not_positive", "by must be 1 or more; got %d", in.By)
					}
					return in, nil
				},
				func(s counter, in increment) (increment, error) {
					if in.By > 10-s.Count {
						return increment{}, uneventful.Reject("limit_reached", "the count is %d and may not pass 10", s.Count)
					}
					return in, nil
				},
				func(s counter, c increment) counter { return counter{Count: s.Count + c.By} },
			),
		},
		ViewFunc: func(s counter) any { return s },
	}

	state := d.Initial()
	for _, body := range []string{`{"by": 4}`, `{"by": 0}`, `{"by": 7}`, `{"by": 6}`} {
		data, err := d.Parse("increment", []byte(body))
		if err != nil {
			fmt.Printf("%s: invalid, %s\n", body, err)
			continue
		}
		change, err := d.Decide(state, "increment", data)
		if err != nil {
			fmt.Printf("%s: rejected, %s\n", body, err)
			continue
		}
		state, _ = d.Apply(state, "increment", change)
		view, _ := d.View(state)
		fmt.Printf("%s: accepted %s, now %s\n", body, change, view)
	}
	// Output:
	// {"by": 4}: accepted {"by":4}, now {"count":4}
	// {"by": 0}: invalid, by must be 1 or more; got 0
	// {"by": 7}: rejected, the count is 4 and may not pass 10
	// {"by": 6}: accepted {"by":6}, now {"count":10}
}
