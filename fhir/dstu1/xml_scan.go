package dstu1

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// xmlScanner is a small, strict, non-validating XML 1.0 tokenizer with namespaces. It replaces
// encoding/xml on the hot path (the server parses every POST and claim): it slices names and values out of
// one copy of the document instead of allocating per token. It accepts UTF-8 only, refuses DTDs (and so
// every entity but the five predefined ones and character references), and checks what well-formedness
// needs: names, matching end tags, unique attributes, bound prefixes, legal characters, comment and CDATA
// syntax, one root element. FuzzXMLScanner checks it against encoding/xml.
type xmlScanner struct {
	src string
	pos int

	ns      []nsBinding // in-scope namespace declarations, innermost last
	open    []openElem  // open elements: qualified name and where their bindings start
	pending bool        // the last start tag was self-closing: an end token is due
	attrs   []xattr     // attributes of the last start tag (reused)
	raw     []rawAttr
	seenEl  bool // the root element has started
	doneEl  bool // the root element has ended
}

type nsBinding struct{ prefix, url string }

// maxNamespaceDecls bounds the in-scope namespace declarations; prefix lookups scan them.
const maxNamespaceDecls = 256

type openElem struct {
	qname string
	mark  int
	space string
	local string
}

type rawAttr struct {
	prefix, local, value string
}

type xattr struct {
	space, local, value string
}

type xtokKind uint8

const (
	xEOF xtokKind = iota
	xStart
	xEnd
	xText
)

// xtok is one token. For xStart, attrs is valid until the next call to next.
type xtok struct {
	kind  xtokKind
	space string
	local string
	attrs []xattr
	text  string
}

// scanError is a tokenizer error at an offset; the reader turns it into a *SyntaxError.
type scanError struct {
	off      int
	msg      string
	sentinel error
}

func (e *scanError) Error() string { return e.msg }

func newXMLScanner(data []byte) *xmlScanner {
	s := &xmlScanner{src: string(data)}
	if strings.HasPrefix(s.src, "\ufeff") {
		s.pos = 3
	}
	return s
}

func (s *xmlScanner) fail(off int, format string, args ...any) *scanError {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &scanError{off: off, msg: msg}
}

// next returns the next start tag, end tag or character data (comments and processing instructions are
// skipped), or xEOF after the root element.
func (s *xmlScanner) next() (xtok, error) {
	if s.pending {
		s.pending = false
		return s.closeTop(), nil
	}
	for {
		if s.pos >= len(s.src) {
			if len(s.open) > 0 {
				return xtok{}, s.fail(s.pos, "unexpected end of document: <%s> is not closed", s.open[len(s.open)-1].qname)
			}
			if !s.seenEl {
				return xtok{}, s.fail(s.pos, "no root element")
			}
			return xtok{kind: xEOF}, nil
		}
		if s.src[s.pos] != '<' {
			tok, err := s.text()
			if err != nil {
				return tok, err
			}
			if len(s.open) == 0 {
				if strings.TrimLeft(tok.text, " \t\r\n") != "" {
					return xtok{}, s.fail(s.pos, "text outside the root element")
				}
				continue
			}
			return tok, nil
		}
		rest := s.src[s.pos:]
		switch {
		case strings.HasPrefix(rest, "<?"):
			if err := s.procInst(); err != nil {
				return xtok{}, err
			}
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest[4:], "--")
			if end < 0 {
				return xtok{}, s.fail(s.pos, "unterminated comment")
			}
			if !strings.HasPrefix(rest[4+end:], "-->") {
				return xtok{}, s.fail(s.pos+4+end, `"--" inside a comment`)
			}
			if err := s.checkChars(s.pos+4, rest[4:4+end]); err != nil {
				return xtok{}, err
			}
			s.pos += 4 + end + 3
		case strings.HasPrefix(rest, "<![CDATA["):
			if len(s.open) == 0 {
				return xtok{}, s.fail(s.pos, "CDATA outside the root element")
			}
			end := strings.Index(rest[9:], "]]>")
			if end < 0 {
				return xtok{}, s.fail(s.pos, "unterminated CDATA section")
			}
			text := rest[9 : 9+end]
			if err := s.checkChars(s.pos+9, text); err != nil {
				return xtok{}, err
			}
			s.pos += 9 + end + 3
			return xtok{kind: xText, text: normalizeNewlines(text)}, nil
		case strings.HasPrefix(rest, "<!"):
			if strings.HasPrefix(rest, "<!DOCTYPE") {
				return xtok{}, &scanError{off: s.pos, msg: "found <!DOCTYPE", sentinel: ErrDTD}
			}
			return xtok{}, s.fail(s.pos, "unexpected markup declaration")
		case strings.HasPrefix(rest, "</"):
			return s.endTag()
		default:
			return s.startTag()
		}
	}
}

