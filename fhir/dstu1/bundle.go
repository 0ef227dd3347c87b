package dstu1

import (
	"slices"
	"strings"
)

// Well-known URLs of the Atom feed and Koppeltaal tags.
const (
	NSAtom         = "http://www.w3.org/2005/Atom"
	NSFHIR         = "http://hl7.org/fhir"
	NSXHTML        = "http://www.w3.org/1999/xhtml"
	NSOpenSearch   = "http://a9.com/-/spec/opensearch/1.1/"
	NSTombstones   = "http://purl.org/atompub/tombstones/1.0"
	SchemeSecurity = "http://hl7.org/fhir/tag/security"
	SchemeTag      = "http://hl7.org/fhir/tag"
	TermMessage    = "http://hl7.org/fhir/tag/message"
	// DomainTermPrefix starts the term of a Koppeltaal domain security tag; the domain name follows.
	DomainTermPrefix = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/Domain#"
	// TermValidateOnly tags a message the server should only check, not process (ARCH 2018 §11.1).
	TermValidateOnly = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/ValidateOnly"
)

// Bundle is a DSTU1 bundle: an Atom feed in XML, a "resourceType":"Bundle" object in JSON.
type Bundle struct {
	ID         string
	Title      string
	Updated    string
	Published  string
	Authors    []Person
	Links      []Link
	Categories []Category
	// TotalResults is the opensearch totalResults; HasTotal says whether it is present.
	TotalResults string
	HasTotal     bool
	Entries      []*Entry
	// tail: entries already encoded, written after Entries (see SetEncodedTail).
	tail *EncodedEntries
}

// Entry is one feed entry. Resource is nil for a deleted entry (Deleted holds the deletion instant).
type Entry struct {
	Title      string
	ID         string
	Updated    string
	Published  string
	Authors    []Person
	Links      []Link
	Categories []Category
	// Summary is the entry summary as XHTML (a div), or "".
	Summary  string
	Resource *Resource
	// Deleted is the "when" of a deleted entry (at:deleted-entry in XML, "deleted" in JSON); "" otherwise.
	Deleted string
}

// Person is an Atom author.
type Person struct {
	Name string
	URI  string
}

// Link is an Atom link (rel self, next, fhir-base, ...).
type Link struct {
	Rel  string
	Href string
}

// Category is an Atom category: a FHIR tag (term, label, scheme).
type Category struct {
	Term   string
	Label  string
	Scheme string
}

// Resource is one FHIR resource; Node is its root element (Node.Name is the resource type).
type Resource struct {
	*Node
}

// NewResource returns an empty resource of type typ (for example "OperationOutcome").
func NewResource(typ string) *Resource { return &Resource{Node: &Node{Name: typ}} }

// Type is the resource element name: "Patient", "Other", ...
func (r *Resource) Type() string {
	if r == nil || r.Node == nil {
		return ""
	}
	return r.Name
}

// systemOtherResourceUsageVZVZ is the OtherResourceUsage system as the architecture document writes it
// (vzvz.nl instead of ggz.koppeltaal.nl); read, never written.
const systemOtherResourceUsageVZVZ = "http://vzvz.nl/fhir/Koppeltaal/OtherResourceUsage"

// KoppeltaalType is the type Koppeltaal routes on: for an Other resource the code from Other.code.coding
// with system OtherResourceUsage (ActivityDefinition, UserMessage, CareTeam, ...); for others Type().
// An Other without that coding returns "Other".
func (r *Resource) KoppeltaalType() string {
	t := r.Type()
	if t != "Other" {
		return t
	}
	var code string
	r.Child("code").Each("coding", func(c *Node) bool {
		if sys := c.Str("system"); sys == SystemOtherResourceUsage || sys == systemOtherResourceUsageVZVZ {
			code = c.Str("code")
			return false
		}
		return true
	})
	if code == "" {
		return t
	}
	return code
}

