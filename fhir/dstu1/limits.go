package dstu1

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"
)

// Format is a wire form of FHIR DSTU1: XML (Atom feeds, FHIR namespace) or JSON.
type Format uint8

const (
	// FormatXML is the Atom/FHIR XML form (application/xml+fhir, application/atom+xml, application/xml).
	FormatXML Format = iota + 1
	// FormatJSON is the DSTU1 JSON form (application/json+fhir, application/json).
	FormatJSON
)

func (f Format) String() string {
	switch f {
	case FormatXML:
		return "xml"
	case FormatJSON:
		return "json"
	}
	return "unknown format"
}

// Sniff guesses the format of a body from its first non-space byte: '{' is JSON, '<' is XML. It returns 0
// when neither; callers normally decide by Content-Type first and use Sniff as the fallback.
func Sniff(body []byte) Format {
	b := bytes.TrimLeft(body, " \t\r\n\ufeff")
	if len(b) > 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { // UTF-8 BOM
		b = bytes.TrimLeft(b[3:], " \t\r\n")
	}
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case '{':
		return FormatJSON
	case '<':
		return FormatXML
	}
	return 0
}

// Limits bound what a parser accepts from an untrusted sender. Zero fields take the defaults.
type Limits struct {
	// MaxBytes is the largest body accepted. Default 10 MiB.
	MaxBytes int64
	// MaxDepth is the deepest element nesting (XML elements or JSON objects/arrays). Default 64.
	MaxDepth int
	// MaxElements is the most XML elements or JSON values in one message. Default 200 000.
	MaxElements int
	// MaxEntries, when > 0, is the most entries a bundle may have (ErrTooManyEntries). Default: no limit
	// beyond MaxElements.
	MaxEntries int
	// SkipValueChecks leaves out the checks of primitive values against their DSTU1 type (dates in range,
	// 32-bit integers, codes, ...; values.go), for bodies a program wrote itself after checking them when
	// they came in: a stricter check in a newer version must not make the messages an older one stored
	// unreadable. What both wire forms need (JSON types, booleans, number syntax) is still checked.
	SkipValueChecks bool
}

// Default limits (see Limits).
const (
	DefaultMaxBytes    = 10 << 20
	DefaultMaxDepth    = 64
	DefaultMaxElements = 200_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	return l
}

// ReadBody reads at most l.MaxBytes from r; a longer body is ErrTooLarge (the rest is not read).
func (l Limits) ReadBody(r io.Reader) ([]byte, error) {
	l = l.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, l.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(data)) > l.MaxBytes {
		return nil, fmt.Errorf("read body: %w (limit %d bytes)", ErrTooLarge, l.MaxBytes)
	}
	return data, nil
}

// precheck applies the checks common to both formats: size and UTF-8.
func (l Limits) precheck(data []byte, f Format) error {
	if int64(len(data)) > l.MaxBytes {
		return &SyntaxError{Format: f, Err: ErrTooLarge, Msg: fmt.Sprintf("%d bytes, limit %d", len(data), l.MaxBytes)}
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := lineCol(data, off)
		return &SyntaxError{Format: f, Line: line, Column: col, Err: ErrInvalidUTF8, Msg: fmt.Sprintf("byte offset %d", off)}
	}
	return nil
}
