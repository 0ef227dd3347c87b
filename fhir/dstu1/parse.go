package dstu1

// Entry points: parse a bundle or a single resource in either wire form, and encode one. The format
// normally comes from the Content-Type (FormatFromMediaType), with Sniff as the fallback.

// ParseBundle parses a bundle (Atom feed XML or DSTU1 JSON Bundle) with the default limits.
func ParseBundle(data []byte, f Format) (*Bundle, error) { return Limits{}.ParseBundle(data, f) }

// ParseResource parses a single resource (not a bundle) with the default limits.
func ParseResource(data []byte, f Format) (*Resource, error) { return Limits{}.ParseResource(data, f) }

// ParseBundle parses a bundle in format f within the limits l.
func (l Limits) ParseBundle(data []byte, f Format) (*Bundle, error) {
	l = l.withDefaults()
	if err := l.precheck(data, f); err != nil {
		return nil, err
	}
	switch f {
	case FormatXML:
		r := newXMLReader(data, l)
		return r.bundle()
	case FormatJSON:
		return parseJSONBundle(data, l)
	}
	return nil, unknownFormat(f)
}

// ParseResource parses a single resource in format f within the limits l. The XML root may be in the FHIR
// namespace or, as the SoapUI Koppeltaal examples do, in the Atom namespace with FHIR-namespaced children.
func (l Limits) ParseResource(data []byte, f Format) (*Resource, error) {
	l = l.withDefaults()
	if err := l.precheck(data, f); err != nil {
		return nil, err
	}
	switch f {
	case FormatXML:
		r := newXMLReader(data, l)
		return r.singleResource()
	case FormatJSON:
		return parseJSONResource(data, l)
	}
	return nil, unknownFormat(f)
}

// unknownFormat is the error for a format that is neither XML nor JSON (for example Sniff's 0 for a body
// that starts with neither '<' nor '{').
func unknownFormat(f Format) error {
	return &SyntaxError{Format: f, Err: ErrNotFHIR, Msg: "the body is neither XML nor JSON"}
}

// Encode returns the bundle in format f (XML for anything but FormatJSON).
func (b *Bundle) Encode(f Format) []byte {
	if f == FormatJSON {
		return b.JSON()
	}
	return b.XML()
}

// Encode returns the resource in format f (XML for anything but FormatJSON).
func (r *Resource) Encode(f Format) []byte {
	if f == FormatJSON {
		return r.JSON()
	}
	return r.XML()
}
