package dstu1

import (
	"fmt"
	"strings"
)

// Koppeltaal URLs.
const (
	// KoppeltaalBase starts every Koppeltaal extension, code system and profile URL.
	KoppeltaalBase = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/"
	// SystemOtherResourceUsage codes the real type of an Other resource (ActivityDefinition, CareTeam, ...).
	SystemOtherResourceUsage = KoppeltaalBase + "OtherResourceUsage"
	// SystemMessageEvents codes MessageHeader.event.
	SystemMessageEvents = KoppeltaalBase + "MessageEvents"
	// SystemProcessingStatus codes the ProcessingStatus values.
	SystemProcessingStatus = KoppeltaalBase + "ProcessingStatus"
	// SystemIssueType codes OperationOutcome.issue.type.
	SystemIssueType = "http://hl7.org/fhir/issue-type"

	ExtMessageHeaderPatient        = KoppeltaalBase + "MessageHeader#Patient"
	ExtProcessingStatus            = KoppeltaalBase + "MessageHeader#ProcessingStatus"
	ExtProcessingStatusStatus      = KoppeltaalBase + "MessageHeader#ProcessingStatusStatus"
	ExtProcessingStatusLastChanged = KoppeltaalBase + "MessageHeader#ProcessingStatusStatusLastChanged"
	ExtProcessingStatusException   = KoppeltaalBase + "MessageHeader#ProcessingStatusException"
	ExtIsExpired                   = KoppeltaalBase + "MessageHeader#IsExpired"
	ExtIssueResource               = KoppeltaalBase + "OperationOutcome#IssueResource"
)

// Koppeltaal Other resource kinds (OtherResourceUsage codes).
const (
	KindActivityDefinition     = "ActivityDefinition"
	KindUserMessage            = "UserMessage"
	KindCarePlanActivityStatus = "CarePlanActivityStatus"
	KindCarePlanActivityResult = "CarePlanActivityResult"
	KindStorageItem            = "StorageItem"
	KindCareTeam               = "CareTeam"
	// KindBlackBoxState is a module's own state (an opaque blob under its own URL) that the Koppeltaal Test Game
	// sends with its status updates; not in the value set, but deployed (CLIENTS.md).
	KindBlackBoxState = "BlackBoxState"
)

// MessageResourceTypes are the resource types a Koppeltaal 1.3.5 message may carry besides its MessageHeader
// (SPEC.md §4.5); the last four are Other resources told apart by their OtherResourceUsage code.
var MessageResourceTypes = []string{"Patient", "Practitioner", "RelatedPerson", "Organization", "Device", "CarePlan",
	KindCarePlanActivityStatus, KindUserMessage, KindCareTeam, KindActivityDefinition}

// extURLs returns both accepted forms of a Koppeltaal extension URL: ".../Koppeltaal/X#Y" and the older
// ".../Koppeltaal/Profile/X#Y" (SPEC §17 item 13). Output always uses the first.
func extURLs(canonical string) [2]string {
	return [2]string{canonical, KoppeltaalBase + "Profile/" + strings.TrimPrefix(canonical, KoppeltaalBase)}
}

// ExtensionURLs returns the URL forms accepted for a Koppeltaal extension given in canonical form:
// the canonical ".../Koppeltaal/X#Y" and ".../Koppeltaal/Profile/X#Y". Use it as
// node.Extension(ExtensionURLs(u)...).
func ExtensionURLs(canonical string) []string {
	u := extURLs(canonical)
	return u[:]
}

// CanonicalExtensionURL maps the ".../Koppeltaal/Profile/X#Y" form of a Koppeltaal extension URL to
// ".../Koppeltaal/X#Y"; other URLs are returned unchanged.
func CanonicalExtensionURL(url string) string {
	if rest, ok := strings.CutPrefix(url, KoppeltaalBase+"Profile/"); ok && strings.Contains(rest, "#") {
		return KoppeltaalBase + rest
	}
	return url
}

