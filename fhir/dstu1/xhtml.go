package dstu1

import (
	"strconv"
	"unicode/utf8"
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

// xhtml reads the narrative div whose start tag was just read and returns it re-serialised in a canonical
// form: no prefixes, the XHTML namespace declared on the div, a default-namespace declaration wherever an
// element's namespace differs from its parent's (e.g. Koppeltaal's <p xmlns=""/>), empty elements
// self-closed, comments dropped. Both wire forms produce the same string, so narratives compare equal and
// nothing unchecked reaches XML output.
func (r *xmlReader) xhtml(start xtok) (string, error) {
	buf := make([]byte, 0, 256)
	type frame struct{ ns string }
	stack := []frame{{ns: ""}}
	open := false // a start tag is waiting for '>' or '/>'
	pfx := 0
	writeStart := func(t xtok) {
		buf = append(buf, '<')
		buf = append(buf, t.local...)
		if t.space != stack[len(stack)-1].ns {
			buf = append(buf, ` xmlns="`...)
			buf = appendEscapedAttr(buf, t.space)
			buf = append(buf, '"')
		}
		for _, a := range t.attrs {
			switch {
			case a.space == "xmlns" || (a.space == "" && a.local == "xmlns"):
				continue // declarations are regenerated
			case a.space == "":
				buf = append(buf, ' ')
				buf = append(buf, a.local...)
			case a.space == nsXML || a.space == "xml":
				buf = append(buf, " xml:"...)
				buf = append(buf, a.local...)
			default:
				pfx++
				p := "a" + strconv.Itoa(pfx)
				buf = append(buf, " xmlns:"+p+`="`...)
				buf = appendEscapedAttr(buf, a.space)
				buf = append(buf, `" `+p+":"...)
				buf = append(buf, a.local...)
			}
			buf = append(buf, `="`...)
			buf = appendEscapedAttr(buf, a.value)
			buf = append(buf, '"')
		}
		stack = append(stack, frame{ns: t.space})
		open = true
	}
	writeStart(start)
	for len(stack) > 1 {
		tok, err := r.next()
		if err != nil {
			return "", err
		}
		switch t := tok; t.kind {
		case xStart:
			if open {
				buf = append(buf, '>')
			}
			writeStart(t)
		case xEnd:
			if open {
				buf = append(buf, "/>"...)
				open = false
			} else {
				buf = append(buf, "</"...)
				buf = append(buf, t.local...)
				buf = append(buf, '>')
			}
			stack = stack[:len(stack)-1]
			if len(stack) > 1 {
				r.pop()
			}
		case xText:
			if open {
				buf = append(buf, '>')
				open = false
			}
			buf = appendEscapedText(buf, t.text)
		}
	}
	return string(buf), nil
}

// parseXHTML checks and canonicalises an XHTML div given as text (the JSON "div" string).
func parseXHTML(s string, l Limits) (string, error) {
	r := newXMLReader([]byte(s), l)
	start, err := r.root()
	if err != nil {
		return "", err
	}
	if start.local != "div" || start.space != NSXHTML {
		return "", r.fail(ErrNotFHIR, "narrative must be a <div> in namespace %s, found <%s> in %q", NSXHTML, start.local, start.space)
	}
	x, err := r.xhtml(start)
	if err != nil {
		return "", err
	}
	return x, r.end()
}

// appendEscapedText escapes character data. Characters XML 1.0 cannot carry
// at all (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF; bytes that
// are not UTF-8) become U+FFFD, so whatever a string holds — an error echoing
// a request path, say — the document stays well-formed (issue 16 item 6).
func appendEscapedText(buf []byte, s string) []byte { return appendXMLEscaped(buf, s, false) }

// appendEscapedAttr escapes an attribute value (quotes with '"'); whitespace characters are escaped so
// attribute-value normalisation on re-reading does not change them. Characters XML cannot carry become
// U+FFFD, as in appendEscapedText.
func appendEscapedAttr(buf []byte, s string) []byte { return appendXMLEscaped(buf, s, true) }

func appendXMLEscaped(buf []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		n := 1
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '\r':
			esc = "&#xD;"
		case attr && c == '"':
			esc = "&quot;"
		case attr && c == '\t':
			esc = "&#x9;"
		case attr && c == '\n':
			esc = "&#xA;"
		case c == '\t' || c == '\n' || (c >= 0x20 && c < utf8.RuneSelf):
			i++
			continue
		case c < 0x20:
			esc = "\uFFFD"
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			n = size
			if (r != utf8.RuneError || size > 1) && r != 0xFFFE && r != 0xFFFF {
				i += size
				continue
			}
			esc = "\uFFFD" // not UTF-8 (surrogates included), or a non-character
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		i += n
		last = i
	}
	return append(buf, s[last:]...)
}

// validXMLChars reports whether s holds only characters XML 1.0 allows (JSON strings may carry others,
// e.g. \u0000, which cannot be written as XML).
func validXMLChars(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x80 {
			i++
			continue
		}
		if c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		if c < 0x20 {
			return false
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == 0xFFFE || r == 0xFFFF || (r >= 0xD800 && r <= 0xDFFF) || (r == utf8.RuneError && n == 1) {
			return false
		}
		i += n
	}
	return true
}
