package dstu1

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jval is a parsed JSON value. Objects keep their member order; offsets point into the body for errors.
type jval struct {
	kind byte // 's' string, 'n' number, 't' true, 'f' false, 'z' null, 'o' object, 'a' array
	str  string
	off  int
	obj  []jmember
	arr  []jval
}

type jmember struct {
	key string
	off int
	val jval
}

// jsonScanner is a small strict JSON parser (RFC 8259) with depth and value-count limits. It is hand
// written because the codec parses on every POST and claim: no reflection, one pass, exact offsets.
type jsonScanner struct {
	data  []byte
	src   string // one copy of data: strings without escapes are slices of it, not allocations
	pos   int
	lim   Limits
	depth int
	count int

	// Members and elements of the open objects/arrays are collected on stacks and copied into chunked
	// storage when their container closes: a few allocations per document instead of several per object.
	mstack []jmember
	vstack []jval
	mstore []jmember
	vstore []jval
}

func (s *jsonScanner) takeMembers(mark int) []jmember {
	n := len(s.mstack) - mark
	if n == 0 {
		return nil
	}
	if cap(s.mstore)-len(s.mstore) < n {
		s.mstore = make([]jmember, 0, max(256, n))
	}
	start := len(s.mstore)
	s.mstore = append(s.mstore, s.mstack[mark:]...)
	clear(s.mstack[mark:])
	s.mstack = s.mstack[:mark]
	return s.mstore[start:len(s.mstore):len(s.mstore)]
}

func (s *jsonScanner) takeValues(mark int) []jval {
	n := len(s.vstack) - mark
	if n == 0 {
		return nil
	}
	if cap(s.vstore)-len(s.vstore) < n {
		s.vstore = make([]jval, 0, max(256, n))
	}
	start := len(s.vstore)
	s.vstore = append(s.vstore, s.vstack[mark:]...)
	clear(s.vstack[mark:])
	s.vstack = s.vstack[:mark]
	return s.vstore[start:len(s.vstore):len(s.vstore)]
}

func (s *jsonScanner) fail(off int, sentinel error, format string, args ...any) *SyntaxError {
	line, col := lineCol(s.data, off)
	return &SyntaxError{Format: FormatJSON, Line: line, Column: col, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// document parses the whole body as one JSON value.
func (s *jsonScanner) document() (jval, error) {
	if len(s.data) >= 3 && s.data[0] == 0xEF && s.data[1] == 0xBB && s.data[2] == 0xBF {
		s.pos = 3 // UTF-8 byte order mark
	}
	v, err := s.value()
	if err != nil {
		return v, err
	}
	s.ws()
	if s.pos < len(s.data) {
		return v, s.fail(s.pos, nil, "unexpected %q after the JSON value", s.data[s.pos])
	}
	return v, nil
}

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) value() (jval, error) {
	s.ws()
	if s.pos >= len(s.data) {
		return jval{}, s.fail(s.pos, nil, "unexpected end of JSON")
	}
	s.count++
	if s.count > s.lim.MaxElements {
		return jval{}, s.fail(s.pos, ErrTooManyElements, "more than %d JSON values", s.lim.MaxElements)
	}
	off := s.pos
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		str, err := s.string()
		return jval{kind: 's', str: str, off: off}, err
	case c == 't':
		return jval{kind: 't', off: off}, s.literal("true")
	case c == 'f':
		return jval{kind: 'f', off: off}, s.literal("false")
	case c == 'n':
		return jval{kind: 'z', off: off}, s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		end := scanNumber(s.data, s.pos)
		if end < 0 {
			return jval{}, s.fail(off, nil, "invalid number")
		}
		s.pos = end
		return jval{kind: 'n', str: s.src[off:end], off: off}, nil
	default:
		return jval{}, s.fail(off, nil, "unexpected character %q", c)
	}
}

func (s *jsonScanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail(s.pos, nil, "invalid literal (expected %s)", word)
	}
	s.pos += len(word)
	return nil
}

func (s *jsonScanner) enter(off int) error {
	s.depth++
	if s.depth > s.lim.MaxDepth {
		return s.fail(off, ErrTooDeep, "nesting depth exceeds %d", s.lim.MaxDepth)
	}
	return nil
}

