// Package hl7v2 reads and writes HL7 version 2 messages (the pipe-and-hat syntax EPDs and lab systems send
// over MLLP): segments, fields, repetitions, components and subcomponents with the delimiters the message
// declares in MSH-1/MSH-2, escape sequences, the character set of MSH-18, a view for route expressions
// (msg.PID[3][1]) and acknowledgements (ACK with MSA).
//
// No Go HL7 library is served by the module proxy this project can use (github.com/kardianos/hl7,
// github.com/lenaten/hl7 and github.com/TylerHaigh/go-simple-hl7 are refused), so this is a small parser of
// the syntax only: it does not validate against message structure definitions, which routes do instead.
package hl7v2

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Delimiters are a message's separators, declared in MSH-1 and MSH-2.
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
}

// DefaultDelimiters are the ones nearly every sender uses: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// Message is a parsed HL7 v2 message. Values are stored unescaped.
type Message struct {
	Delims   Delimiters
	Segments []Segment
}

// Segment is one segment: its name and its fields, Fields[i] being field i (Fields[0] is unused, so the
// numbering is HL7's). For MSH, field 1 is the field separator and field 2 the encoding characters.
type Segment struct {
	Name   string
	Fields []Field
}

// Field is a field's repetitions (most fields have one).
type Field []Repetition

// Repetition is one repetition's components.
type Repetition []Component

// Component is one component's subcomponents.
type Component []string

// ErrNotHL7 is returned for input that does not start with an MSH segment.
var ErrNotHL7 = errors.New("not an HL7 v2 message: it must start with an MSH segment")

// Parse reads one message. Segments may end in CR (the standard), LF or CRLF. The text is decoded from
// the character set MSH-18 names (ISO 8859-1/-15; UTF-8 otherwise, with ISO 8859-1 as the fallback for
// bytes that are not UTF-8, which older systems send without saying so).
func Parse(raw []byte) (*Message, error) {
	raw = bytes.TrimLeft(raw, "\r\n\t ")
	if len(raw) < 8 || string(raw[:3]) != "MSH" {
		return nil, ErrNotHL7
	}
	d := Delimiters{Field: raw[3], Component: raw[4], Repetition: raw[5], Escape: raw[6], Subcomponent: raw[7]}
	if d.Subcomponent == d.Field {
		// Only four encoding characters (no subcomponent separator declared).
		d.Subcomponent = 0
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	text, err := decodeCharset(raw, d)
	if err != nil {
		return nil, err
	}
	m := &Message{Delims: d}
	for n, line := range splitSegments(text) {
		seg, err := parseSegment(line, d, n == 0)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", n+1, err)
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

func (d Delimiters) check() error {
	seen := map[byte]bool{}
	for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent} {
		if c == 0 {
			continue
		}
		if c == '\r' || c == '\n' || c >= 0x80 || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || seen[c] {
			return fmt.Errorf("MSH: the delimiters %q are not usable (each must be a distinct punctuation character)", string([]byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent}))
		}
		seen[c] = true
	}
	return nil
}

func splitSegments(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\r")
	text = strings.ReplaceAll(text, "\n", "\r")
	var out []string
	for _, s := range strings.Split(text, "\r") {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// decodeCharset turns the raw bytes into text. MSH-18 is read before decoding: it is ASCII.
func decodeCharset(raw []byte, d Delimiters) (string, error) {
	first := raw
	if i := bytes.IndexAny(raw, "\r\n"); i >= 0 {
		first = raw[:i]
	}
	parts := bytes.Split(first, []byte{d.Field})
	charset := ""
	if len(parts) > 17 {
		charset = strings.ToUpper(strings.TrimSpace(string(parts[17])))
		if i := strings.IndexByte(charset, d.Repetition); i >= 0 {
			charset = charset[:i]
		}
	}
	var cm *charmap.Charmap
	switch charset {
	case "", "ASCII", "UNICODE UTF-8", "UNICODE", "UTF-8":
	case "8859/1":
		cm = charmap.ISO8859_1
	case "8859/15":
		cm = charmap.ISO8859_15
	default:
		return "", fmt.Errorf("MSH-18: character set %q is not supported (use UNICODE UTF-8, 8859/1 or 8859/15)", charset)
	}
	if cm == nil && utf8.Valid(raw) {
		return string(raw), nil
	}
	if cm == nil {
		cm = charmap.ISO8859_1
	}
	b, err := cm.NewDecoder().Bytes(raw)
	if err != nil {
		return "", fmt.Errorf("decode %s: %w", charset, err)
	}
	return string(b), nil
}

func parseSegment(line string, d Delimiters, first bool) (Segment, error) {
	parts := strings.Split(line, string(d.Field))
	name := parts[0]
	if len(name) != 3 || !isSegmentName(name) {
		return Segment{}, fmt.Errorf("%q is not a segment name (three letters or digits, e.g. PID)", name)
	}
	if first != (name == "MSH") {
		if first {
			return Segment{}, ErrNotHL7
		}
		return Segment{}, errors.New("a second MSH segment: one message per frame")
	}
	seg := Segment{Name: name, Fields: make([]Field, 1, len(parts)+1)}
	if name == "MSH" {
		// MSH-1 is the field separator itself and MSH-2 the encoding characters: both taken literally.
		seg.Fields = append(seg.Fields, Field{{{string(d.Field)}}}, Field{{{parts[1]}}})
		parts = parts[2:]
	} else {
		parts = parts[1:]
	}
	for _, p := range parts {
		seg.Fields = append(seg.Fields, parseField(p, d))
	}
	return seg, nil
}

func isSegmentName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s[0] >= 'A' && s[0] <= 'Z'
}

func parseField(s string, d Delimiters) Field {
	var f Field
	for _, rep := range strings.Split(s, string(d.Repetition)) {
		var r Repetition
		for _, comp := range strings.Split(rep, string(d.Component)) {
			var c Component
			if d.Subcomponent == 0 {
				c = Component{d.unescape(comp)}
			} else {
				for _, sub := range strings.Split(comp, string(d.Subcomponent)) {
					c = append(c, d.unescape(sub))
				}
			}
			r = append(r, c)
		}
		f = append(f, r)
	}
	return f
}

// unescape resolves \F\ \S\ \T\ \R\ \E\ and \Xhh..\; other sequences (formatting such as \.br\) are kept.
func (d Delimiters) unescape(s string) string {
	esc := string(d.Escape)
	if !strings.Contains(s, esc) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, esc)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i+1:], esc)
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		seq := s[i+1 : i+1+j]
		switch {
		case seq == "F":
			b.WriteByte(d.Field)
		case seq == "S":
			b.WriteByte(d.Component)
		case seq == "T":
			b.WriteByte(d.Subcomponent)
		case seq == "R":
			b.WriteByte(d.Repetition)
		case seq == "E":
			b.WriteByte(d.Escape)
		case len(seq) > 1 && seq[0] == 'X' && len(seq)%2 == 1 && isHex(seq[1:]):
			for k := 1; k < len(seq); k += 2 {
				var v byte
				fmt.Sscanf(seq[k:k+2], "%02X", &v)
				b.WriteByte(v)
			}
		default:
			b.WriteString(esc + seq + esc)
		}
		s = s[i+1+j+1:]
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Quote writes s with the delimiters escaped (\F\, \S\, ...), for building a message.
func (d Delimiters) Quote(s string) string {
	if !strings.ContainsAny(s, string([]byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent})) {
		return s
	}
	var b strings.Builder
	esc := string(d.Escape)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case d.Escape:
			b.WriteString(esc + "E" + esc)
		case d.Field:
			b.WriteString(esc + "F" + esc)
		case d.Component:
			b.WriteString(esc + "S" + esc)
		case d.Repetition:
			b.WriteString(esc + "R" + esc)
		case d.Subcomponent:
			b.WriteString(esc + "T" + esc)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Segment returns the first segment named name.