func (n *Node) ktExtension(canonical string) *Node {
	u := extURLs(canonical)
	return n.Extension(u[0], u[1])
}

// Coding is a code with its system and display.
type Coding struct {
	System  string
	Code    string
	Display string
}

// Source is MessageHeader.source.
type Source struct {
	Name     string
	Software string
	Version  string
	Endpoint string
}

// ProcessingStatus is the Koppeltaal MessageHeader#ProcessingStatus extension.
type ProcessingStatus struct {
	Status      string // New, Claimed, Success, Failed, ReplacedByNewVersion, MaximumRetriesExceeded
	LastChanged string // instant
	Exception   string // required with Failed
}

// MessageHeader is a typed view of a MessageHeader resource. Reads scan only the header's own children;
// setters change the underlying nodes, so the bundle writes the change.
type MessageHeader struct {
	*Resource
}

// AsMessageHeader returns a MessageHeader view of r, or nil when r is not a MessageHeader.
func AsMessageHeader(r *Resource) *MessageHeader {
	if r.Type() != "MessageHeader" {
		return nil
	}
	return &MessageHeader{Resource: r}
}

// Identifier is MessageHeader.identifier.
func (m *MessageHeader) Identifier() string { return m.Str("identifier") }

// Timestamp is MessageHeader.timestamp.
func (m *MessageHeader) Timestamp() string { return m.Str("timestamp") }

// Event is MessageHeader.event.
func (m *MessageHeader) Event() Coding {
	e := m.Child("event")
	return Coding{System: e.Str("system"), Code: e.Str("code"), Display: e.Str("display")}
}

// EventCode is MessageHeader.event.code (the message type, e.g. CreateOrUpdateCarePlan).
func (m *MessageHeader) EventCode() string { return m.Str("event", "code") }

// Source is MessageHeader.source.
func (m *MessageHeader) Source() Source {
	s := m.Child("source")
	return Source{Name: s.Str("name"), Software: s.Str("software"), Version: s.Str("version"), Endpoint: s.Str("endpoint")}
}

// Data returns the data[i].reference values in order.
func (m *MessageHeader) Data() []string {
	var out []string
	m.Each("data", func(d *Node) bool { out = append(out, d.Str("reference")); return true })
	return out
}

// SetData replaces the reference of data[i].
func (m *MessageHeader) SetData(i int, reference string) error {
	j := 0
	for _, c := range m.Children {
		if c.Name != "data" {
			continue
		}
		if j == i {
			if r := c.Child("reference"); r != nil {
				r.Value, r.HasValue = reference, true
			} else {
				c.Children = append(c.Children, NewPrimitive("reference", reference))
				sortSchema(c, typeResourceReference)
			}
			return nil
		}
		j++
	}
	return fmt.Errorf("set MessageHeader data[%d]: only %d data elements", i, j)
}

// AddData appends a data reference.
func (m *MessageHeader) AddData(reference string) {
	m.Children = append(m.Children, NewReference("data", reference))
	sortSchema(m.Node, typeMessageHeader)
}

// Response returns response.identifier and response.code; ok is false when there is no response.
func (m *MessageHeader) Response() (identifier, code string, ok bool) {
	r := m.Child("response")
	if r == nil {
		return "", "", false
	}
	return r.Str("identifier"), r.Str("code"), true
}

// SetResponse sets response.identifier and response.code (replacing a response element).
func (m *MessageHeader) SetResponse(identifier, code string) {
	m.Remove(func(c *Node) bool { return c.Name == "response" })
	m.Children = append(m.Children, NewElement("response", NewPrimitive("identifier", identifier), NewPrimitive("code", code)))
	sortSchema(m.Node, typeMessageHeader)
}

// Patient returns the reference in the MessageHeader#Patient extension (either URL form), or "".
func (m *MessageHeader) Patient() string {
	return m.ktExtension(ExtMessageHeaderPatient).ExtensionValue().Str("reference")
}

