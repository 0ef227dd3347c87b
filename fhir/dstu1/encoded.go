package dstu1

// EncodedEntries are bundle entries written once, in both wire formats, to be
// appended to bundles written later. A Koppeltaal server sends one stored
// message to several recipients, each several times (claim, acknowledgement,
// read); only the first entry (the MessageHeader) and the feed metadata differ
// per recipient. Keeping the other entries as bytes instead of a parsed tree
// avoids re-parsing and re-writing them for every recipient, and bytes cost
// the garbage collector nothing to scan.
//
// EncodedEntries are immutable once made and may be shared between bundles
// and goroutines.
type EncodedEntries struct {
	n    int
	json []byte // the entries as written inside "entry":[...], comma-separated
	xml  []byte // the entries as written inside <feed>, each on a new line at depth 1
}

// EncodeEntriesSized writes entries in both formats (JSON with default options). jsonSize estimates the
// JSON size (for example the length of the body the entries were parsed from; 0 when unknown), so that the
// buffers are allocated once instead of doubled up from a small start.
func EncodeEntriesSized(entries []*Entry, jsonSize int) *EncodedEntries {
	jw := newJSONWriter(make([]byte, 0, max(jsonSize, 2048)), JSONOptions{})
	for i, e := range entries {
		if i > 0 {
			jw.buf = append(jw.buf, ',')
		}
		jw.entry(e)
	}
	// XML of FHIR resources runs to about 1.3 times the JSON.
	xw := xmlWriter{buf: make([]byte, 0, len(jw.buf)*3/2+512), depth: 1}
	for _, e := range entries {
		xw.entry(e)
	}
	return &EncodedEntries{n: len(entries), json: clip(jw.buf), xml: clip(xw.buf)}
}

// clip copies b into a buffer of its own length when more than a quarter of
// its capacity would sit unused in a cache.
func clip(b []byte) []byte {
	if cap(b)-len(b) > len(b)/4 {
		return append(make([]byte, 0, len(b)), b...)
	}
	return b
}

// Len is the number of entries.
func (t *EncodedEntries) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Size is the number of bytes held (allocated, not only used).
func (t *EncodedEntries) Size() int {
	if t == nil {
		return 0
	}
	return cap(t.json) + cap(t.xml)
}

// SetEncodedTail makes the writers append t after the bundle's Entries. The
// tail is output only: it is not part of Entries, Equal or the Koppeltaal
// accessors, and JSON output with non-default JSONOptions writes it as
// encoded (with default options).
func (b *Bundle) SetEncodedTail(t *EncodedEntries) { b.tail = t }

// EncodedTail returns the tail set by SetEncodedTail, or nil.
func (b *Bundle) EncodedTail() *EncodedEntries { return b.tail }

func (t *EncodedEntries) appendJSON(dst []byte, afterEntry bool) []byte {
	if t.Len() == 0 {
		return dst
	}
	if afterEntry {
		dst = append(dst, ',')
	}
	return append(dst, t.json...)
}

func (t *EncodedEntries) appendXML(dst []byte) []byte {
	if t.Len() == 0 {
		return dst
	}
	return append(dst, t.xml...)
}
