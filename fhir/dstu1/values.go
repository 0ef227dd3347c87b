package dstu1

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Value checks: a primitive's value must be valid for its DSTU1 type (the XSD type of its value attribute,
// recorded per type by internal/gen), in both wire forms. Where the schema is stricter than what deployed
// Koppeltaal clients send, the clients win (CLIENTS.md) and the rule below says so:
//
//   - dateTime: the DSTU1 pattern (YYYY[-MM[-DD[Thh[:mm[:ss[.s]]]]]] and an optional Z or ±hh:mm), which
//     allows a time without seconds; date: YYYY[-MM[-DD]]; instant: a full date and a time of at least
//     hh:mm (clients leave the seconds out), zone optional as in xs:dateTime. Fields must be in range (no
//     month 13, no 30 February).
//   - integer: a 32-bit whole number (xs:int); decimal: a number with at most 28 significant digits, as the
//     old server's .NET decimal held (exponents allowed: JSON writers produce them).
//   - uri: parses as a URI reference ("not used" does: clients write it in source.endpoint); id: no white
//     space (Koppeltaal's own identifiers, urn:uuid:…, break the schema's [a-z0-9.-]{1,36}); code: no white
//     space at either end, none but single spaces inside; oid and uuid: their patterns (uuid in either case);
//     base64Binary: standard base64, padding and white space optional.
//   - An empty value is accepted for string, uri, id and code (clients send <endpoint value=""/>), refused
//     for the others, which have no empty form.

// maxDecimalDigits is the precision of the .NET decimal the original Koppeltaal server parsed into.
const maxDecimalDigits = 28

// checkValue reports whether v is a valid value of primitive type p; the error says what was expected.
func checkValue(p primitive, v string) error {
	if v == "" {
		switch p {
		case primString, primUri, primId, primCode, primNone:
			return nil
		}
		return fmt.Errorf("expected %s, found an empty value", primDescription[p])
	}
	ok := true
	switch p {
	case primBoolean:
		ok = v == "true" || v == "false"
	case primInteger:
		ok = validInteger(v)
	case primDecimal:
		ok = validDecimal(v)
	case primDateTime:
		ok = validDateTime(v, 1, 6)
	case primDate:
		ok = validDateTime(v, 1, 3)
	case primInstant:
		ok = validDateTime(v, 5, 6)
	case primUri:
		ok = validURI(v)
	case primId:
		ok = !strings.ContainsAny(v, " \t\r\n")
	case primCode:
		ok = strings.TrimSpace(v) == v && !strings.ContainsAny(v, "\t\r\n") && !strings.Contains(v, "  ")
	case primOid:
		ok = validOID(v)
	case primUuid:
		ok = validUUID(v)
	case primBase64Binary:
		ok = validBase64(v)
	}
	if !ok {
		return fmt.Errorf("expected %s, found %q", primDescription[p], truncate(v, 60))
	}
	return nil
}

// primDescription says what a valid value of each type looks like, for errors.
var primDescription = [...]string{
	primNone:         "a value",
	primString:       "a string",
	primBoolean:      "a boolean (true or false)",
	primInteger:      "an integer (a whole number from -2147483648 to 2147483647)",
	primDecimal:      fmt.Sprintf("a decimal number (at most %d significant digits)", maxDecimalDigits),
	primDateTime:     "a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.s]], then Z or ±hh:mm or nothing)",
	primDate:         "a date (YYYY, YYYY-MM or YYYY-MM-DD)",
	primInstant:      "an instant (YYYY-MM-DDThh:mm:ss[.s], then Z or ±hh:mm)",
	primUri:          "a URI",
	primId:           "an id (no white space)",
	primCode:         "a code (no leading, trailing or repeated white space)",
	primOid:          "an OID (urn:oid:1.2.3)",
	primUuid:         "a UUID (urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
	primBase64Binary: "base64 data",
}

// checkAtomDate checks an Atom date (feed and entry updated/published, a deleted entry's when): an
// instant, as lenient as for the FHIR instant.
func checkAtomDate(v string) error {
	if !validDateTime(v, 5, 6) {
		return fmt.Errorf("expected an Atom date (YYYY-MM-DDThh:mm:ss, then Z or ±hh:mm), found %q", truncate(v, 60))
	}
	return nil
}

