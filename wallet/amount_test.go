package wallet

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/uneventful/uneventful"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in    string
		scale int
		want  Amount
		code  string // "" when in is an amount
		msg   string // checked when set
	}{
		{in: "5", scale: 2, want: 500},
		{in: "0.3", scale: 2, want: 30},
		{in: "12.34", scale: 2, want: 1234},
		{in: "0.01", scale: 2, want: 1},
		{in: "0.10", scale: 2, want: 10},
		{in: "10", scale: 0, want: 10},
		{in: "0.000000001", scale: 9, want: 1},
		{in: "92233720368547758.07", scale: 2, want: math.MaxInt64},
		{in: "92233720368547758.08", scale: 2, code: "amount_too_large", msg: "the amount 92233720368547758.08 is too large; the largest is 92233720368547758.07"},
		{in: "92233720368547758", scale: 2, want: 9223372036854775800},
		{in: "92233720368547759", scale: 2, code: "amount_too_large"},
		{in: "9223372036854775807", scale: 0, want: math.MaxInt64},
		{in: "9223372036854775808", scale: 0, code: "amount_too_large"},
		{in: "9223372036.854775807", scale: 9, want: math.MaxInt64},
		{in: "9223372037", scale: 9, code: "amount_too_large", msg: "the amount 9223372037 is too large; the largest is 9223372036.854775807"},
		{in: "1" + strings.Repeat("0", 400), scale: 2, code: "amount_too_large", msg: "the amount 1000000000000000000000000000000000000000... is too large; the largest is 92233720368547758.07"},
		{in: "0.001", scale: 2, code: "too_many_decimals", msg: "0.001 has more than 2 decimal places; amounts are never rounded"},
		{in: "0.100", scale: 2, code: "too_many_decimals"},
		{in: "0.01", scale: 1, code: "too_many_decimals", msg: "0.01 has more than 1 decimal place; amounts are never rounded"},
		{in: "5.0", scale: 0, code: "too_many_decimals", msg: "5.0 has decimal places, but amounts here are whole numbers; amounts are never rounded"},
		{in: "0", scale: 2, code: "amount_not_positive", msg: "the amount must be more than 0; got 0"},
		{in: "0.00", scale: 2, code: "amount_not_positive"},
		{in: "-5", scale: 2, code: "amount_not_positive", msg: "the amount must be more than 0; got -5"},
		{in: "-0", scale: 2, code: "amount_not_positive"},
		{in: "1e3", scale: 2, code: "amount_not_decimal", msg: "the amount 1e3 has an exponent; write it as a plain decimal such as 1000 or 0.25"},
		{in: "1e309", scale: 2, code: "amount_not_decimal"},
		{in: "1.5E-2", scale: 2, code: "amount_not_decimal"},
		{in: "-1e3", scale: 2, code: "amount_not_decimal"},
		{in: "", scale: 2, code: "amount_required", msg: `the amount is missing or null; send it as a JSON number such as {"amount": 5}`},
		{in: "null", scale: 2, code: "amount_required"},
		{in: `"5"`, scale: 2, code: "amount_not_number", msg: `the amount must be a JSON number such as 5 or 0.3, not the string "5"`},
		{in: "true", scale: 2, code: "amount_not_number", msg: "the amount must be a JSON number such as 5 or 0.3, not true"},
		{in: "false", scale: 2, code: "amount_not_number"},
		{in: `{"value":5}`, scale: 2, code: "amount_not_number", msg: "the amount must be a JSON number such as 5 or 0.3, not an object"},
		{in: "[5]", scale: 2, code: "amount_not_number", msg: "the amount must be a JSON number such as 5 or 0.3, not an array"},
		{in: "NaN", scale: 2, code: "invalid_amount", msg: "the amount NaN is not a number"},
		{in: "Infinity", scale: 2, code: "invalid_amount"},
		{in: "-Infinity", scale: 2, code: "invalid_amount"},
		{in: "+5", scale: 2, code: "invalid_amount"},
		{in: "05", scale: 2, code: "invalid_amount"},
		{in: ".5", scale: 2, code: "invalid_amount"},
		{in: "5.", scale: 2, code: "invalid_amount"},
		{in: "1e", scale: 2, code: "invalid_amount"},
		{in: " 5", scale: 2, code: "invalid_amount"},
		{in: "5 ", scale: 2, code: "invalid_amount"},
		{in: "0x10", scale: 2, code: "invalid_amount"},
		{in: "1_000", scale: 2, code: "invalid_amount"},
		{in: `"5`, scale: 2, code: "invalid_amount"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAmount([]byte(tc.in), tc.scale)
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseAmount(%s, %d) = %d, %v; want %d", tc.in, tc.scale, got, err, tc.want)
				}
				return
			}
			e := checkError(t, err, uneventful.ErrInvalid, tc.code)
			if tc.msg != "" && e.Message != tc.msg {
				t.Errorf("message = %q, want %q", e.Message, tc.msg)
			}
		})
	}
}

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		a     Amount
		scale int
		want  string
	}{
		{500, 2, "5"},
		{30, 2, "0.3"},
		{1234, 2, "12.34"},
		{1, 2, "0.01"},
		{0, 2, "0"},
		{-1, 2, "-0.01"},
		{-530, 2, "-5.3"},
		{10, 0, "10"},
		{1, 9, "0.000000001"},
		{1_000_000_000, 9, "1"},
		{math.MaxInt64, 2, "92233720368547758.07"},
		{math.MaxInt64, 0, "9223372036854775807"},
		{math.MaxInt64, 9, "9223372036.854775807"},
		{math.MinInt64, 2, "-92233720368547758.08"},
		{-math.MaxInt64, 2, "-92233720368547758.07"},
	} {
		if got := FormatAmount(tc.a, tc.scale); got != tc.want {
			t.Errorf("FormatAmount(%d, %d) = %s, want %s", tc.a, tc.scale, got, tc.want)
		}
	}
}