func (s *xmlScanner) procInst() error {
	start := s.pos
	end := strings.Index(s.src[s.pos+2:], "?>")
	if end < 0 {
		return s.fail(start, "unterminated processing instruction")
	}
	body := s.src[s.pos+2 : s.pos+2+end]
	s.pos += 2 + end + 2
	target := body
	if i := strings.IndexAny(body, " \t\r\n"); i >= 0 {
		target = body[:i]
	}
	if !validName(target) {
		return s.fail(start, "invalid processing instruction target %q", target)
	}
	if strings.EqualFold(target, "xml") {
		if target != "xml" || start != 0 && !(start == 3 && strings.HasPrefix(s.src, "\ufeff")) {
			return s.fail(start, "XML declaration not at the start of the document")
		}
		if i := strings.Index(body, "encoding"); i >= 0 {
			v := strings.TrimLeft(body[i+len("encoding"):], " \t\r\n=")
			if len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
				if j := strings.IndexByte(v[1:], v[0]); j >= 0 {
					enc := v[1 : 1+j]
					if !strings.EqualFold(enc, "utf-8") && !strings.EqualFold(enc, "utf8") {
						return s.fail(start, "encoding %q is not supported: send UTF-8", enc)
					}
				}
			}
		}
	}
	return nil
}

// text reads character data up to the next '<', decoding references.
func (s *xmlScanner) text() (xtok, error) {
	start := s.pos
	end := strings.IndexByte(s.src[start:], '<')
	if end < 0 {
		end = len(s.src) - start
	}
	raw := s.src[start : start+end]
	s.pos = start + end
	plain, err := s.scanRaw(start, raw, false)
	if err != nil {
		return xtok{}, err
	}
	text := raw
	if !plain {
		if text, err = s.decode(start, raw, false); err != nil {
			return xtok{}, err
		}
	}
	return xtok{kind: xText, text: text}, nil
}

// scanRaw checks character data (attr false) or an attribute value (attr true) in one pass: characters
// XML does not allow, "]]>" in text, '<' in attribute values. plain is true when the value needs no
// decoding (no references, no characters that normalisation changes).
func (s *xmlScanner) scanRaw(off int, raw string, attr bool) (plain bool, err error) {
	plain = true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c >= 0x20 {
			switch c {
			case '&':
				plain = false
			case '<':
				return false, s.fail(off+i, "'<' in an attribute value")
			case '>':
				if !attr && i >= 2 && raw[i-1] == ']' && raw[i-2] == ']' {
					return false, s.fail(off+i-2, `"]]>" in character data`)
				}
			case 0xEF:
				if i+2 < len(raw) && raw[i+1] == 0xBF && (raw[i+2] == 0xBE || raw[i+2] == 0xBF) {
					return false, s.fail(off+i, "illegal character U+FFFE/U+FFFF")
				}
			}
			continue
		}
		switch c {
		case '\r':
			plain = false
		case '\t', '\n':
			if attr {
				plain = false
			}
		default:
			return false, s.fail(off+i, "illegal character %#x", c)
		}
	}
	return plain, nil
}

// checkChars rejects characters XML does not allow (control characters, U+FFFE, U+FFFF).
func (s *xmlScanner) checkChars(off int, v string) error {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return s.fail(off+i, "illegal character %#x", c)
		}
		if c == 0xEF && i+2 < len(v) && v[i+1] == 0xBF && (v[i+2] == 0xBE || v[i+2] == 0xBF) {
			return s.fail(off+i, "illegal character U+FFFE/U+FFFF")
		}
	}
	return nil
}

