package uneventful_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
)

func TestValidID(t *testing.T) {
	id := uneventful.NewID()
	if err := uneventful.ValidID(id); err != nil {
		t.Fatalf("ValidID(%q) = %v, want nil", id, err)
	}
	if err := uneventful.ValidID("aWgEPTl1tmebfsQzFP4bxwgy80V"); err != nil { // the largest KSUID
		t.Fatalf("ValidID of the largest KSUID = %v, want nil", err)
	}
	for _, bad := range []string{
		"",
		id[:26],
		id + "0",
		strings.Repeat("z", 27),       // more than 20 bytes
		"aWgEPTl1tmebfsQzFP4bxwgy80W", // the largest KSUID + 1
		// ksuid.Parse reads any byte as a digit; none of these is an id,
		// and '.', '*' and '>' would be tokens of a NATS subject.
		id[:26] + "_",
		id[:26] + ".",
		id[:26] + "*",
		id[:26] + ">",
		id[:13] + "/" + id[14:],
		id[:26] + " ",
		id[:26] + "\x00",
		id[:25] + "é",
	} {
		err := uneventful.ValidID(bad)
		if !errors.Is(err, uneventful.ErrInvalid) || uneventful.ErrorCode(err) != "invalid_id" {
			t.Errorf("ValidID(%q) = %v, want invalid_id", bad, err)
		}
	}
}
