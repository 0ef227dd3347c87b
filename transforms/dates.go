package transforms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Month names as EPD exports write them: Dutch first, English accepted too.
var monthNames = map[string]time.Month{
	"januari": 1, "februari": 2, "maart": 3, "april": 4, "mei": 5, "juni": 6, "juli": 7, "augustus": 8,
	"september": 9, "oktober": 10, "november": 11, "december": 12,
	"jan": 1, "feb": 2, "mrt": 3, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
	"okt": 10, "oct": 10, "nov": 11, "dec": 12,
	"january": 1, "february": 2, "march": 3, "may": 5, "june": 6, "july": 7, "august": 8, "october": 10,
}

var dutchMonths = [...]string{"", "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
	"september", "oktober", "november", "december"}

var dutchMonthAbbr = [...]string{"", "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"}

// autoDateLayouts are tried in order by parse_date with one argument. Slashes and dashes are always day first.
var autoDateLayouts = []string{"jjjj-mm-dd", "dd-mm-jjjj", "d-m-jjjj", "dd/mm/jjjj", "d/m/jjjj", "dd.mm.jjjj",
	"jjjjmmdd", "d mmmm jjjj", "d mmm jjjj"}

var autoDateTimeLayouts = []string{"jjjj-mm-dd uu:mm:ss", "jjjj-mm-dd uu:mm", "dd-mm-jjjj uu:mm:ss", "dd-mm-jjjj uu:mm",
	"d-m-jjjj u:mm", "dd/mm/jjjj uu:mm:ss", "dd/mm/jjjj uu:mm", "d/m/jjjj u:mm", "jjjjmmdduummss", "jjjjmmdd uummss"}

type dateToken struct {
	kind  string // "year4", "year2", "day", "month", "monthname", "hour", "minute", "second", "lit"
	width int    // fixed digit count; 0 = 1 or 2 digits
	lit   string
}

// layoutCache keeps tokenized layouts: routes use a handful of layouts for every record.
var layoutCache sync.Map // layout → []dateToken

// tokenizeLayout reads a Dutch-style layout such as "dd-mm-jjjj uu:mm" (English yyyy/HH also accepted).
// "mm" right after an hour field means minutes.
func tokenizeLayout(layout string) ([]dateToken, error) {
	if t, ok := layoutCache.Load(layout); ok {
		return t.([]dateToken), nil
	}
	toks, err := tokenize(layout)
	if err == nil {
		layoutCache.Store(layout, toks)
	}
	return toks, err
}

func tokenize(layout string) ([]dateToken, error) {
	l := strings.ToLower(layout)
	var toks []dateToken
	afterHour := false
	for i := 0; i < len(l); {
		rest := l[i:]
		switch {
		case strings.HasPrefix(rest, "jjjj"), strings.HasPrefix(rest, "yyyy"):
			toks = append(toks, dateToken{kind: "year4", width: 4})
			i += 4
		case strings.HasPrefix(rest, "jj"), strings.HasPrefix(rest, "yy"):
			toks = append(toks, dateToken{kind: "year2", width: 2})
			i += 2
		case strings.HasPrefix(rest, "mmmm"):
			toks = append(toks, dateToken{kind: "monthname", width: 4})
			i += 4
		case strings.HasPrefix(rest, "mmm"):
			toks = append(toks, dateToken{kind: "monthname", width: 3})
			i += 3
		case strings.HasPrefix(rest, "mm"), rest[0] == 'm':
			w := 2
			if !strings.HasPrefix(rest, "mm") {
				w = 0
			}
			kind := "month"
			if afterHour {
				kind = "minute"
				afterHour = false
			}
			toks = append(toks, dateToken{kind: kind, width: w})
			i += max(w, 1)
		case strings.HasPrefix(rest, "dd"):
			toks = append(toks, dateToken{kind: "day", width: 2})
			i += 2
		case rest[0] == 'd':
			toks = append(toks, dateToken{kind: "day"})
			i++
		case strings.HasPrefix(rest, "uu"), strings.HasPrefix(rest, "hh"):
			toks = append(toks, dateToken{kind: "hour", width: 2})
			afterHour = true
			i += 2
		case rest[0] == 'u', rest[0] == 'h':
			toks = append(toks, dateToken{kind: "hour"})
			afterHour = true
			i++
		case strings.HasPrefix(rest, "ss"):
			toks = append(toks, dateToken{kind: "second", width: 2})
			i += 2
		case unicode.IsLetter(rune(rest[0])):
			return nil, fmt.Errorf("date layout %q: unknown field at %q (use dd, d, mm, m, mmm, mmmm, jjjj, jj, uu, mm, ss)", layout, rest)
		default:
			toks = append(toks, dateToken{kind: "lit", lit: string(layout[i])})
			i++
		}
	}
	return toks, nil
}