// decode replaces entity and character references; attr also applies attribute-value normalisation.
func (s *xmlScanner) decode(off int, raw string, attr bool) (string, error) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			if attr {
				b.WriteByte(' ')
			} else {
				b.WriteByte('\n')
			}
		case attr && (c == '\t' || c == '\n'):
			b.WriteByte(' ')
		case c == '&':
			semi := strings.IndexByte(raw[i:], ';')
			if semi < 0 {
				return "", s.fail(off+i, "unterminated reference")
			}
			ref := raw[i+1 : i+semi]
			switch ref {
			case "lt":
				b.WriteByte('<')
			case "gt":
				b.WriteByte('>')
			case "amp":
				b.WriteByte('&')
			case "apos":
				b.WriteByte('\'')
			case "quot":
				b.WriteByte('"')
			default:
				r, ok := charRef(ref)
				if !ok {
					return "", s.fail(off+i, "unknown entity &%s; (only the five XML entities and character references are allowed)", truncate(ref, 20))
				}
				b.WriteRune(r)
			}
			i += semi
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func charRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	var v uint64
	var err error
	if ref[1] == 'x' {
		if len(ref) < 3 {
			return 0, false
		}
		v, err = strconv.ParseUint(ref[2:], 16, 32)
	} else {
		v, err = strconv.ParseUint(ref[1:], 10, 32)
	}
	if err != nil {
		return 0, false
	}
	r := rune(v)
	ok := r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	return r, ok
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func (s *xmlScanner) ws() bool {
	start := s.pos
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return s.pos > start
		}
	}
	return s.pos > start
}

// name reads an XML name (prefix:local allowed).
func (s *xmlScanner) name() string {
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c < utf8.RuneSelf {
			if c == ':' || c == '_' || c == '-' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
				s.pos++
				continue
			}
			break
		}
		r, n := utf8.DecodeRuneInString(s.src[s.pos:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) && !unicode.Is(unicode.Mc, r) && r != '·' {
			break
		}
		s.pos += n
	}
	return s.src[start:s.pos]
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(n)
	return r == '_' || r == ':' || unicode.IsLetter(r)
}

func splitQName(q string) (prefix, local string, ok bool) {
	i := strings.IndexByte(q, ':')
	if i < 0 {
		return "", q, validName(q)
	}
	prefix, local = q[:i], q[i+1:]
	return prefix, local, validName(prefix) && validName(local) && !strings.Contains(local, ":")
}

func (s *xmlScanner) lookupNS(prefix string) (string, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for i := len(s.ns) - 1; i >= 0; i-- {
		if s.ns[i].prefix == prefix {
			return s.ns[i].url, true
		}
	}
	if prefix == "" {
		return "", true
	}
	return "", false
}

