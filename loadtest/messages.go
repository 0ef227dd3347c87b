package loadtest

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// entry is one resource of a message bundle under the sender's own URL.
type entry struct {
	url     string // resource URL without /_history (the entry id)
	version string // version the server issued last; "" for a new resource
	res     *el    // the resource; res.name is its FHIR type (Other for Koppeltaal Others)
}

func (e entry) selfLink() string { return versioned(e.url, e.version) }

func versioned(url, version string) string {
	if version == "" {
		return url
	}
	return url + "/_history/" + version
}

// message is one Koppeltaal message the load tool posts.
type message struct {
	domain     string
	event      string
	identifier string // MessageHeader.identifier: lower-case UUID (fits [a-z0-9\-\.]{1,36})
	feedID     string
	mhURL      string
	patient    string // MessageHeader#Patient reference ("" for none)
	source     string // application name
	endpoint   string
	focal      entry   // the resource MessageHeader.data points at
	others     []entry // the other resources, in bundle order
}

func (m *message) header(now time.Time) *el {
	mh := &el{name: "MessageHeader"}
	if m.patient != "" {
		mh.kids = append(mh.kids, ext("MessageHeader#Patient", ref("valueResource", m.patient)))
	}
	mh.kids = append(mh.kids,
		prim("identifier", m.identifier),
		prim("timestamp", now.Format(time.RFC3339)),
		node("event", prim("system", ktBase+"MessageEvents"), prim("code", m.event), prim("display", m.event)),
		node("source", prim("name", m.source), prim("software", "koppelpoort-load"), prim("version", "1.3.5"), prim("endpoint", m.endpoint)),
		many(ref("data", m.focal.selfLink())),
	)
	return mh
}