// SetPatient sets the MessageHeader#Patient extension.
func (m *MessageHeader) SetPatient(reference string) {
	m.setKTExtension(ExtMessageHeaderPatient, NewExtension(ExtMessageHeaderPatient, NewReference("valueResource", reference)))
}

// ProcessingStatus returns the ProcessingStatus extension; ok is false when absent. The status is read
// from valueCode, or from valueCoding.code (ARCH13 describes a Coding).
func (m *MessageHeader) ProcessingStatus() (ps ProcessingStatus, ok bool) {
	ext := m.ktExtension(ExtProcessingStatus)
	if ext == nil {
		return ps, false
	}
	if v := ext.ktExtension(ExtProcessingStatusStatus).ExtensionValue(); v != nil {
		if v.Name == "valueCoding" {
			ps.Status = v.Str("code")
		} else {
			ps.Status = v.Value
		}
	}
	ps.LastChanged = ext.ktExtension(ExtProcessingStatusLastChanged).ExtensionValue().Str()
	ps.Exception = ext.ktExtension(ExtProcessingStatusException).ExtensionValue().Str()
	return ps, true
}

// SetProcessingStatus replaces the ProcessingStatus extension (status as valueCode, last-changed as
// valueInstant, exception as valueString; empty parts are left out) and puts the Koppeltaal extensions in
// the order the server emits them.
func (m *MessageHeader) SetProcessingStatus(ps ProcessingStatus) {
	ext := NewExtension(ExtProcessingStatus)
	if ps.Status != "" {
		ext.Add(NewExtension(ExtProcessingStatusStatus, NewPrimitive("valueCode", ps.Status)))
	}
	if ps.LastChanged != "" {
		ext.Add(NewExtension(ExtProcessingStatusLastChanged, NewPrimitive("valueInstant", ps.LastChanged)))
	}
	if ps.Exception != "" {
		ext.Add(NewExtension(ExtProcessingStatusException, NewPrimitive("valueString", ps.Exception)))
	}
	m.setKTExtension(ExtProcessingStatus, ext)
}

// IsExpired returns the IsExpired extension's value; present is false when the extension is absent
// (Koppeltaal reads absent as false).
func (m *MessageHeader) IsExpired() (expired, present bool) {
	ext := m.ktExtension(ExtIsExpired)
	if ext == nil {
		return false, false
	}
	return ext.ExtensionValue().Str() == "true", true
}

// SetIsExpired sets the IsExpired extension (valueBoolean).
func (m *MessageHeader) SetIsExpired(expired bool) {
	v := "false"
	if expired {
		v = "true"
	}
	m.setKTExtension(ExtIsExpired, NewExtension(ExtIsExpired, NewPrimitive("valueBoolean", v)))
}

// setKTExtension replaces the extension with the canonical URL (either URL form) by ext, then orders the
// Koppeltaal header extensions Patient, ProcessingStatus, IsExpired first (SPEC §4.2 "Observed order"),
// in the non-Profile URL form.
func (m *MessageHeader) setKTExtension(canonical string, ext *Node) {
	urls := extURLs(canonical)
	m.Remove(func(c *Node) bool { return c.Name == "extension" && (c.URL == urls[0] || c.URL == urls[1]) })
	m.Children = append(m.Children, ext)
	m.orderExtensions()
}

func (m *MessageHeader) orderExtensions() {
	var front []*Node
	for _, canonical := range []string{ExtMessageHeaderPatient, ExtProcessingStatus, ExtIsExpired} {
		if e := m.ktExtension(canonical); e != nil {
			e.URL = canonical
			for _, nested := range e.Children {
				if nested.Name == "extension" {
					nested.URL = CanonicalExtensionURL(nested.URL)
				}
			}
			front = append(front, e)
		}
	}
	rest := make([]*Node, 0, len(m.Children))
	for _, c := range m.Children {
		isFront := false
		for _, f := range front {
			if c == f {
				isFront = true
				break
			}
		}
		if !isFront {
			rest = append(rest, c)
		}
	}
	m.Children = append(front, rest...)
}

