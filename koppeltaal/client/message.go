package client

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Message is a Koppeltaal message declared without wire details: the event, the focal patient and the
// resources (the first is the focal resource).
type Message struct {
	Event string
	// Patient is the Patient resource id (under the sender's resource base) or full URL (a patient another
	// application published) for the MessageHeader#Patient extension; "" for none.
	Patient   string
	Resources []Resource
}

// Resource is one resource of a declared message.
type Resource struct {
	// Type is a FHIR type (Patient, CarePlan, ...) or a Koppeltaal Other kind (CarePlanActivityStatus,
	// UserMessage, CareTeam, ActivityDefinition).
	Type string
	ID   string
	// Body is the resource content in DSTU1 JSON form, without resourceType and id.
	Body map[string]any
}

// otherKinds are the Koppeltaal resources carried as FHIR Other.
var otherKinds = map[string]bool{dstu1.KindActivityDefinition: true, dstu1.KindUserMessage: true,
	dstu1.KindCarePlanActivityStatus: true, dstu1.KindCarePlanActivityResult: true, dstu1.KindStorageItem: true, dstu1.KindCareTeam: true}

// BuildOptions bind a declared message to a sender.
type BuildOptions struct {
	Domain string
	// ResourceBase is the sender's base for resource URLs, e.g. https://epd.example.nl/fhir/Koppeltaal.
	ResourceBase string
	// SourceName, SourceSoftware and SourceVersion fill MessageHeader.source.
	SourceName, SourceSoftware, SourceVersion string
	// MessageID makes the message identifier deterministic (a retry sends the same identifier); default random.
	MessageID string
	// Version returns the version the server last issued for a resource URL ("" when unknown: a new resource).
	Version func(resourceURL string) string
	// Now is the timestamp; default time.Now.
	Now time.Time
}

// ResourceURL is the URL under which a declared resource is sent: <base>/<Type>/<id> (Other kinds by their
// kind, as in <base>/CarePlanActivityStatus/718), except ActivityDefinitions, which Koppeltaal addresses as
// <base>/Other/ActivityDefinition:<id>.
func ResourceURL(base, typ, id string) string {
	base = strings.TrimRight(base, "/")
	if typ == dstu1.KindActivityDefinition {
		return base + "/Other/" + typ + ":" + id
	}
	return base + "/" + typ + "/" + id
}

// BuildMessage turns a declared message into a DSTU1 message bundle: MessageHeader first (identifier,
// timestamp, event, source, data → the focal resource, MessageHeader#Patient), the domain and message tags,
// and one entry per resource with entry id and self link (versioned when the server issued a version).
// The resources are parsed with the codec (ParseResources), so a resource body that is not valid DSTU1 is
// an error here.
func BuildMessage(m Message, o BuildOptions) (*dstu1.Bundle, error) {
	resources, err := ParseResources(m)
	if err != nil {
		return nil, err
	}
	return BuildMessageFrom(m, resources, o)
}

// ParseResources checks the declared resources and parses their bodies with the codec, in the order of
// m.Resources: the content BuildMessageFrom puts in the message. A route checks a message once with them
// and hands them on, so the message it delivers is built without encoding and parsing them again.
func ParseResources(m Message) ([]*dstu1.Resource, error) {
	if m.Event == "" || len(m.Resources) == 0 {
		return nil, fmt.Errorf("build message: an event and at least one resource are needed")
	}
	out := make([]*dstu1.Resource, len(m.Resources))
	for i, r := range m.Resources {
		if r.ID == "" || r.Type == "" {
			return nil, fmt.Errorf("build message: resource %d needs a type and an id", i+1)
		}
		content := make(map[string]any, len(r.Body)+2)
		for k, v := range r.Body {
			content[k] = v
		}
		if otherKinds[r.Type] {
			content["resourceType"] = "Other"
			if _, ok := content["code"]; !ok {
				content["code"] = map[string]any{"coding": []any{map[string]any{"system": dstu1.SystemOtherResourceUsage, "code": r.Type, "display": r.Type}}}
			}
		} else {
			content["resourceType"] = r.Type
		}
		b, err := json.Marshal(content)
		if err != nil {
			return nil, fmt.Errorf("build message: resource %d (%s): %w", i+1, r.Type, err)
		}
		if out[i], err = dstu1.ParseResource(b, dstu1.FormatJSON); err != nil {
			return nil, fmt.Errorf("build message: the resources are not valid DSTU1: %s %s: %w", r.Type, r.ID, err)
		}
	}
	return out, nil
}