// parseLayout parses s with a Dutch-style layout into a wall-clock time in loc.
func parseLayout(s, layout string, loc *time.Location) (time.Time, error) {
	toks, err := tokenizeLayout(layout)
	if err != nil {
		return time.Time{}, err
	}
	in := strings.TrimSpace(s)
	year, month, day, hour, minute, sec := -1, -1, -1, 0, 0, 0
	pos := 0
	readDigits := func(width int) (int, bool) {
		n := 0
		for pos+n < len(in) && in[pos+n] >= '0' && in[pos+n] <= '9' && (width == 0 && n < 2 || n < width) {
			n++
		}
		if n == 0 || (width > 0 && n != width) {
			return 0, false
		}
		v, _ := strconv.Atoi(in[pos : pos+n])
		pos += n
		return v, true
	}
	for _, t := range toks {
		var ok bool
		switch t.kind {
		case "lit":
			if t.lit == " " {
				// Any run of spaces matches one space in the layout.
				n := 0
				for pos+n < len(in) && in[pos+n] == ' ' {
					n++
				}
				ok = n > 0
				pos += n
			} else {
				ok = pos < len(in) && in[pos:pos+1] == t.lit
				pos++
			}
		case "year4":
			year, ok = readDigits(4)
		case "year2":
			var yy int
			yy, ok = readDigits(2)
			// Two-digit years: not after this year means this century.
			century := time.Now().Year() / 100 * 100
			if century+yy > time.Now().Year() {
				year = century - 100 + yy
			} else {
				year = century + yy
			}
		case "month":
			month, ok = readDigits(t.width)
		case "monthname":
			start := pos
			for pos < len(in) && unicode.IsLetter(rune(in[pos])) {
				pos++
			}
			word := strings.TrimSuffix(strings.ToLower(in[start:pos]), ".")
			if pos < len(in) && in[pos] == '.' {
				pos++
			}
			var m time.Month
			m, ok = monthNames[word]
			month = int(m)
		case "day":
			day, ok = readDigits(t.width)
		case "hour":
			hour, ok = readDigits(t.width)
		case "minute":
			minute, ok = readDigits(t.width)
		case "second":
			sec, ok = readDigits(t.width)
		}
		if !ok {
			return time.Time{}, fmt.Errorf("date %q does not match layout %q", s, layout)
		}
	}
	if pos != len(in) {
		return time.Time{}, fmt.Errorf("date %q does not match layout %q: unexpected %q at the end", s, layout, in[pos:])
	}
	if why := calendarProblem(year, month, day, hour, minute, sec); why != "" {
		return time.Time{}, &invalidDateError{in: s, why: why}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc), nil
}

// invalidDateError is a date written in a known layout that does not exist on the calendar (31-02-1980):
// the data is wrong, not the layout, so parse_date says so instead of "not a recognised date format".
type invalidDateError struct{ in, why string }

func (e *invalidDateError) Error() string {
	return fmt.Sprintf("date %q is not a valid date: %s", e.in, e.why)
}

// calendarProblem says what is wrong with a parsed date and time, or "" when it exists.
func calendarProblem(year, month, day, hour, minute, sec int) string {
	switch {
	case year < 0:
		return "it has no year"
	case month < 1 || month > 12:
		return fmt.Sprintf("there is no month %d", month)
	case day < 1:
		return "there is no day 0"
	case day > daysIn(year, time.Month(month)):
		return fmt.Sprintf("%s %d has no day %d", time.Month(month), year, day)
	case hour > 23:
		return fmt.Sprintf("there is no hour %d", hour)
	case minute > 59:
		return fmt.Sprintf("there is no minute %d", minute)
	case sec > 59:
		return fmt.Sprintf("there is no second %d", sec)
	}
	return ""
}

func daysIn(year int, m time.Month) int { return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day() }

// formatLayout writes t (in loc) with a Dutch-style layout.
func formatLayout(t time.Time, layout string, loc *time.Location) (string, error) {
	toks, err := tokenizeLayout(layout)
	if err != nil {
		return "", err
	}
	t = t.In(loc)
	var b strings.Builder
	num := func(v, width int) {
		if width == 0 {
			b.WriteString(strconv.Itoa(v))
			return
		}
		fmt.Fprintf(&b, "%0*d", width, v)
	}
	for _, tok := range toks {
		switch tok.kind {
		case "lit":
			b.WriteString(tok.lit)
		case "year4":
			num(t.Year(), 4)
		case "year2":
			num(t.Year()%100, 2)
		case "month":
			num(int(t.Month()), tok.width)
		case "monthname":
			if tok.width == 4 {
				b.WriteString(dutchMonths[t.Month()])
			} else {
				b.WriteString(dutchMonthAbbr[t.Month()])
			}
		case "day":
			num(t.Day(), tok.width)
		case "hour":
			num(t.Hour(), tok.width)
		case "minute":
			num(t.Minute(), tok.width)
		case "second":
			num(t.Second(), tok.width)
		}
	}
	return b.String(), nil
}

// parseAuto parses a date or date-time written the ways Dutch exports write them; RFC 3339 is accepted as is.
func parseAuto(s string, loc *time.Location, withTime bool) (time.Time, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return time.Time{}, fmt.Errorf("empty date")
	}
	hasTime := strings.Contains(in, ":")
	if hasTime && strings.Contains(in, "T") {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
			if t, err := time.ParseInLocation(layout, in, loc); err == nil {
				return t, nil
			}
		}
	}
	// Try the likelier family first: with a colon date-times, else dates (compact date-times such as
	// jjjjmmdduummss have no colon and come second).
	type family struct {
		layouts  []string
		dateTime bool
	}
	families := []family{{autoDateLayouts, false}, {autoDateTimeLayouts, true}}
	if hasTime {
		families[0], families[1] = families[1], families[0]
	}
	var invalid error // the first layout the text matched but the calendar does not have
	for _, f := range families {
		isDateTime := f.dateTime
		for _, l := range f.layouts {
			t, err := parseLayout(in, l, loc)
			var ide *invalidDateError
			if errors.As(err, &ide) && invalid == nil {
				invalid = err
			}
			if err != nil {
				continue
			}
			if isDateTime && !withTime {
				// A date-time where a date is wanted (a database export's "1980-02-03 00:00:00"): its local date.
				return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc), nil
			}
			return t, nil
		}
	}
	if invalid != nil {
		return time.Time{}, invalid
	}
	return time.Time{}, fmt.Errorf("date %q: not a recognised date format (give a layout such as \"dd-mm-jjjj\")", s)
}