// render writes the message as a DSTU1 Atom feed (xml) or JSON Bundle (json).
func (m *message) render(format string, now time.Time) []byte {
	var b bytes.Buffer
	b.Grow(8 << 10)
	entries := append([]entry{m.focal}, m.others...)
	mh := m.header(now)
	ts := now.Format(time.RFC3339)
	if format == "xml" {
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><feed xmlns="` + atomNS + `"><id>` + m.feedID + `</id><updated>` + ts + `</updated>`)
		b.WriteString(`<category term="` + ktBase + `Domain#`)
		xmlEscape(&b, m.domain)
		b.WriteString(`" label="`)
		xmlEscape(&b, m.domain)
		b.WriteString(`" scheme="http://hl7.org/fhir/tag/security"/><category term="http://hl7.org/fhir/tag/message" scheme="http://hl7.org/fhir/tag"/>`)
		b.WriteString(`<entry><id>` + m.mhURL + `</id><content type="text/xml">`)
		mh.writeXML(&b, true)
		b.WriteString(`</content></entry>`)
		for _, e := range entries {
			b.WriteString(`<entry><id>` + e.url + `</id><link rel="self" href="` + e.selfLink() + `"/><content type="text/xml">`)
			e.res.writeXML(&b, true)
			b.WriteString(`</content></entry>`)
		}
		b.WriteString(`</feed>`)
		return b.Bytes()
	}
	b.WriteString(`{"resourceType":"Bundle","id":"` + m.feedID + `","updated":"` + ts + `","category":[{"term":"` + ktBase + `Domain#`)
	b.WriteString(jsonInner(m.domain) + `","label":"` + jsonInner(m.domain) + `","scheme":"http://hl7.org/fhir/tag/security"},{"term":"http://hl7.org/fhir/tag/message","scheme":"http://hl7.org/fhir/tag"}],"entry":[`)
	b.WriteString(`{"id":"` + m.mhURL + `","content":`)
	mh.writeJSON(&b, "MessageHeader")
	b.WriteString(`}`)
	for _, e := range entries {
		b.WriteString(`,{"id":"` + e.url + `","link":[{"rel":"self","href":"` + e.selfLink() + `"}],"content":`)
		e.res.writeJSON(&b, e.res.name)
		b.WriteString(`}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// jsonInner is s JSON-escaped without the quotes.
func jsonInner(s string) string {
	var b bytes.Buffer
	jsonString(&b, s)
	return b.String()[1 : b.Len()-1]
}

var (
	givenNames  = []string{"Anouk", "Daan", "Fleur", "Sem", "Lotte", "Noah", "Sanne", "Bram", "Iris", "Jesse", "Eva", "Thijs"}
	familyNames = []string{"de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos"}
	definitions = []struct{ id, kind string }{
		{"MHC-SF", "Questionnaire"}, {"KTSTESTGAME", "Game"}, {"PHQ-9", "Questionnaire"}, {"SLAAP-ELEARN", "ELearning"}, {"GAD-7", "Questionnaire"}, {"MINDFUL-GAME", "Game"},
	}
	activityStatus = []string{"Available", "InProgress", "Completed"}
)

func patientResource(n int, rev int) *el {
	given := givenNames[n%len(givenNames)]
	family := familyNames[(n/len(givenNames))%len(familyNames)]
	birth := time.Date(1950+n%55, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC)
	return node("Patient",
		extVal("Patient#Age", "valueInteger", 2026-birth.Year()),
		many(node("identifier", prim("use", "secondary"), prim("system", "http://fhir.nl/fhir/NamingSystem/loadtest-patientnumber"), prim("value", "P"+strconv.Itoa(n)))),
		many(node("name", prim("use", "official"), many(prim("family", family)), many(prim("given", given)), prim("text", given+" "+family))),
		many(node("telecom", prim("system", "email"), prim("value", fmt.Sprintf("patient%d.r%d@loadtest.example", n, rev)), prim("use", "home"))),
		codeable("gender", "http://hl7.org/fhir/v3/AdministrativeGender", []string{"F", "M", "UN"}[n%3], []string{"Female", "Male", "Undetermined"}[n%3]),
		prim("birthDate", birth.Format("2006-01-02")),
		prim("active", true),
	)
}

func practitionerResource(domain string) *el {
	return node("Practitioner",
		many(node("identifier", prim("use", "secondary"), prim("system", "http://fhir.nl/fhir/NamingSystem/loadtest-caregiver"), prim("value", "C-"+domain))),
		node("name", many(prim("family", "Behandelaar")), many(prim("given", "Nina"))),
		many(node("telecom", prim("system", "email"), prim("value", "behandelaar@"+domain+".loadtest.example"), prim("use", "work"))),
	)
}

func organizationResource(domain string) *el {
	return node("Organization",
		many(node("identifier", prim("system", "http://fhir.nl/fhir/NamingSystem/agb-z"), prim("value", "7373"+strconv.Itoa(len(domain))+"403"))),
		prim("name", "GGZ Instelling "+domain),
	)
}

func careTeamResource(name, patientURL, orgURL string, rev int) *el {
	return node("Other",
		ext("CareTeam#CareTeamIdentifier", node("valueIdentifier", prim("use", "secondary"), prim("system", "http://fhir.nl/fhir/NamingSystem/loadtest-careteam"), prim("value", name))),
		extVal("CareTeam#Name", "valueString", fmt.Sprintf("%s (r%d)", name, rev)),
		ext("CareTeam#Status", node("valueCoding", prim("system", ktBase+"CareTeamStatus"), prim("code", "active"), prim("display", "Active"))),
		ext("CareTeam#Subject", ref("valueResource", patientURL)),
		ext("CareTeam#ManagingOrganization", ref("valueResource", orgURL)),
		codeable("code", ktBase+"OtherResourceUsage", "CareTeam", "CareTeam"),
	)
}

// carePlanResource builds a realistic CarePlan: the practitioner and the care
// teams as participants and n activities, each with sub-activities, its own
// participant with a care team, a start date and a status.
func carePlanResource(patientURL, practURL string, careTeams []string, activityIDs []string, rev int, notes string) *el {
	cp := node("CarePlan", ref("patient", patientURL), prim("status", "active"))
	part := many(node("participant"))
	for _, ct := range careTeams {
		part.kids = append(part.kids, ext("CarePlan#ParticipantCareTeam", ref("valueResource", ct)))
	}
	part.kids = append(part.kids, codeable("role", ktBase+"CarePlanParticipantRole", "Caregiver", "Caregiver"), ref("member", practURL))
	cp.kids = append(cp.kids, part)
	start := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, id := range activityIDs {
		def := definitions[i%len(definitions)]
		status := activityStatus[(i+rev)%len(activityStatus)]
		a := withAttr(many(node("activity")), "id", id)
		a.kids = append(a.kids,
			extVal("CarePlan#ActivityIdentifier", "valueString", id),
			extVal("CarePlan#ActivityDefinition", "valueString", def.id),
			ext("CarePlan#ActivityKind", node("valueCoding", prim("system", ktBase+"ActivityKind"), prim("code", def.kind), prim("display", def.kind))),
			extVal("CarePlan#StartDate", "valueDateTime", start.Add(time.Duration(i)*7*24*time.Hour).Format(time.RFC3339)),
			ext("CarePlan#ActivityStatus", node("valueCoding", prim("system", ktBase+"CarePlanActivityStatus"), prim("code", status), prim("display", status))),
		)
		for s := range 2 {
			a.kids = append(a.kids, ext("CarePlan#SubActivity",
				extVal("CarePlan#SubActivityIdentifier", "valueString", fmt.Sprintf("%s-sub%d", id, s+1)),
				ext("CarePlan#SubActivityStatus", node("valueCoding", prim("system", ktBase+"CarePlanActivityStatus"), prim("code", "Available"), prim("display", "Available"))),
			))
		}
		p := ext("CarePlan#Participant",
			ext("CarePlan#ParticipantMember", ref("valueResource", practURL)),
			ext("CarePlan#ParticipantRole", node("valueCodeableConcept", many(coding(ktBase+"CarePlanParticipantRole", "Requester", "Requester")))),
		)
		if len(careTeams) > 0 {
			p.kids = append(p.kids, ext("CarePlan#ParticipantCareTeam", ref("valueResource", careTeams[i%len(careTeams)])))
		}
		a.kids = append(a.kids, p, prim("prohibited", false))
		if notes != "" {
			a.kids = append(a.kids, prim("notes", notes))
		}
		a.kids = append(a.kids, node("simple", prim("category", "procedure"), many(ref("performer", patientURL))))
		cp.kids = append(cp.kids, a)
	}
	return cp
}

func activityStatusResource(activityID, status string, pct int) *el {
	return node("Other",
		extVal("CarePlanActivityStatus#Activity", "valueString", activityID),
		ext("CarePlanActivityStatus#ActivityStatus", node("valueCoding", prim("system", ktBase+"CarePlanActivityStatus"), prim("code", status), prim("display", status))),
		extVal("CarePlanActivityStatus#PercentageCompleted", "valueInteger", pct),
		codeable("code", ktBase+"OtherResourceUsage", "CarePlanActivityStatus", "CarePlanActivityStatus"),
	)
}
