package wallet

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/uneventful/uneventful"
)

// Amount is a sum of money in minor units: at scale 2, Amount(530) is 5.30.
// It has no JSON methods of its own because its meaning depends on the
// scale; State and the recorded changes encode it together with theirs.
type Amount int64

// DefaultScale is the scale of most currencies: two decimal places.
const DefaultScale = 2

// MaxScale is the largest scale New takes. At scale 9 an Amount still holds
// up to 9223372036.854775807.
const MaxScale = 9

var pow10 = [MaxScale + 1]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// ParseAmount parses the text of a JSON value, as it was sent, into a
// positive Amount at the given scale (0 to MaxScale; it panics otherwise).
// It takes only plain
// decimals such as 5, 0.3 and 12.34: no string, no exponent, no sign, and
// no more decimal places than the scale, because an amount is never
// rounded. Its errors are *uneventful.Error of kind ErrInvalid with the
// codes amount_required, amount_not_number, amount_not_decimal,
// amount_not_positive, too_many_decimals, amount_too_large and
// invalid_amount.
func ParseAmount(text []byte, scale int) (Amount, error) {
	a, err := parseDecimal(text, scale)
	if err == nil && a == 0 {
		return 0, invalid("amount_not_positive", "the amount must be more than 0; got %s", short(text))
	}
	return a, err
}

// parseDecimal is ParseAmount without the check for zero.
func parseDecimal(text []byte, scale int) (Amount, error) {
	n := len(text)
	if n == 0 || text[0] != '-' && (text[0] < '0' || text[0] > '9') {
		return 0, notANumber(text)
	}
	i := 0
	if text[0] == '-' {
		i++
	}
	// JSON's grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
	digits := func() int {
		start := i
		for i < n && '0' <= text[i] && text[i] <= '9' {
			i++
		}
		return i - start
	}
	malformed := func() error { return invalid("invalid_amount", "the amount %s is not a number", short(text)) }
	intStart := i
	if i < n && text[i] == '0' {
		i++
	} else if digits() == 0 {
		return 0, malformed()
	}
	fracStart, fracEnd := i, i
	if i < n && text[i] == '.' {
		i++
		fracStart = i
		if digits() == 0 {
			return 0, malformed()
		}
		fracEnd = i
	}
	exponent := i < n && (text[i] == 'e' || text[i] == 'E')
	if exponent {
		i++
		if i < n && (text[i] == '+' || text[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, malformed()
		}
	}
	switch {
	case i < n:
		return 0, malformed()
	case exponent:
		return 0, invalid("amount_not_decimal", "the amount %s has an exponent; write it as a plain decimal such as 1000 or 0.25", short(text))
	case text[0] == '-':
		return 0, invalid("amount_not_positive", "the amount must be more than 0; got %s", short(text))
	case fracEnd-fracStart > scale:
		if scale == 0 {
			return 0, invalid("too_many_decimals", "%s has decimal places, but amounts here are whole numbers; amounts are never rounded", short(text))
		}
		return 0, invalid("too_many_decimals", "%s has more than %d decimal place%s; amounts are never rounded", short(text), scale, plural(scale))
	}
	var u uint64
	for _, c := range text[intStart:fracEnd] {
		if c == '.' {
			continue
		}
		if u > (math.MaxInt64-uint64(c-'0'))/10 {
			return 0, tooLarge(text, scale)
		}
		u = u*10 + uint64(c-'0')
	}
	p := pow10[scale-(fracEnd-fracStart)]
	if u > math.MaxInt64/p {
		return 0, tooLarge(text, scale)
	}
	return Amount(u * p), nil
}

// notANumber explains why text, which does not begin like a number, is
// not an amount.
func notANumber(text []byte) error {
	if len(text) == 0 || string(text) == "null" {
		return invalid("amount_required", `the amount is missing or null; send it as a JSON number such as {"amount": 5}`)
	}
	if json.Valid(text) {
		const want = "the amount must be a JSON number such as 5 or 0.3, not "
		switch text[0] {
		case '"':
			return invalid("amount_not_number", want+"the string %s", short(text))
		case '{':
			return invalid("amount_not_number", want+"an object")
		case '[':
			return invalid("amount_not_number", want+"an array")
		case 't', 'f':
			return invalid("amount_not_number", want+"%s", text)
		}
	}
	return invalid("invalid_amount", "the amount %s is not a number", short(text))
}

func tooLarge(text []byte, scale int) error {
	return invalid("amount_too_large", "the amount %s is too large; the largest is %s", short(text), FormatAmount(math.MaxInt64, scale))
}

// FormatAmount returns the shortest exact decimal of a at the given scale
// (0 to MaxScale; it panics otherwise): 5, 0.3, 12.34, -0.01. It is the JSON
// number literal that the wallet writes for money.
func FormatAmount(a Amount, scale int) string {
	var buf [24]byte
	return string(appendAmount(buf[:0], a, scale))
}

func appendAmount(dst []byte, a Amount, scale int) []byte {
	u := uint64(a)
	if a < 0 {
		dst = append(dst, '-')
		u = -u // also right for math.MinInt64
	}
	p := pow10[scale]
	dst = strconv.AppendUint(dst, u/p, 10)
	frac := u % p
	if frac == 0 {
		return dst
	}
	dst = append(dst, '.')
	dst = append(dst, "000000000"[:scale]...)
	for i := len(dst) - 1; frac > 0; i-- {
		dst[i] = byte('0' + frac%10)
		frac /= 10
	}
	for dst[len(dst)-1] == '0' {
		dst = dst[:len(dst)-1]
	}
	return dst
}

func invalid(code, format string, args ...any) error {
	return uneventful.Errorf(uneventful.ErrInvalid, code, format, args...)
}

// short returns text for a message, cut to a readable length.
func short(text []byte) string {
	const max = 40
	if len(text) <= max {
		return string(text)
	}
	i := max
	for i > 0 && !utf8.RuneStart(text[i]) {
		i--
	}
	return string(text[:i]) + "..."
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