// SortElements puts every element of the resource (recursively, contained resources included) in DSTU1
// schema order; elements the schema does not know go last, in their order. Parsers keep what was received;
// call this on resources built by hand before writing XML, whose element order the schema fixes.
func (r *Resource) SortElements() {
	if r == nil || r.Node == nil {
		return
	}
	t, ok := resourceType(r.Name)
	if !ok {
		return
	}
	sortTree(r.Node, t)
}

func sortTree(n *Node, t int) {
	sortSchema(n, t)
	for _, c := range n.Children {
		d, _ := childType(t, c.Name)
		if kindOf(d.typ) == kindInline {
			for _, res := range c.Children {
				if rt, ok := resourceType(res.Name); ok {
					sortTree(res, rt)
				}
			}
			continue
		}
		sortTree(c, d.typ)
	}
}

// Clone returns a deep copy of the resource.
func (r *Resource) Clone() *Resource {
	if r == nil {
		return nil
	}
	return &Resource{Node: r.Node.Clone()}
}

// NewBundle returns an empty bundle with the given feed id.
func NewBundle(id string) *Bundle { return &Bundle{ID: id} }

// NewMessageBundle returns an empty Koppeltaal message bundle: feed id, the domain security tag and the
// FHIR message tag.
func NewMessageBundle(id, domain string) *Bundle {
	b := NewBundle(id)
	b.Categories = []Category{
		{Term: DomainTermPrefix + domain, Label: domain, Scheme: SchemeSecurity},
		{Term: TermMessage, Scheme: SchemeTag},
	}
	return b
}

// AddEntry appends an entry holding r with entry id and self link (either may be ""), and returns it.
func (b *Bundle) AddEntry(r *Resource, id, self string) *Entry {
	e := &Entry{ID: id, Resource: r}
	if self != "" {
		e.Links = []Link{{Rel: "self", Href: self}}
	}
	b.Entries = append(b.Entries, e)
	return e
}

// Domain returns the Koppeltaal domain named in the security tag (category with scheme
// http://hl7.org/fhir/tag/security and term .../Koppeltaal/Domain#<name>). Names may contain spaces.
func (b *Bundle) Domain() (string, bool) {
	for _, c := range b.Categories {
		if c.Scheme == SchemeSecurity && strings.HasPrefix(c.Term, DomainTermPrefix) {
			return c.Term[len(DomainTermPrefix):], true
		}
	}
	return "", false
}