func (m *Message) Segment(name string) (Segment, bool) {
	for _, s := range m.Segments {
		if s.Name == name {
			return s, true
		}
	}
	return Segment{}, false
}

// Value returns the text at segment-field.component.subcomponent (1-based; the first repetition), "" when
// absent. Value("MSH", 9, 2, 1) is the trigger event.
func (m *Message) Value(seg string, field, comp, sub int) string {
	s, ok := m.Segment(seg)
	if !ok {
		return ""
	}
	return s.value(field, 1, comp, sub)
}

func (s Segment) value(field, rep, comp, sub int) string {
	if field < 1 || field >= len(s.Fields) || rep < 1 || rep > len(s.Fields[field]) {
		return ""
	}
	r := s.Fields[field][rep-1]
	if comp < 1 || comp > len(r) {
		return ""
	}
	c := r[comp-1]
	if sub < 1 || sub > len(c) {
		return ""
	}
	return c[sub-1]
}

// Type returns MSH-9: message type, trigger event and message structure (ADT, A04, ADT_A01).
func (m *Message) Type() (msgType, trigger, structure string) {
	return m.Value("MSH", 9, 1, 1), m.Value("MSH", 9, 2, 1), m.Value("MSH", 9, 3, 1)
}

// ControlID returns MSH-10, the sender's id for this message (echoed in the acknowledgement's MSA-2).
func (m *Message) ControlID() string { return m.Value("MSH", 10, 1, 1) }

// Version returns MSH-12 (2.3.1, 2.4, 2.5, ...).
func (m *Message) Version() string { return m.Value("MSH", 12, 1, 1) }