// MessageHeaderFields are the parts of a new MessageHeader (see NewMessageHeader).
type MessageHeaderFields struct {
	ID                 string // element id attribute of the resource; optional
	Identifier         string
	Timestamp          string
	Event              Coding
	Source             Source
	Data               []string
	ResponseIdentifier string // with ResponseCode: the response element of a reply message
	ResponseCode       string
	Patient            string // MessageHeader#Patient reference; optional
}

// NewMessageHeader builds a MessageHeader resource.
func NewMessageHeader(f MessageHeaderFields) *MessageHeader {
	r := NewResource("MessageHeader")
	r.ID = f.ID
	m := &MessageHeader{Resource: r}
	if f.Patient != "" {
		m.Add(NewExtension(ExtMessageHeaderPatient, NewReference("valueResource", f.Patient)))
	}
	m.Add(NewPrimitive("identifier", f.Identifier), NewPrimitive("timestamp", f.Timestamp))
	ev := NewElement("event")
	addStr(ev, "system", f.Event.System)
	addStr(ev, "code", f.Event.Code)
	addStr(ev, "display", f.Event.Display)
	m.Add(ev)
	if f.ResponseIdentifier != "" || f.ResponseCode != "" {
		m.Add(NewElement("response", NewPrimitive("identifier", f.ResponseIdentifier), NewPrimitive("code", f.ResponseCode)))
	}
	src := NewElement("source")
	addStr(src, "name", f.Source.Name)
	addStr(src, "software", f.Source.Software)
	addStr(src, "version", f.Source.Version)
	addStr(src, "endpoint", f.Source.Endpoint)
	m.Add(src)
	for _, d := range f.Data {
		m.Add(NewReference("data", d))
	}
	return m
}

func addStr(n *Node, name, v string) {
	if v != "" {
		n.Add(NewPrimitive(name, v))
	}
}

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity string // fatal, error, warning, information
	Type     string // issue-type code (conflict, expired, not-supported, exception, ...); optional
	Details  string
	// Resource is the reference put in the Koppeltaal OperationOutcome#IssueResource extension; optional.
	Resource string
	// Location is the element the issue is about, as OperationOutcome.issue.location (a path such as
	// entry[0].content.identifier); optional.
	Location string
}

// NewOperationOutcome builds an OperationOutcome with a generated narrative (the text, or the issue
// details when text is "") and the issues.
func NewOperationOutcome(text string, issues ...Issue) *Resource {
	r := NewResource("OperationOutcome")
	if text == "" {
		var parts []string
		for _, is := range issues {
			parts = append(parts, is.Details)
		}
		text = strings.Join(parts, " ")
	}
	r.Add(NewElement("text", NewPrimitive("status", "generated"), &Node{Name: "div", XHTML: xhtmlParagraph(text)}))
	for _, is := range issues {
		in := NewElement("issue")
		if is.Resource != "" {
			in.Add(NewExtension(ExtIssueResource, NewReference("valueResource", is.Resource)))
		}
		in.Add(NewPrimitive("severity", is.Severity))
		if is.Type != "" {
			in.Add(NewCoding("type", SystemIssueType, is.Type, ""))
		}
		addStr(in, "details", is.Details)
		addStr(in, "location", is.Location)
		r.Add(in)
	}
	return r
}

// xhtmlParagraph returns <div xmlns="http://www.w3.org/1999/xhtml"><p>text</p></div> with text escaped.
func xhtmlParagraph(text string) string {
	var b strings.Builder
	b.WriteString(`<div xmlns="` + NSXHTML + `"><p>`)
	b.Write(appendEscapedText(nil, text))
	b.WriteString(`</p></div>`)
	return b.String()
}