// duplicate reports whether key is already among members. Small objects are scanned; large ones get a set
// so that a hostile object with many members stays linear.
func (s *jsonScanner) duplicate(members []jmember, key string, seen *map[string]struct{}) bool {
	if len(members) < 16 {
		for i := range members {
			if members[i].key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(members))
		for i := range members {
			(*seen)[members[i].key] = struct{}{}
		}
	}
	if _, ok := (*seen)[key]; ok {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

func (s *jsonScanner) object() (jval, error) {
	v := jval{kind: 'o', off: s.pos}
	var seen map[string]struct{}
	if err := s.enter(s.pos); err != nil {
		return v, err
	}
	mark := len(s.mstack)
	s.pos++ // {
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return v, nil
	}
	for {
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return v, s.fail(s.pos, nil, "expected a member name in quotes")
		}
		koff := s.pos
		key, err := s.string()
		if err != nil {
			return v, err
		}
		if s.duplicate(s.mstack[mark:], key, &seen) {
			return v, s.fail(koff, nil, "duplicate member %q", key)
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return v, s.fail(s.pos, nil, "expected ':' after member name %q", key)
		}
		s.pos++
		val, err := s.value()
		if err != nil {
			return v, err
		}
		s.mstack = append(s.mstack, jmember{key: key, off: koff, val: val})
		s.ws()
		if s.pos >= len(s.data) {
			return v, s.fail(s.pos, nil, "unexpected end of JSON in an object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			v.obj = s.takeMembers(mark)
			return v, nil
		default:
			return v, s.fail(s.pos, nil, "expected ',' or '}' in an object, found %q", s.data[s.pos])
		}
	}
}

func (s *jsonScanner) array() (jval, error) {
	v := jval{kind: 'a', off: s.pos}
	if err := s.enter(s.pos); err != nil {
		return v, err
	}
	mark := len(s.vstack)
	s.pos++ // [
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return v, nil
	}
	for {
		val, err := s.value()
		if err != nil {
			return v, err
		}
		s.vstack = append(s.vstack, val)
		s.ws()
		if s.pos >= len(s.data) {
			return v, s.fail(s.pos, nil, "unexpected end of JSON in an array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			v.arr = s.takeValues(mark)
			return v, nil
		default:
			return v, s.fail(s.pos, nil, "expected ',' or ']' in an array, found %q", s.data[s.pos])
		}
	}
}

// string reads a JSON string starting at the opening quote.
func (s *jsonScanner) string() (string, error) {
	start := s.pos + 1
	i := start
	for i < len(s.data) {
		c := s.data[i]
		if c == '"' {
			s.pos = i + 1
			return s.src[start:i], nil
		}
		if c == '\\' {
			return s.stringSlow(start)
		}
		if c < 0x20 {
			return "", s.fail(i, nil, "control character %#x in a string", c)
		}
		i++
	}
	return "", s.fail(s.pos, nil, "unterminated string")
}

func (s *jsonScanner) stringSlow(start int) (string, error) {
	buf := make([]byte, 0, 64)
	i := start
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			return "", s.fail(i, nil, "control character %#x in a string", c)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(s.data) {
			break
		}
		switch e := s.data[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
			i += 2
		case 'b':
			buf = append(buf, '\b')
			i += 2
		case 'f':
			buf = append(buf, '\f')
			i += 2
		case 'n':
			buf = append(buf, '\n')
			i += 2
		case 'r':
			buf = append(buf, '\r')
			i += 2
		case 't':
			buf = append(buf, '\t')
			i += 2
		case 'u':
			r, ok := hex4(s.data, i+2)
			if !ok {
				return "", s.fail(i, nil, "invalid \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if i+1 < len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
					r2, ok2 = hex4(s.data, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", s.fail(i, nil, "invalid escape \\%c", e)
		}
	}
	return "", s.fail(start-1, nil, "unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// scanNumber returns the end of the JSON number starting at i, or -1.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	return i
}

// validNumber reports whether s is exactly one JSON number.
func validNumber(s string) bool {
	return s != "" && scanNumber([]byte(s), 0) == len(s)
}

// checkPrimitive validates a value of a boolean or number element so that both wire forms can carry it.
func checkPrimitive(k kind, v string) error {
	switch k {
	case kindBool:
		if v != "true" && v != "false" {
			return fmt.Errorf("expected a boolean (true or false), found %q", truncate(v, 60))
		}
	case kindNumber:
		if !validNumber(v) {
			return fmt.Errorf("expected a number, found %q", truncate(v, 60))
		}
	}
	return nil
}
