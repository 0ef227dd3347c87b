package dstu1

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors a caller can branch on with errors.Is. Parse errors wrap them in a *SyntaxError that says
// where the problem is.
var (
	// ErrTooLarge: the body is larger than Limits.MaxBytes.
	ErrTooLarge = errors.New("message too large")
	// ErrTooDeep: elements or JSON values nest deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("message nests too deep")
	// ErrTooManyElements: the message has more than Limits.MaxElements elements/values.
	ErrTooManyElements = errors.New("message has too many elements")
	// ErrTooManyEntries: the bundle has more than Limits.MaxEntries entries.
	ErrTooManyEntries = errors.New("bundle has too many entries")
	// ErrInvalidUTF8: the body is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrDTD: the XML body has a document type declaration (<!DOCTYPE ...>); DTDs and entities are refused.
	ErrDTD = errors.New("XML document type declarations (<!DOCTYPE>) are not allowed")
	// ErrNullInArray: a JSON array holds a null. The text is the one the Koppeltaal server returned (TO p20),
	// which clients may match on; the server answers it with an OperationOutcome (HTTP 500 in Koppeltaal 1.3.5).
	//lint:ignore ST1005 the Koppeltaal server's own text, which clients match on
	ErrNullInArray = errors.New("The FHIR serialization does not support arrays with empty (null) elements")
	// ErrNotFHIR: the document parsed but is not the FHIR structure that was asked for (wrong root, unknown
	// resource type, a value of the wrong shape).
	ErrNotFHIR = errors.New("not a valid FHIR DSTU1 document")
)

// SyntaxError is a rejected message: what is wrong (Msg, and Err for the sentinel cases) and where — XML line
// and column, or JSON line/column plus the JSON path of the value.
type SyntaxError struct {
	Format Format // FormatXML or FormatJSON
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Path   string // JSON path (entry[0].content.name[0].given[0]) or XML element path (feed/entry[2]/content/Patient)
	Msg    string
	Err    error // sentinel (ErrTooDeep, ErrNullInArray, ...) or nil
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString(e.Format.String())
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d column %d", e.Line, e.Column)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " at %s", e.Path)
	}
	b.WriteString(": ")
	switch {
	case e.Msg != "" && e.Err == ErrNotFHIR: // the message says what is not valid; the sentinel adds nothing
		b.WriteString(e.Msg)
	case e.Msg != "" && e.Err != nil:
		b.WriteString(e.Err.Error())
		b.WriteString(": ")
		b.WriteString(e.Msg)
	case e.Msg != "":
		b.WriteString(e.Msg)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel error, so errors.Is(err, ErrNullInArray) works through a *SyntaxError.
func (e *SyntaxError) Unwrap() error { return e.Err }

// lineCol returns the 1-based line and column (in bytes) of offset off in data.
func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	line, col := 1, 1
	for i := 0; i < off; i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
