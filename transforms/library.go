package transforms

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/google/uuid"
	"github.com/koppelpoort/koppelpoort/hl7v2"
)

// FunctionDoc describes one library function for `koppelpoort lint`, docs and editor help.
type FunctionDoc struct {
	Name, Signature, Doc string
}

// Functions lists the function library (besides expr's builtins such as trim, upper, lower, split, replace).
var Functions = []FunctionDoc{
	{"pad_left", "pad_left(s, width[, fill])", "pad s on the left to width runes (default fill \"0\")"},
	{"pad_right", "pad_right(s, width[, fill])", "pad s on the right to width runes (default fill \" \")"},
	{"regex_replace", "regex_replace(s, pattern, replacement)", "replace every match of an RE2 pattern ($1 for groups)"},
	{"regex_find", "regex_find(s, pattern)", "first match of pattern (or its first group), \"\" when none"},
	{"digits", "digits(s)", "only the digits of s"},
	{"collapse_spaces", "collapse_spaces(s)", "trim and collapse runs of white space into one space"},
	{"blank", "blank(x)", "true for nil, \"\" and white space"},
	{"coalesce", "coalesce(a, b, ...)", "first argument that is not blank, nil when none"},
	{"parse_date", "parse_date(s[, layout])", "date at local midnight; layouts like \"dd-mm-jjjj\", \"jjjjmmdd\", \"d mmmm jjjj\"; without layout common Dutch forms are tried"},
	{"parse_datetime", "parse_datetime(s[, layout])", "wall-clock time in Europe/Amsterdam (or the offset in s); layouts like \"dd-mm-jjjj uu:mm\""},
	{"format_date", "format_date(t, layout)", "format a time in Europe/Amsterdam with a Dutch layout (mmmm gives Dutch month names)"},
	{"fhir_date", "fhir_date(t or s)", "FHIR date YYYY-MM-DD"},
	{"fhir_datetime", "fhir_datetime(t or s)", "FHIR dateTime with the Amsterdam offset"},
	{"fhir_instant", "fhir_instant(t or s)", "FHIR instant in UTC (…Z)"},
	{"to_utc", "to_utc(t)", "the same instant in UTC"},
	{"to_local", "to_local(t)", "the same instant in Europe/Amsterdam"},
	{"bsn_valid", "bsn_valid(s)", "eleven-proof check of a BSN (spaces, dots and a lost leading zero tolerated)"},
	{"bsn_normalize", "bsn_normalize(s)", "BSN as 9 digits (leading zeros restored)"},
	{"agb_valid", "agb_valid(s)", "8-digit AGB code"},
	{"system", "system(name)", "naming-system URI for bsn, agb, uzi, big, ura, kvk, ..."},
	{"identifier", "identifier(system, value[, use])", "FHIR Identifier; system a short name or URI"},
	{"lookup", "lookup(table, key[, default])", "value from a table in the route's lookups; error when missing and no default"},
	{"reference", "reference(type, id) / reference(url)", "FHIR ResourceReference"},
	{"coding", "coding(system, code[, display])", "FHIR Coding; a bare name is a Koppeltaal code system"},
	{"codeable_concept", "codeable_concept(system, code[, display])", "FHIR CodeableConcept with one coding"},
	{"human_name", "human_name(given, family) / human_name(given, prefix, family)", "official HumanName from Dutch name parts"},
	{"gender", "gender(code)", "DSTU1 gender CodeableConcept from M/V/O/X"},
	{"telecom", "telecom(system, value[, use])", "FHIR Contact (nil when value is empty)"},
	{"extension", "extension(url, valueKey, value)", "FHIR extension; a url without :// is a Koppeltaal extension such as \"CarePlan#StartDate\""},
	{"ext_value", "ext_value(element, url)", "value of the first extension with url (Koppeltaal short form allowed), nil when absent"},
	{"uuid", "uuid()", "a random UUID"},
	{"stable_id", "stable_id(parts...)", "a deterministic id (hex SHA-256 prefix) from the parts: the same record gives the same id"},
	{"str", "str(x)", "x as a string (nil → \"\")"},
	{"concat", "concat(a, b)", "a and b joined as text; what + does when one side is a string and the other a number (\"kl-\" + record.clientnr), an error when one is nil"},
	{"hl7", "hl7(msg, path)", "one value of the HL7 v2 message of an mllp input by path, 1-based: \"PID-3.1\", \"PID-3(2).1\" (second repetition), \"PID-5.1.2\" (subcomponent), \"OBX(2)-5\"; \"\" when absent"},
}

