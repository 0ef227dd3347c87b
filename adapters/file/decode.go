package file

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"github.com/koppelpoort/koppelpoort/adapters"
)

// RowError is one bad row (or line) of a source file.
type RowError struct {
	Line   int
	Reason string
}

func (e RowError) String() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Format settings shared by the file inbound and route tests.
type Format struct {
	Format    string   `yaml:"format"`
	Delimiter string   `yaml:"delimiter"`
	Encoding  string   `yaml:"encoding"`
	Header    bool     `yaml:"header"`
	Columns   []string `yaml:"columns"`
}

var encodings = map[string]encoding.Encoding{
	"utf-8":        unicode.UTF8,
	"windows-1252": charmap.Windows1252,
	"iso-8859-1":   charmap.ISO8859_1,
	"iso-8859-15":  charmap.ISO8859_15,
}

// EncodingNames are the accepted source encodings.
var EncodingNames = []string{"utf-8", "windows-1252", "iso-8859-1", "iso-8859-15"}

func (f Format) validate() error {
	if _, ok := encodings[f.Encoding]; !ok {
		return fmt.Errorf("encoding %q is not one of %s", f.Encoding, strings.Join(EncodingNames, ", "))
	}
	if utf8.RuneCountInString(f.Delimiter) != 1 || f.Delimiter == "\"" || f.Delimiter == "\n" {
		return fmt.Errorf("delimiter must be one character other than a quote or newline, got %q", f.Delimiter)
	}
	if f.Format == "csv" && !f.Header && len(f.Columns) == 0 {
		return errors.New("a CSV without a header row needs columns (the names of the fields in order)")
	}
	return nil
}

// formatFor picks the format from the setting or the file extension.
func (f Format) formatFor(name string) string {
	if f.Format != "auto" && f.Format != "" {
		return f.Format
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return "json"
	case ".ndjson", ".jsonl":
		return "ndjson"
	}
	return "csv"
}

// Decode turns a file's bytes into records. Rows that cannot be read are returned as RowErrors; the error
// result is for a file that cannot be read at all.
func (f Format) Decode(name string, data []byte) ([]adapters.Record, []RowError, error) {
	enc := encodings[f.Encoding]
	if enc == nil {
		enc = unicode.UTF8
	}
	if f.Encoding == "utf-8" || f.Encoding == "" {
		data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		if !utf8.Valid(data) {
			return nil, nil, fmt.Errorf("file is not valid UTF-8 (set encoding: windows-1252 for Windows exports)")
		}
	} else {
		var err error
		if data, err = enc.NewDecoder().Bytes(data); err != nil {
			return nil, nil, fmt.Errorf("decode %s: %w", f.Encoding, err)
		}
	}
	base := filepath.Base(name)
	switch f.formatFor(name) {
	case "json":
		return decodeJSON(base, data)
	case "ndjson":
		return decodeNDJSON(base, data)
	}
	return f.decodeCSV(base, data)
}

func record(file string, line int, fields map[string]any, format string) adapters.Record {
	return adapters.Record{
		Key:    fmt.Sprintf("%s:%d", file, line),
		Fields: fields,
		Meta:   map[string]string{"adapter": "file", "file": file, "line": fmt.Sprint(line), "format": format},
	}
}

func (f Format) decodeCSV(file string, data []byte) ([]adapters.Record, []RowError, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma, _ = utf8.DecodeRuneInString(f.Delimiter)
	r.FieldsPerRecord = -1
	r.LazyQuotes = false
	var recs []adapters.Record
	var bad []RowError
	cols := f.Columns
	headerSeen := !f.Header
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, RowError{Line: pe.StartLine, Reason: pe.Err.Error()})
				continue
			}
			return nil, nil, fmt.Errorf("read CSV: %w", err)
		}
		if len(row) == 1 && strings.TrimSpace(row[0]) == "" {
			continue
		}
		if !headerSeen {
			headerSeen = true
			header := make([]string, len(row))
			for i, h := range row {
				header[i] = strings.TrimSpace(h)
			}
			if len(f.Columns) > 0 {
				for _, c := range f.Columns {
					if !containsStr(header, c) {
						return nil, nil, fmt.Errorf("header (line %d) lacks column %q that the route declares; header is: %s", line, c, strings.Join(header, f.Delimiter))
					}
				}
			}
			cols = header
			continue
		}
		if len(row) != len(cols) {
			bad = append(bad, RowError{Line: line, Reason: fmt.Sprintf("%d fields, the header has %d (is the delimiter %q right?)", len(row), len(cols), f.Delimiter)})
			continue
		}
		fields := make(map[string]any, len(cols))
		for i, c := range cols {
			fields[c] = strings.TrimSpace(row[i])
		}
		recs = append(recs, record(file, line, fields, "csv"))
	}
	if !headerSeen {
		return nil, nil, errors.New("file is empty: no header row")
	}
	return recs, bad, nil
}

func decodeJSON(file string, data []byte) ([]adapters.Record, []RowError, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, nil, fmt.Errorf("JSON array: %w", err)
		}
		var recs []adapters.Record
		var bad []RowError
		for i, raw := range items {
			m, err := adapters.DecodeObject(raw)
			if err != nil || m == nil {
				bad = append(bad, RowError{Line: i + 1, Reason: fmt.Sprintf("item %d is not a JSON object", i+1)})
				continue
			}
			rec := record(file, i+1, m, "json")
			rec.Key = fmt.Sprintf("%s#%d", file, i+1)
			recs = append(recs, rec)
		}
		return recs, bad, nil
	}
	m, err := adapters.DecodeObject(trimmed)
	if err != nil {
		return nil, nil, fmt.Errorf("JSON: want an object or an array of objects: %w", err)
	}
	return []adapters.Record{record(file, 1, m, "json")}, nil, nil
}

func decodeNDJSON(file string, data []byte) ([]adapters.Record, []RowError, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var recs []adapters.Record
	var bad []RowError
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		m, err := adapters.DecodeObject(text)
		if err != nil || m == nil {
			reason := "not a JSON object"
			if err != nil {
				reason = err.Error()
			}
			bad = append(bad, RowError{Line: line, Reason: reason})
			continue
		}
		recs = append(recs, record(file, line, m, "ndjson"))
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read NDJSON: %w", err)
	}
	return recs, bad, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
