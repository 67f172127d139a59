package domaintest

import "testing"

func TestDifference(t *testing.T) {
	for _, tc := range []struct{ got, want, diff string }{
		{`5`, `5`, ""},
		{`5`, `5.0`, ""},
		{`5`, `5e0`, ""},
		{`500`, `5E+2`, ""},
		{`-0`, `0`, ""},
		{`0.1`, `1e-1`, ""},
		{`{"a":1,"b":[true,null,"x"]}`, ` { "b" : [ true , null , "x" ] , "a" : 1.00 } `, ""},
		{`9007199254740993`, `9007199254740992`, "got 9007199254740993, want 9007199254740992"},
		{`0.1`, `0.1000000000000000055511151231257827`, "got 0.1, want 0.1000000000000000055511151231257827"},
		{`1`, `"1"`, `got 1, want "1"`},
		{`null`, `{}`, "got null, want an object with 0 keys"},
		{`{"a":{"b c":[1,2]}}`, `{"a":{"b c":[1,3]}}`, `at a["b c"][1]: got 2, want 3`},
		{`[1,2]`, `[2,1]`, "at [0]: got 1, want 2"},
		{`[1,2]`, `[1,2,3]`, "got an array of 2, want an array of 3"},
		{`{"a":1}`, `{"b":1}`, "a is not wanted"},
		{`{"a":1,"b":1}`, `{"b":1,"c":1}`, "a is not wanted"},
		{`{"b":1}`, `{"b":1,"c":1}`, "c is missing"},
		{`{"a":true}`, `{"a":false}`, "at a: got true, want false"},
		{`{"a":1} x`, `{"a":1}`, "got is not JSON: there is more after the JSON value"},
		{`{"a":1}`, `{"a":}`, "want is not JSON: invalid character '}' looking for beginning of value"},
	} {
		if got := difference([]byte(tc.got), []byte(tc.want)); got != tc.diff {
			t.Errorf("difference(%s, %s) = %q, want %q", tc.got, tc.want, got, tc.diff)
		}
	}
}