// BuildMessageFrom is BuildMessage with m's resources parsed already (ParseResources of m). The bundle
// holds those trees, not copies; they are not changed.
func BuildMessageFrom(m Message, resources []*dstu1.Resource, o BuildOptions) (*dstu1.Bundle, error) {
	if m.Event == "" || len(m.Resources) == 0 || len(resources) != len(m.Resources) {
		return nil, fmt.Errorf("build message: an event and at least one resource (parsed) are needed")
	}
	if o.Domain == "" || o.ResourceBase == "" {
		return nil, fmt.Errorf("build message: domain and resource base are needed")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	msgID := o.MessageID
	if msgID == "" {
		msgID = uuid.NewString()
	}
	self := func(u string) string {
		if o.Version != nil {
			if v := o.Version(u); v != "" {
				return u + "/_history/" + v
			}
		}
		return u
	}
	urls := make([]string, len(m.Resources))
	for i, r := range m.Resources {
		if r.ID == "" || r.Type == "" {
			return nil, fmt.Errorf("build message: resource %d needs a type and an id", i+1)
		}
		urls[i] = ResourceURL(o.ResourceBase, r.Type, r.ID)
	}
	patient := ""
	if m.Patient != "" {
		patient = self(PatientURL(o.ResourceBase, m.Patient))
	}
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
		Identifier: msgID,
		Timestamp:  now.Format(time.RFC3339),
		Event:      dstu1.Coding{System: dstu1.SystemMessageEvents, Code: m.Event, Display: m.Event},
		Source: dstu1.Source{Name: o.SourceName, Software: orDefault(o.SourceSoftware, "Koppelpoort"),
			Version: orDefault(o.SourceVersion, "1.3.5"), Endpoint: o.ResourceBase},
		Data:    []string{self(urls[0])},
		Patient: patient,
	})
	if o.SourceName == "" {
		// As the message has always been sent: with an empty name rather than none.
		src := mh.Child("source")
		src.Children = append([]*dstu1.Node{dstu1.NewPrimitive("name", "")}, src.Children...)
	}
	b := dstu1.NewMessageBundle("urn:uuid:"+msgID, o.Domain)
	b.Updated = now.Format(time.RFC3339)
	headerURL := strings.TrimRight(o.ResourceBase, "/") + "/MessageHeader/" + msgID
	b.AddEntry(mh.Resource, headerURL, headerURL)
	for i, u := range urls {
		b.AddEntry(resources[i], u, self(u))
	}
	return b, nil
}

// MessageIDFor derives a stable message identifier (a UUID) from an idempotency key.
func MessageIDFor(key string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("koppelpoort:"+key)).String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// IssuedVersions reads the versions a mailbox reply issued: resource URL (without _history) → version.
func IssuedVersions(reply *dstu1.Bundle) map[string]string {
	out := map[string]string{}
	if reply == nil || reply.MessageHeader() == nil {
		return out
	}
	for _, d := range reply.MessageHeader().Data() {
		if base, v := dstu1.SplitHistory(d); v != "" {
			out[base] = v
		}
	}
	return out
}

// PatientURL is the URL of the message's patient: p itself when it is a URL, else a Patient under base.
func PatientURL(base, p string) string {
	if strings.Contains(p, "://") {
		return p
	}
	return ResourceURL(base, "Patient", p)
}

// DSTU1Type is the FHIR resource type a declared resource is sent as: Other for the Koppeltaal kinds
// (CarePlanActivityStatus, UserMessage, CareTeam, ActivityDefinition, ...), the type itself otherwise.
func DSTU1Type(typ string) string {
	if otherKinds[typ] {
		return "Other"
	}
	return typ
}