// Domains returns the distinct domain names of the bundle's security tags, in order (a tag repeated with the
// same domain counts once). More than one makes the message's domain ambiguous.
func (b *Bundle) Domains() []string {
	var out []string
	for _, c := range b.Categories {
		if c.Scheme == SchemeSecurity && strings.HasPrefix(c.Term, DomainTermPrefix) {
			if d := c.Term[len(DomainTermPrefix):]; !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// IsMessage reports whether the bundle carries the FHIR message tag.
func (b *Bundle) IsMessage() bool {
	for _, c := range b.Categories {
		if c.Term == TermMessage {
			return true
		}
	}
	return false
}

// ValidateOnly reports whether the bundle carries the Koppeltaal ValidateOnly tag (term
// TermValidateOnly; the scheme, http://hl7.org/fhir/tag, is not required).
func (b *Bundle) ValidateOnly() bool {
	for _, c := range b.Categories {
		if c.Term == TermValidateOnly {
			return true
		}
	}
	return false
}

// SetUpdated sets the feed's updated instant.
func (b *Bundle) SetUpdated(instant string) { b.Updated = instant }

// Link returns the href of the first feed link with rel, or "".
func (b *Bundle) Link(rel string) string { return findLink(b.Links, rel) }

// SetLink sets (replaces or appends) the feed link with rel.
func (b *Bundle) SetLink(rel, href string) { b.Links = setLink(b.Links, rel, href) }

// MessageHeader returns a view of the first entry's MessageHeader, or nil when the first entry is not
// a MessageHeader (Koppeltaal requires the MessageHeader first).
func (b *Bundle) MessageHeader() *MessageHeader {
	if len(b.Entries) == 0 || b.Entries[0].Resource.Type() != "MessageHeader" {
		return nil
	}
	return &MessageHeader{Resource: b.Entries[0].Resource}
}

// Clone returns a deep copy of the bundle.
func (b *Bundle) Clone() *Bundle {
	if b == nil {
		return nil
	}
	c := *b
	c.Authors = append([]Person(nil), b.Authors...)
	c.Links = append([]Link(nil), b.Links...)
	c.Categories = append([]Category(nil), b.Categories...)
	if b.Entries != nil {
		c.Entries = make([]*Entry, len(b.Entries))
		for i, e := range b.Entries {
			c.Entries[i] = e.Clone()
		}
	}
	return &c
}

// Clone returns a deep copy of the entry.
func (e *Entry) Clone() *Entry {
	if e == nil {
		return nil
	}
	c := *e
	c.Authors = append([]Person(nil), e.Authors...)
	c.Links = append([]Link(nil), e.Links...)
	c.Categories = append([]Category(nil), e.Categories...)
	c.Resource = e.Resource.Clone()
	return &c
}

// SelfLink returns the href of the entry's link rel="self", or "".
func (e *Entry) SelfLink() string { return findLink(e.Links, "self") }

// SetSelfLink sets (replaces or appends) the entry's self link.
func (e *Entry) SetSelfLink(href string) { e.Links = setLink(e.Links, "self", href) }

// SetID sets the entry id.
func (e *Entry) SetID(id string) { e.ID = id }

// SetTitle sets the entry title.
func (e *Entry) SetTitle(title string) { e.Title = title }

// SetUpdated sets the entry's updated instant.
func (e *Entry) SetUpdated(instant string) { e.Updated = instant }

// ResourceType returns the Koppeltaal type of the entry's resource (see Resource.KoppeltaalType), or "".
func (e *Entry) ResourceType() string { return e.Resource.KoppeltaalType() }

// StripVersion removes "/_history/<version>" from the entry's self link and reports whether it changed.
func (e *Entry) StripVersion() bool {
	for i := range e.Links {
		if e.Links[i].Rel == "self" {
			base, v := SplitHistory(e.Links[i].Href)
			if v != "" {
				e.Links[i].Href = base
				return true
			}
		}
	}
	return false
}

// StripResourceVersions removes the version from the self link of every resource entry (all but the
// MessageHeader) for which keep returns false; keep may be nil. It returns the number of links changed.
// Koppeltaal 1.3.3 recipients get only the focal resource versioned: see StripNonFocalVersions.
func (b *Bundle) StripResourceVersions(keep func(*Entry) bool) int {
	n := 0
	for _, e := range b.Entries {
		if e.Resource.Type() == "MessageHeader" || (keep != nil && keep(e)) {
			continue
		}
		if e.StripVersion() {
			n++
		}
	}
	return n
}

// StripNonFocalVersions removes versions from all resource self links except the focal resource's (the
// entry whose unversioned self link equals the unversioned MessageHeader data[0] reference), the form a
// Koppeltaal 1.3.3 recipient expects. It returns the number of links changed.
func (b *Bundle) StripNonFocalVersions() int {
	focal := ""
	if mh := b.MessageHeader(); mh != nil {
		if d := mh.Data(); len(d) > 0 {
			focal, _ = SplitHistory(d[0])
		}
	}
	return b.StripResourceVersions(func(e *Entry) bool {
		base, _ := SplitHistory(e.SelfLink())
		return focal != "" && base == focal
	})
}

// SplitHistory splits ".../Patient/1/_history/<version>" into the base URL and the version. A URL without
// "/_history/" is returned whole with an empty version.
func SplitHistory(url string) (base, version string) {
	i := strings.LastIndex(url, "/_history/")
	if i < 0 {
		return url, ""
	}
	return url[:i], url[i+len("/_history/"):]
}

func findLink(links []Link, rel string) string {
	for _, l := range links {
		if l.Rel == rel {
			return l.Href
		}
	}
	return ""
}

func setLink(links []Link, rel, href string) []Link {
	for i := range links {
		if links[i].Rel == rel {
			links[i].Href = href
			return links
		}
	}
	return append(links, Link{Rel: rel, Href: href})
}