func (s *xmlScanner) startTag() (xtok, error) {
	start := s.pos
	if s.doneEl {
		return xtok{}, s.fail(start, "content after the root element")
	}
	s.pos++ // <
	qname := s.name()
	prefix, local, ok := splitQName(qname)
	if !ok {
		return xtok{}, s.fail(start+1, "invalid element name %q", qname)
	}
	s.raw = s.raw[:0]
	var seen map[[2]string]struct{}
	mark := len(s.ns)
	selfClosing := false
	for {
		hadSpace := s.ws()
		if s.pos >= len(s.src) {
			return xtok{}, s.fail(start, "unterminated start tag <%s", qname)
		}
		c := s.src[s.pos]
		if c == '>' {
			s.pos++
			break
		}
		if c == '/' {
			if !strings.HasPrefix(s.src[s.pos:], "/>") {
				return xtok{}, s.fail(s.pos, "expected /> in <%s>", qname)
			}
			s.pos += 2
			selfClosing = true
			break
		}
		if !hadSpace {
			return xtok{}, s.fail(s.pos, "expected whitespace before an attribute in <%s>", qname)
		}
		aoff := s.pos
		aname := s.name()
		ap, al, ok := splitQName(aname)
		if !ok {
			return xtok{}, s.fail(aoff, "invalid attribute name %q in <%s>", aname, qname)
		}
		s.ws()
		if s.pos >= len(s.src) || s.src[s.pos] != '=' {
			return xtok{}, s.fail(s.pos, "attribute %s without a value", aname)
		}
		s.pos++
		s.ws()
		if s.pos >= len(s.src) || (s.src[s.pos] != '"' && s.src[s.pos] != '\'') {
			return xtok{}, s.fail(s.pos, "unquoted attribute value for %s", aname)
		}
		q := s.src[s.pos]
		vstart := s.pos + 1
		vend := strings.IndexByte(s.src[vstart:], q)
		if vend < 0 {
			return xtok{}, s.fail(aoff, "unterminated attribute value for %s", aname)
		}
		raw := s.src[vstart : vstart+vend]
		s.pos = vstart + vend + 1
		plain, err := s.scanRaw(vstart, raw, true)
		if err != nil {
			return xtok{}, err
		}
		val := raw
		if !plain {
			if val, err = s.decode(vstart, raw, true); err != nil {
				return xtok{}, err
			}
		}
		if s.duplicateAttr(ap, al, &seen) {
			return xtok{}, s.fail(aoff, "duplicate attribute %s in <%s>", aname, qname)
		}
		s.raw = append(s.raw, rawAttr{prefix: ap, local: al, value: val})
		switch {
		case ap == "" && al == "xmlns":
			s.ns = append(s.ns, nsBinding{prefix: "", url: val})
		case ap == "xmlns":
			if val == "" {
				return xtok{}, s.fail(aoff, "prefix %s bound to an empty namespace", al)
			}
			s.ns = append(s.ns, nsBinding{prefix: al, url: val})
		}
	}
	if len(s.ns) > maxNamespaceDecls {
		return xtok{}, s.fail(start, "more than %d namespace declarations in scope", maxNamespaceDecls)
	}
	space, ok := s.lookupNS(prefix)
	if !ok {
		return xtok{}, s.fail(start+1, "unbound namespace prefix %q", prefix)
	}
	s.attrs = s.attrs[:0]
	for _, a := range s.raw {
		var aspace string
		switch {
		case a.prefix == "" && a.local == "xmlns":
			aspace = "xmlns"
		case a.prefix == "xmlns":
			aspace = "xmlns"
		case a.prefix != "":
			u, ok := s.lookupNS(a.prefix)
			if !ok {
				return xtok{}, s.fail(start, "unbound namespace prefix %q on attribute %s", a.prefix, a.local)
			}
			aspace = u
		}
		s.attrs = append(s.attrs, xattr{space: aspace, local: a.local, value: a.value})
	}
	s.seenEl = true
	s.open = append(s.open, openElem{qname: qname, mark: mark, space: space, local: local})
	s.pending = selfClosing
	return xtok{kind: xStart, space: space, local: local, attrs: s.attrs}, nil
}

// duplicateAttr reports whether the start tag already has attribute prefix:local; a set takes over for
// tags with many attributes so hostile input stays linear.
func (s *xmlScanner) duplicateAttr(prefix, local string, seen *map[[2]string]struct{}) bool {
	if len(s.raw) < 16 {
		for _, prev := range s.raw {
			if prev.prefix == prefix && prev.local == local {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[[2]string]struct{}, 2*len(s.raw))
		for _, prev := range s.raw {
			(*seen)[[2]string{prev.prefix, prev.local}] = struct{}{}
		}
	}
	k := [2]string{prefix, local}
	if _, ok := (*seen)[k]; ok {
		return true
	}
	(*seen)[k] = struct{}{}
	return false
}

func (s *xmlScanner) endTag() (xtok, error) {
	start := s.pos
	s.pos += 2
	qname := s.name()
	s.ws()
	if s.pos >= len(s.src) || s.src[s.pos] != '>' {
		return xtok{}, s.fail(start, "malformed end tag </%s", qname)
	}
	s.pos++
	if len(s.open) == 0 {
		return xtok{}, s.fail(start, "unexpected end tag </%s>", qname)
	}
	if top := s.open[len(s.open)-1]; top.qname != qname {
		return xtok{}, s.fail(start, "end tag </%s> does not match <%s>", qname, top.qname)
	}
	return s.closeTop(), nil
}

func (s *xmlScanner) closeTop() xtok {
	top := s.open[len(s.open)-1]
	s.open = s.open[:len(s.open)-1]
	s.ns = s.ns[:top.mark]
	if len(s.open) == 0 {
		s.doneEl = true
	}
	return xtok{kind: xEnd, space: top.space, local: top.local}
}