func str(v any) string { return Text(v) }

// Text writes a value as text the way a person expects: nil is "", whole floats (JSON numbers) have no
// exponent or decimals (111222333, not 1.11222333e+08).
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	}
	return fmt.Sprint(v)
}

func strArgs(params []any) []string {
	out := make([]string, len(params))
	for i, p := range params {
		out[i] = str(p)
	}
	return out
}

// asTime accepts a time or a string in a recognised format.
func (e *Engine) asTime(v any, withTime bool) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		return parseAuto(x, e.cfg.Location, withTime)
	case nil:
		return time.Time{}, fmt.Errorf("no date (nil)")
	}
	return time.Time{}, fmt.Errorf("want a date, got %T", v)
}

func (e *Engine) library() []expr.Option {
	loc := e.cfg.Location
	fn := func(name string, f func(params ...any) (any, error), types ...any) expr.Option {
		wrapped := func(params ...any) (any, error) {
			out, err := f(params...)
			if err != nil && !strings.HasPrefix(err.Error(), name+":") {
				err = fmt.Errorf("%s: %w", name, err)
			}
			return out, err
		}
		return expr.Function(name, wrapped, types...)
	}
	return []expr.Option{
		fn("pad_left", func(p ...any) (any, error) {
			fill := "0"
			if len(p) == 3 {
				fill = str(p[2])
			}
			return pad(str(p[0]), p[1].(int), fill, true)
		}, new(func(string, int) string), new(func(string, int, string) string)),
		fn("pad_right", func(p ...any) (any, error) {
			fill := " "
			if len(p) == 3 {
				fill = str(p[2])
			}
			return pad(str(p[0]), p[1].(int), fill, false)
		}, new(func(string, int) string), new(func(string, int, string) string)),
		fn("regex_replace", func(p ...any) (any, error) {
			re, err := compileRegex(str(p[1]))
			if err != nil {
				return nil, err
			}
			return re.ReplaceAllString(str(p[0]), str(p[2])), nil
		}, new(func(string, string, string) string)),
		fn("regex_find", func(p ...any) (any, error) {
			re, err := compileRegex(str(p[1]))
			if err != nil {
				return nil, err
			}
			m := re.FindStringSubmatch(str(p[0]))
			switch {
			case m == nil:
				return "", nil
			case len(m) > 1:
				return m[1], nil
			}
			return m[0], nil
		}, new(func(string, string) string)),
		fn("digits", func(p ...any) (any, error) { return onlyDigits(str(p[0])), nil }, new(func(string) string)),
		fn("collapse_spaces", func(p ...any) (any, error) { return strings.Join(strings.Fields(str(p[0])), " "), nil }, new(func(string) string)),
		fn("blank", func(p ...any) (any, error) { return isBlank(p[0]), nil }, new(func(any) bool)),
		fn("coalesce", func(p ...any) (any, error) {
			for _, v := range p {
				if !isBlank(v) {
					return v, nil
				}
			}
			return nil, nil
		}),
		fn("str", func(p ...any) (any, error) { return str(p[0]), nil }, new(func(any) string)),
		fn("parse_date", func(p ...any) (any, error) {
			if len(p) == 2 {
				return parseLayout(str(p[0]), str(p[1]), loc)
			}
			return parseAuto(str(p[0]), loc, false)
		}, new(func(string) time.Time), new(func(string, string) time.Time)),
		fn("parse_datetime", func(p ...any) (any, error) {
			if len(p) == 2 {
				return parseLayout(str(p[0]), str(p[1]), loc)
			}
			return parseAuto(str(p[0]), loc, true)
		}, new(func(string) time.Time), new(func(string, string) time.Time)),
		fn("format_date", func(p ...any) (any, error) {
			t, err := e.asTime(p[0], true)
			if err != nil {
				return nil, err
			}
			return formatLayout(t, str(p[1]), loc)
		}, new(func(any, string) string)),
		fn("fhir_date", func(p ...any) (any, error) {
			// A date-time ("1980-02-03 00:00:00" from a database export) gives its local date.
			t, err := e.asTime(p[0], true)
			if err != nil {
				return nil, err
			}
			return t.In(loc).Format("2006-01-02"), nil
		}, new(func(any) string)),
		fn("fhir_datetime", func(p ...any) (any, error) {
			t, err := e.asTime(p[0], true)
			if err != nil {
				return nil, err
			}
			return t.In(loc).Format(time.RFC3339), nil
		}, new(func(any) string)),
		fn("fhir_instant", func(p ...any) (any, error) {
			t, err := e.asTime(p[0], true)
			if err != nil {
				return nil, err
			}
			return t.UTC().Format("2006-01-02T15:04:05.000Z"), nil
		}, new(func(any) string)),
		fn("to_utc", func(p ...any) (any, error) { return p[0].(time.Time).UTC(), nil }, new(func(time.Time) time.Time)),
		fn("to_local", func(p ...any) (any, error) { return p[0].(time.Time).In(loc), nil }, new(func(time.Time) time.Time)),
		fn("bsn_valid", func(p ...any) (any, error) { return BSNValid(str(p[0])), nil }, new(func(string) bool)),
		fn("bsn_normalize", func(p ...any) (any, error) { return NormalizeBSN(str(p[0])), nil }, new(func(string) string)),
		fn("agb_valid", func(p ...any) (any, error) { return AGBValid(str(p[0])), nil }, new(func(string) bool)),
		fn("system", func(p ...any) (any, error) { return SystemURI(str(p[0])) }, new(func(string) string)),
		fn("identifier", func(p ...any) (any, error) {
			s := strArgs(p)
			return Identifier(s[0], s[1], s[2:]...)
		}, new(func(string, string) map[string]any), new(func(string, string, string) map[string]any)),
		fn("lookup", func(p ...any) (any, error) {
			name, key := str(p[0]), str(p[1])
			t, ok := e.cfg.Lookups[name]
			if !ok {
				return nil, fmt.Errorf("no table %q", name)
			}
			if v, ok := t.Entries[key]; ok {
				return v, nil
			}
			if len(p) == 3 {
				return p[2], nil
			}
			if t.HasDefault {
				return t.Default, nil
			}
			return nil, fmt.Errorf("table %q has no entry %q and no default", name, key)
		}, new(func(string, any) any), new(func(string, any, any) any)),
		fn("reference", func(p ...any) (any, error) { return Reference(strArgs(p)...) },
			new(func(string) map[string]any), new(func(string, string) map[string]any)),
		fn("coding", func(p ...any) (any, error) {
			s := strArgs(p)
			return Coding(s[0], s[1], s[2:]...), nil
		}, new(func(string, string) map[string]any), new(func(string, string, string) map[string]any)),
		fn("codeable_concept", func(p ...any) (any, error) {
			s := strArgs(p)
			return CodeableConcept(s[0], s[1], s[2:]...), nil
		}, new(func(string, string) map[string]any), new(func(string, string, string) map[string]any)),
		fn("human_name", func(p ...any) (any, error) { return HumanName(strArgs(p)...) },
			new(func(string, string) map[string]any), new(func(string, string, string) map[string]any)),
		fn("gender", func(p ...any) (any, error) { return Gender(str(p[0])) }, new(func(string) map[string]any)),
		fn("telecom", func(p ...any) (any, error) {
			s := strArgs(p)
			return Telecom(s[0], s[1], s[2:]...)
		}, new(func(string, string) any), new(func(string, string, string) any)),
		fn("extension", func(p ...any) (any, error) { return Extension(str(p[0]), str(p[1]), p[2]) },
			new(func(string, string, any) map[string]any)),
		fn("ext_value", func(p ...any) (any, error) { return ExtensionValue(p[0], str(p[1])), nil }, new(func(any, string) any)),
		fn("uuid", func(p ...any) (any, error) { return uuid.NewString(), nil }, new(func() string)),
		fn("stable_id", func(p ...any) (any, error) { return StableID(strArgs(p)...), nil }),
		fn("hl7", func(p ...any) (any, error) { return hl7v2.ViewPath(p[0], str(p[1])) }, new(func(any, string) string)),
		fn("concat", concat, new(func(string, any) string), new(func(any, string) string)),
		// string + anything: JSON numbers are numbers, and "kl-" + record.clientnr should read as people
		// write it (a type error on every record otherwise). Numbers added to numbers stay numbers.
		expr.Operator("+", "concat"),
	}
}

func concat(p ...any) (any, error) {
	for _, x := range p {
		if x == nil {
			return nil, fmt.Errorf("cannot join %q and nil: a field is missing (write record.x ?? \"\" for an optional one)", str(p[0])+str(p[1]))
		}
	}
	return str(p[0]) + str(p[1]), nil
}

// StableID is a deterministic id from parts: 32 hex characters of SHA-256 over the parts joined by NUL.
func StableID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}
