package hl7v2

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"golang.org/x/text/encoding/charmap"
)

func adt(t *testing.T) *Message {
	t.Helper()
	raw, err := os.ReadFile("testdata/adt_a04.hl7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseADT(t *testing.T) {
	m := adt(t)
	if typ, trig, st := m.Type(); typ != "ADT" || trig != "A04" || st != "ADT_A01" {
		t.Errorf("type %s %s %s", typ, trig, st)
	}
	if m.ControlID() != "MSG00001" || m.Version() != "2.5" {
		t.Errorf("control id %q version %q", m.ControlID(), m.Version())
	}
	for path, want := range map[string]string{
		"MSH-1":       "|",
		"MSH-2":       `^~\&`,
		"MSH-3":       "EPD",
		"PID-3.1":     "123456782",
		"PID-3.4":     "NLMINBIZA",
		"PID-3(2).1":  "1001",
		"PID-3(2).5":  "PI",
		"PID-5.1":     "van der Berg&van der&Berg",
		"PID-5.1.2":   "van der",
		"PID-5.1.3":   "Berg",
		"PID-5.2":     "Jan",
		"PID-7":       "19800203",
		"PID-13(2).4": "jan@example.nl",
		"PID-99.1":    "",
		"NK1-1":       "",
		"PID(2)-3":    "",
	} {
		got, err := m.Path(path)
		if err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", path, got, err, want)
		}
	}
	for _, bad := range []string{"PID", "PID-x", "PI-3", "PID-3.1.2.3", "PID(0)-3", "PID-0"} {
		if _, err := m.Path(bad); err == nil {
			t.Errorf("path %q: want an error", bad)
		}
	}
}

// The expression view: msg.PID[3][1] is HL7's PID-3.1; missing fields are nil with ?.[ ].
func TestViewInExpressions(t *testing.T) {
	env := map[string]any{"msg": adt(t).View()}
	for src, want := range map[string]any{
		`msg.PID[3][1]`:     "123456782",
		`msg.PID[3][0]`:     "123456782^^^NLMINBIZA^NNNLD",
		`msg.PID[0]`:        "PID",
		`msg.MSH[9][2]`:     "A04",
		`msg.PID[5][2]`:     "Jan",
		`msg.PID[30]?.[1]`:  nil,
		`msg.NK1?.[1]`:      nil,
		`len(msg.segments)`: 4,
		`filter(msg.PID[3].repeats, #[5] == "PI")[0][1]`: "1001",
	} {
		p, err := expr.Compile(src, expr.Env(map[string]any{"msg": map[string]any{}}))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := expr.Run(p, env)
		if err != nil || got != want {
			t.Errorf("%s = %v (%v), want %v", src, got, err, want)
		}
	}
	if v, err := ViewPath(env["msg"], "PID-5.1.3"); err != nil || v != "Berg" {
		t.Errorf("ViewPath: %q %v", v, err)
	}
	if _, err := ViewPath(map[string]any{}, "PID-3"); err == nil {
		t.Error("ViewPath on something else: want an error")
	}
}

func TestCharsetAndEscapes(t *testing.T) {
	latin1, _ := charmap.ISO8859_1.NewEncoder().String("MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5|||||NL|8859/1\rPID|1||x||Ünal\\S\\Çelik^Zoë\\T\\Ana\\E\\\\X41\\|\r")
	m, err := Parse([]byte(latin1))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Path("PID-5.1"); got != "Ünal^Çelik" {
		t.Errorf("PID-5.1 = %q", got)
	}
	if got, _ := m.Path("PID-5.2"); got != `Zoë&Ana\A` {
		t.Errorf("PID-5.2 = %q", got)
	}
	// LF and CRLF segment ends, leading blank lines.
	m, err = Parse([]byte("\nMSH|^~\\&|A|B|C|D|x||ADT^A28|2|P|2.4\r\nPID|1||y\n"))
	if err != nil || len(m.Segments) != 2 || m.Value("PID", 3, 1, 1) != "y" {
		t.Errorf("line ends: %v %+v", err, m)
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not hl7":     "hello",
		"empty":       "",
		"pid first":   "PID|1||x\rMSH|^~\\&|A",
		"bad segment": "MSH|^~\\&|A|B|C|D|x||ADT^A04|1|P|2.5\rpid|1\r",
		"two MSH":     "MSH|^~\\&|A|B|C|D|x||ADT^A04|1|P|2.5\rMSH|^~\\&|A\r",
		"delimiters":  "MSH|^^\\&|A|B\r",
		"charset":     "MSH|^~\\&|A|B|C|D|x||ADT^A04|1|P|2.5|||||NL|EBCDIC\r",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	m := adt(t)
	again, err := Parse(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Encode(), m.Encode()) {
		t.Errorf("round trip differs:\n%q\n%q", m.Encode(), again.Encode())
	}
	if got, _ := again.Path("PID-5.1.2"); got != "van der" {
		t.Errorf("PID-5.1.2 after round trip: %q", got)
	}
}

func TestACK(t *testing.T) {
	req := adt(t)
	now := time.Date(2026, 12, 2, 10, 15, 1, 0, time.UTC)
	ack := ACK(req, AE, "invalid BSN | rejected", "ACK0001", now)
	raw := string(ack.Encode())
	for _, want := range []string{
		"MSH|^~\\&|KOPPELPOORT|GGZ-NOORD|EPD|GGZ-NOORD|20261202101501+0000||ACK^A04^ACK|ACK0001|P|2.5\r",
		"MSA|AE|MSG00001|invalid BSN \\F\\ rejected\r",
		"ERR|||207^^HL70357|E||||invalid BSN \\F\\ rejected\r",
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("ACK lacks %q:\n%q", want, raw)
		}
	}
	back, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if code, text := back.AckCode(); code != AE || text != "invalid BSN | rejected" {
		t.Errorf("AckCode = %s %q", code, text)
	}
	ok := ACK(req, AA, "", "ACK0002", now)
	if _, has := ok.Segment("ERR"); has {
		t.Error("an AA has no ERR segment")
	}
}
