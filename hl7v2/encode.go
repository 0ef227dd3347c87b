package hl7v2

import (
	"strings"
	"time"
)

// Encode writes the message with its delimiters, segments ended by CR, values escaped.
func (m *Message) Encode() []byte {
	d := m.Delims
	var b strings.Builder
	for _, s := range m.Segments {
		b.WriteString(s.Name)
		start := 1
		if s.Name == "MSH" {
			b.WriteByte(d.Field)
			b.WriteString(string([]byte{d.Component, d.Repetition, d.Escape}))
			if d.Subcomponent != 0 {
				b.WriteByte(d.Subcomponent)
			}
			start = 3
		}
		for i := start; i < len(s.Fields); i++ {
			b.WriteByte(d.Field)
			for ri, r := range s.Fields[i] {
				if ri > 0 {
					b.WriteByte(d.Repetition)
				}
				for ci, c := range r {
					if ci > 0 {
						b.WriteByte(d.Component)
					}
					for si, sub := range c {
						if si > 0 {
							b.WriteByte(d.Subcomponent)
						}
						b.WriteString(d.Quote(sub))
					}
				}
			}
		}
		b.WriteByte('\r')
	}
	return []byte(b.String())
}

// Text makes a field of one value.
func Text(s string) Field { return Field{{{s}}} }

// Components makes a field of components.
func Components(cs ...string) Field {
	r := make(Repetition, len(cs))
	for i, c := range cs {
		r[i] = Component{c}
	}
	return Field{r}
}

// Acknowledgement codes (MSA-1, original mode).
const (
	AA = "AA" // accepted
	AE = "AE" // error: the receiver could not process it; the sender may send it again
	AR = "AR" // rejected: the message itself is wrong; sending it again gives the same answer
)

// ACK builds the acknowledgement of req: MSH with sender and receiver swapped, MSA with the code, req's
// control id and the text, and an ERR segment with the text for AE and AR. controlID is the ACK's own MSH-10.
func ACK(req *Message, code, text, controlID string, now time.Time) *Message {
	msh, _ := req.Segment("MSH")
	get := func(f int) Field {
		if f < len(msh.Fields) {
			return msh.Fields[f]
		}
		return Text("")
	}
	_, trigger, _ := req.Type()
	version := req.Version()
	if version == "" {
		version = "2.5"
	}
	ack := &Message{Delims: req.Delims}
	ack.Segments = append(ack.Segments, Segment{Name: "MSH", Fields: []Field{nil, Text(string(req.Delims.Field)), Text(""),
		get(5), get(6), get(3), get(4), Text(now.Format("20060102150405-0700")), Text(""),
		Components("ACK", trigger, "ACK"), Text(controlID), get(11), Text(version)}})
	ack.Segments = append(ack.Segments, Segment{Name: "MSA", Fields: []Field{nil, Text(code), Text(req.ControlID()), Text(text)}})
	if code != AA && text != "" {
		// ERR-3 error code (HL7 table 0357: 207 application internal error, 100 segment sequence error...),
		// ERR-4 severity E, ERR-8 the text for people.
		errCode := "207"
		if code == AR {
			errCode = "200" // unsupported or unreadable message
		}
		ack.Segments = append(ack.Segments, Segment{Name: "ERR", Fields: []Field{nil, Text(""), Text(""),
			Components(errCode, "", "HL70357"), Text("E"), Text(""), Text(""), Text(""), Text(text)}})
	}
	return ack
}

// AckCode returns MSA-1 and MSA-3 of an acknowledgement (the enhanced-mode codes CA/CE/CR map to AA/AE/AR).
func (m *Message) AckCode() (code, text string) {
	code = m.Value("MSA", 1, 1, 1)
	switch code {
	case "CA":
		code = AA
	case "CE":
		code = AE
	case "CR":
		code = AR
	}
	text = m.Value("MSA", 3, 1, 1)
	if t := m.Value("ERR", 8, 1, 1); t != "" && text == "" {
		text = t
	}
	return code, text
}