// checkError checks that err is an *uneventful.Error of the kind and code
// with a message, and returns it.
func checkError(t testing.TB, err, kind error, code string) *uneventful.Error {
	t.Helper()
	var e *uneventful.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %#v, want an *uneventful.Error with code %s", err, code)
	}
	if !errors.Is(err, kind) || e.Code != code || e.Message == "" {
		t.Fatalf("error = %#v (%v), want kind %v, code %s and a message", e, e, kind, code)
	}
	return e
}

// number is JSON's number grammar, for the reference parser.
var number = regexp.MustCompile(`^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?([eE][+-]?[0-9]+)?$`)

// decimal is the reference formatter: the shortest exact decimal of units
// at scale, by math/big.
func decimal(units *big.Int, scale int) string {
	s := new(big.Rat).SetFrac(units, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func FuzzParseAmount(f *testing.F) {
	maxUnits := big.NewInt(math.MaxInt64)
	f.Fuzz(func(t *testing.T, text []byte, scale uint8) {
		scale %= MaxScale + 1
		got, err := ParseAmount(text, int(scale))
		m := number.FindSubmatch(text)
		var code string
		units := new(big.Int)
		switch {
		case len(text) == 0 || string(text) == "null":
			code = "amount_required"
		case m == nil && json.Valid(text) && strings.IndexByte(`"{[tf`, text[0]) >= 0:
			code = "amount_not_number"
		case m == nil:
			code = "invalid_amount"
		case len(m[4]) > 0:
			code = "amount_not_decimal"
		case len(m[1]) > 0:
			code = "amount_not_positive"
		case len(m[3]) > int(scale):
			code = "too_many_decimals"
		default:
			digits := string(m[2]) + string(m[3]) + strings.Repeat("0", int(scale)-len(m[3]))
			units.SetString(digits, 10)
			switch {
			case units.Cmp(maxUnits) > 0:
				code = "amount_too_large"
			case units.Sign() == 0:
				code = "amount_not_positive"
			}
		}
		if code != "" {
			checkError(t, err, uneventful.ErrInvalid, code)
			return
		}
		if err != nil || big.NewInt(int64(got)).Cmp(units) != 0 {
			t.Fatalf("ParseAmount(%q, %d) = %d, %v; want %s", text, scale, got, err, units)
		}
		s := FormatAmount(got, int(scale))
		if want := decimal(units, int(scale)); s != want {
			t.Fatalf("FormatAmount(%d, %d) = %s, want %s", got, scale, s, want)
		}
		if back, err := ParseAmount([]byte(s), int(scale)); back != got || err != nil {
			t.Fatalf("ParseAmount(FormatAmount(%d)) = %d, %v", got, back, err)
		}
		if neg := FormatAmount(-got, int(scale)); neg != "-"+s {
			t.Fatalf("FormatAmount(%d, %d) = %s, want -%s", -got, scale, neg, s)
		}
	})
}