func validInteger(v string) bool {
	_, err := strconv.ParseInt(v, 10, 32) // an optional sign and digits, in the range of xs:int
	return err == nil
}

// validDecimal accepts [+-]digits[.digits][e[+-]digits] (xs:decimal, and the JSON number form) with at
// most maxDecimalDigits significant digits and a value that fits them (no 1e400, no 1e-400).
func validDecimal(v string) bool {
	s := v
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	mant, exp, hasExp := strings.Cut(s, "e")
	if !hasExp {
		mant, exp, hasExp = strings.Cut(s, "E")
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if (intPart == "" && frac == "") || !allDigits(intPart) || !allDigits(frac) || strings.Contains(frac, ".") {
		return false
	}
	e := 0
	if hasExp {
		n, err := strconv.Atoi(exp)
		if err != nil || n < -maxDecimalDigits*2 || n > maxDecimalDigits*2 {
			return false
		}
		e = n
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return true // zero
	}
	// The position of the first significant digit relative to the decimal point.
	intDigits := len(strings.TrimLeft(intPart, "0")) + e
	fracDigits := len(frac) - e
	return len(digits) <= maxDecimalDigits && intDigits <= maxDecimalDigits && fracDigits <= maxDecimalDigits
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validDateTime checks v against YYYY[-MM[-DD[Thh[:mm[:ss[.s+]]]]]][Z|±hh:mm] with between min and max of
// the parts year, month, day, hour, minute, second (fractions only after seconds), and every part in range.
// The zone is optional, also after a date (DSTU1's patterns allow both).
func validDateTime(v string, min, max int) bool {
	var f [6]int
	n, i := 0, 0
	num := func(width int) (int, bool) {
		if i+width > len(v) || !allDigits(v[i:i+width]) {
			return 0, false
		}
		x, _ := strconv.Atoi(v[i : i+width])
		i += width
		return x, true
	}
	seps := [6]byte{0, '-', '-', 'T', ':', ':'}
	widths := [6]int{4, 2, 2, 2, 2, 2}
	for n < max {
		if n > 0 {
			if i >= len(v) || v[i] != seps[n] {
				break
			}
			i++
		}
		x, ok := num(widths[n])
		if !ok {
			return false
		}
		f[n] = x
		n++
	}
	if n < min {
		return false
	}
	if n == 6 && i < len(v) && v[i] == '.' {
		i++
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	switch rest := v[i:]; {
	case rest == "" || rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' && allDigits(rest[1:3]) && allDigits(rest[4:]):
		if h, _ := strconv.Atoi(rest[1:3]); h > 14 {
			return false
		}
		if m, _ := strconv.Atoi(rest[4:]); m > 59 {
			return false
		}
	default:
		return false
	}
	year, month, day, hour, minute, second := f[0], f[1], f[2], f[3], f[4], f[5]
	switch {
	case n >= 2 && (month < 1 || month > 12):
		return false
	case n >= 3 && (day < 1 || day > daysIn(year, month)):
		return false
	case n >= 4 && hour > 24, n >= 5 && minute > 59, n >= 6 && second > 60:
		return false
	case hour == 24 && (minute != 0 || second != 0): // 24:00:00 is the end of the day (xs:dateTime)
		return false
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// validURI accepts what url.Parse does for the URIs that occur in messages, without allocating (the parser
// checks every system and reference): no control characters, %-escapes of two hex digits, and no space in
// the authority of a "scheme://authority" URI. A relative reference or "not used" is a URI.
func validURI(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c == '%':
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return false
			}
		}
	}
	if i := strings.Index(v, "://"); i > 0 {
		auth := v[i+3:]
		if j := strings.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		return !strings.ContainsRune(auth, ' ')
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func validOID(v string) bool {
	rest, ok := strings.CutPrefix(v, "urn:oid:")
	if !ok {
		return false
	}
	for _, arc := range strings.Split(rest, ".") {
		if arc == "" || !allDigits(arc) || (len(arc) > 1 && arc[0] == '0') {
			return false
		}
	}
	return true
}

func validUUID(v string) bool {
	rest, ok := strings.CutPrefix(v, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func validBase64(v string) bool {
	s := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, v)
	_, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	return err == nil
}
