package transforms

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestEngine(t *testing.T, shape Shape) *Engine {
	t.Helper()
	e, err := NewEngine(Config{
		Shape: shape,
		Lookups: map[string]Lookup{
			"gender": {Entries: map[string]any{"1": "M", "2": "V"}, Default: "O", HasDefault: true},
			"status": {Entries: map[string]any{"klaar": "Completed"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEval(t *testing.T) {
	e := newTestEngine(t, Shape{Fields: []string{"bsn", "geboortedatum", "voornaam", "tussenvoegsel", "achternaam", "geslacht", "telefoon", "Datum opname"}, StringValues: true})
	rec := map[string]any{"bsn": "11122233", "geboortedatum": "03-02-1980", "voornaam": "Jan Piet", "tussenvoegsel": "van der",
		"achternaam": "Berg", "geslacht": "2", "telefoon": "", "Datum opname": "1 maart 2024"}
	tests := []struct {
		src  string
		want any
	}{
		{`upper(trim(" x "))`, "X"},
		{`pad_left("123", 6)`, "000123"},
		{`pad_right("ab", 4, ".")`, "ab.."},
		{`regex_replace("06-1234 5678", "[^0-9]", "")`, "0612345678"},
		{`regex_find("AGB 01234567", "([0-9]{8})")`, "01234567"},
		{`digits("1.234-5")`, "12345"},
		{`collapse_spaces("  a   b ")`, "a b"},
		{`coalesce("", " ", "x")`, "x"},
		{`blank(record.telefoon)`, true},
		{`bsn_normalize(record.bsn)`, "011122233"},
		{`bsn_valid(record.bsn)`, false},
		{`bsn_valid("111222333")`, true},
		{`bsn_valid("123456782")`, true},
		{`bsn_valid("123456789")`, false},
		{`bsn_valid("000000000")`, false},
		{`bsn_valid("12345678a")`, false},
		{`agb_valid("01234567")`, true},
		{`system("bsn")`, "http://fhir.nl/fhir/NamingSystem/bsn"},
		{`fhir_date(record.geboortedatum)`, "1980-02-03"},
		{`fhir_date(parse_date("19800203", "jjjjmmdd"))`, "1980-02-03"},
		{`fhir_date(parse_date("3/2/1980", "d/m/yyyy"))`, "1980-02-03"},
		{`fhir_date(record["Datum opname"])`, "2024-03-01"},
		{`fhir_date(parse_date("12 okt. 2023", "d mmm jjjj"))`, "2023-10-12"},
		{`fhir_datetime(parse_datetime("01-07-2024 14:30", "dd-mm-jjjj uu:mm"))`, "2024-07-01T14:30:00+02:00"},
		{`fhir_instant(parse_datetime("01-01-2024 00:30"))`, "2023-12-31T23:30:00.000Z"},
		{`format_date(parse_date("2024-03-01"), "d mmmm jjjj")`, "1 maart 2024"},
		{`lookup("gender", record.geslacht)`, "V"},
		{`lookup("gender", "9")`, "O"},
		{`lookup("status", "x", "Open")`, "Open"},
		{`reference("Patient", "12")`, map[string]any{"reference": "Patient/12"}},
		{`coding("CarePlanActivityStatus", "Completed")`, map[string]any{"system": "http://ggz.koppeltaal.nl/fhir/Koppeltaal/CarePlanActivityStatus", "code": "Completed", "display": "Completed"}},
		{`human_name(record.voornaam, record.tussenvoegsel, record.achternaam)`, map[string]any{"use": "official", "given": []any{"Jan", "Piet"}, "prefix": []any{"van", "der"}, "family": []any{"Berg"}, "text": "Jan Piet van der Berg"}},
		{`gender("V")`, map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/v3/AdministrativeGender", "code": "F", "display": "Female"}}}},
		{`telecom("phone", record.telefoon)`, nil},
		{`telecom("email", "a@b.nl", "home")`, map[string]any{"system": "email", "value": "a@b.nl", "use": "home"}},
		{`identifier("bsn", bsn_normalize(record.bsn))`, map[string]any{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "011122233"}},
		{`stable_id("a", "b") == stable_id("a", "b") && stable_id("a", "b") != stable_id("ab")`, true},
		{`route + "/" + meta.file`, "r1/x.csv"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			p, err := e.Compile(tc.src, Any)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.Eval(Env{Record: rec, Route: "r1", Meta: map[string]string{"file": "x.csv"}})
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	e := newTestEngine(t, Shape{Fields: []string{"bsn", "naam"}, StringValues: true})
	tests := []struct {
		src      string
		kind     Kind
		line     int
		col      int
		contains string
	}{
		{`upper(record.bsm)`, Any, 1, 14, `record has no field "bsm"`},
		{"trim(record.naam) +\n  record.adres", Any, 2, 10, `no field "adres"`},
		{`lookup("gendr", record.bsn)`, Any, 1, 8, `no table "gendr"`},
		{`frobnicate(record.bsn)`, Any, 1, 1, `unknown name frobnicate`},
		{`record.bsn`, Bool, 1, 1, `expected bool`},
		{`bsn_valid(record.bsn) &&`, Bool, 1, 24, `unexpected token`},
		{`pad_left(record.bsn, "9")`, Any, 1, 1, `pad_left`},
		{"  ", Any, 1, 1, "empty expression"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			_, err := e.Compile(tc.src, tc.kind)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("want CompileError, got %v", err)
			}
			if !strings.Contains(ce.Message, tc.contains) {
				t.Errorf("message %q does not contain %q", ce.Message, tc.contains)
			}
			if ce.Line != tc.line || ce.Column != tc.col {
				t.Errorf("position %d:%d, want %d:%d (%s)", ce.Line, ce.Column, tc.line, tc.col, ce.Message)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	e := newTestEngine(t, Shape{})
	for _, src := range []string{`lookup("status", "nope")`, `fhir_date("31-02-2024")`, `gender("Q")`, `parse_date("2024-13-01")`, `regex_find("x", "(")`, `identifier("nope", "1")`} {
		p, err := e.Compile(src, Any)
		if err != nil {
			t.Fatalf("%s: compile: %v", src, err)
		}
		if _, err := p.Eval(Env{}); err == nil {
			t.Errorf("%s: want error", src)
		}
	}
}

func TestParseLayout(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	tests := []struct{ in, layout, want string }{
		{"03-02-1980", "dd-mm-jjjj", "1980-02-03T00:00:00+01:00"},
		{"3-2-1980", "d-m-jjjj", "1980-02-03T00:00:00+01:00"},
		{"19800203", "jjjjmmdd", "1980-02-03T00:00:00+01:00"},
		{"1 januari 2000", "d mmmm jjjj", "2000-01-01T00:00:00+01:00"},
		{"01/07/2024 09:05:07", "dd/mm/yyyy HH:mm:ss", "2024-07-01T09:05:07+02:00"},
	}
	for _, tc := range tests {
		got, err := parseLayout(tc.in, tc.layout, loc)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got.Format(time.RFC3339) != tc.want {
			t.Errorf("%s %s: got %s want %s", tc.in, tc.layout, got.Format(time.RFC3339), tc.want)
		}
	}
	for _, bad := range [][2]string{{"3-2-1980", "dd-mm-jjjj"}, {"30-02-2024", "dd-mm-jjjj"}, {"1 foo 2000", "d mmmm jjjj"}, {"1-1-2000x", "d-m-jjjj"}, {"x", "qq"}} {
		if _, err := parseLayout(bad[0], bad[1], loc); err == nil {
			t.Errorf("%s %s: want error", bad[0], bad[1])
		}
	}
}

func BenchmarkEvalMapping(b *testing.B) {
	e, _ := NewEngine(Config{Shape: Shape{Fields: []string{"voornaam", "achternaam", "geboortedatum", "bsn"}, StringValues: true}})
	p, err := e.Compile(`{"name": human_name(record.voornaam, record.achternaam), "birthDate": fhir_date(record.geboortedatum), "ok": bsn_valid(record.bsn)}`, Any)
	if err != nil {
		b.Fatal(err)
	}
	env := Env{Record: map[string]any{"voornaam": "Jan", "achternaam": "Berg", "geboortedatum": "03-02-1980", "bsn": "111222333"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Eval(env); err != nil {
			b.Fatal(err)
		}
	}
}

func TestExtension(t *testing.T) {
	e := newTestEngine(t, Shape{})
	p, err := e.Compile(`extension("CarePlan#StartDate", "valueDateTime", "2024-01-01")`, Any)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Eval(Env{})
	want := map[string]any{"url": "http://ggz.koppeltaal.nl/fhir/Koppeltaal/CarePlan#StartDate", "valueDateTime": "2024-01-01"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v %v", got, err)
	}
	p, _ = e.Compile(`extension("x", "string", 1)`, Any)
	if _, err := p.Eval(Env{}); err == nil {
		t.Fatal("want error for a bad value key")
	}
}

func TestExtValue(t *testing.T) {
	e := newTestEngine(t, Shape{})
	p, err := e.Compile(`ext_value(record.focal, "CarePlanActivityStatus#ActivityStatus").code`, Any)
	if err != nil {
		t.Fatal(err)
	}
	focal := map[string]any{"extension": []any{
		map[string]any{"url": "http://ggz.koppeltaal.nl/fhir/Koppeltaal/CarePlanActivityStatus#ActivityStatus", "valueCoding": map[string]any{"code": "Completed"}},
	}}
	got, err := p.Eval(Env{Record: map[string]any{"focal": focal}})
	if err != nil || got != "Completed" {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestJSONNumbersAndDateTimes(t *testing.T) {
	e := newTestEngine(t, Shape{})
	for src, want := range map[string]any{
		`str(record.bsn)`:                                "111222333",
		`bsn_valid(str(record.bsn))`:                     true,
		`str(record.score)`:                              "62.5",
		`fhir_date(record.born)`:                         "1980-02-03",
		`fhir_date(parse_date("1980-02-03 00:00:00"))`:   "1980-02-03",
		`fhir_datetime(parse_datetime(record.admitted))`: "2024-07-01T14:30:00+02:00",
	} {
		p, err := e.Compile(src, Any)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := p.Eval(Env{Record: map[string]any{"bsn": float64(111222333), "score": 62.5, "born": "1980-02-03 00:00:00", "admitted": "2024-07-01 14:30"}})
		if err != nil || got != want {
			t.Errorf("%s: got %v (%v), want %v", src, got, err, want)
		}
	}
}

func TestParseAutoForms(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	for in, want := range map[string]string{
		"20240701143000":       "2024-07-01T14:30:00+02:00",
		"01-07-2024 14:30":     "2024-07-01T14:30:00+02:00",
		"2024-07-01T14:30:00Z": "2024-07-01T14:30:00Z",
		"1 september 2024":     "2024-09-01T00:00:00+02:00",
		"3/2/1980":             "1980-02-03T00:00:00+01:00",
	} {
		got, err := parseAuto(in, loc, true)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("%s: got %s %v, want %s", in, got.Format(time.RFC3339), err, want)
		}
	}
	if d, err := parseAuto("1980-02-03 23:59:59", loc, false); err != nil || d.Format(time.RFC3339) != "1980-02-03T00:00:00+01:00" {
		t.Errorf("date from date-time: %v %v", d, err)
	}
}

// A date in a known layout that does not exist on the calendar is "not a valid date", not an unknown format
// (issue 14, defect 7): the integrator must look at the data, not at the layout.
func TestParseAutoInvalidDate(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	for in, want := range map[string]string{
		"31-02-1980": `date "31-02-1980" is not a valid date: February 1980 has no day 31`,
		"1980-13-01": `date "1980-13-01" is not a valid date: there is no month 13`,
		"29-02-2023": `date "29-02-2023" is not a valid date: February 2023 has no day 29`,
		"31/04/2024": `date "31/04/2024" is not a valid date: April 2024 has no day 31`,
		"32-01-2024": `date "32-01-2024" is not a valid date: January 2024 has no day 32`,
		"hello":      `date "hello": not a recognised date format (give a layout such as "dd-mm-jjjj")`,
	} {
		_, err := parseAuto(in, loc, false)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
	if _, err := parseLayout("30-02-2024", "dd-mm-jjjj", loc); err == nil || !strings.Contains(err.Error(), "is not a valid date: February 2024 has no day 30") {
		t.Errorf("explicit layout: %v", err)
	}
	if _, err := parseAuto("29-02-2024", loc, false); err != nil {
		t.Errorf("leap day: %v", err)
	}
}

// JSON numbers are numbers: string + number joins them as people write it (issue 14, defect 23: this linted
// clean and failed on every record); number + number still adds; a missing field is an error that says so.
func TestStringPlusNumber(t *testing.T) {
	e := newTestEngine(t, Shape{})
	for src, want := range map[string]any{
		`"kl-" + record.clientnr`:  "kl-1234",
		`record.clientnr + "-x"`:   "1234-x",
		`"kl-" + record.big`:       "kl-12345678901234567",
		`"score " + record.score`:  "score 7.5",
		`record.clientnr + 1`:      1235,
		`"a" + "b"`:                "ab",
		`"kl-" + str(record.none)`: "kl-",
	} {
		p, err := e.Compile(src, Any)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := p.Eval(Env{Record: map[string]any{"clientnr": 1234, "big": 12345678901234567, "score": 7.5}})
		if err != nil || got != want {
			t.Errorf("%s = %#v (%v), want %#v", src, got, err, want)
		}
	}
	p, _ := e.Compile(`"kl-" + record.none`, Any)
	if _, err := p.Eval(Env{Record: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "a field is missing") {
		t.Errorf("missing field: %v", err)
	}
}
