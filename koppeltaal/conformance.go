package koppeltaal

import (
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
)

// Extension URLs of the Conformance statement (SPEC.md §12, CLIENTS.md). The OAuth URIs are published
// under the smartplatforms.org URLs the old server used (the Koppeltaal Test Game looks them up there and
// nowhere else), and again under the smarthealthit.org URLs the documents name, for clients written from
// them: clients look an extension up by its URL, so the second pair does not disturb one looking for the first.
const (
	ExtConformanceAuthorize      = "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#authorize"
	ExtConformanceToken          = "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#token"
	ExtConformanceAuthorizeSMART = "http://fhir-registry.smarthealthit.org/Profile/oauth-uris#authorize"
	ExtConformanceTokenSMART     = "http://fhir-registry.smarthealthit.org/Profile/oauth-uris#token"
	ExtConformanceLaunch         = "http://fhir.vitalhealthsoftware.com/Profile/Conformance#Launch"
	conformanceValidatePfx       = "http://fhir.vitalhealthsoftware.com/Profile/Conformance#"
)

// ServerVersion is the Koppeltaal version this server implements, as Conformance.version.
const ServerVersion = "v1.3.5"

// Conformance returns the Conformance statement (SPEC.md §12, CLIENTS.md): name
// "Koppeltaal", fhirVersion 0.0.82, and the OAuth endpoints of this server
// (root is the configured public URL, scheme://host[:port]; never the request's Host).
func (s *Service) Conformance(root string) *dstu1.Resource {
	r := dstu1.NewResource("Conformance")
	for _, v := range []string{"ValidateRequestsAgainstSchema", "ValidateRepliesAgainstSchema", "ValidateRequestsAgainstProfile", "ValidateRepliesAgainstProfile"} {
		r.Add(dstu1.NewExtension(conformanceValidatePfx+v, dstu1.NewPrimitive("valueBoolean", "false")))
	}
	r.Add(
		dstu1.NewPrimitive("version", ServerVersion),
		dstu1.NewPrimitive("name", "Koppeltaal"),
		dstu1.NewPrimitive("publisher", buildinfo.Product),
		dstu1.NewPrimitive("description", "Koppeltaal 1.3.x server (FHIR DSTU1 messaging) implemented by Koppelpoort"),
		dstu1.NewPrimitive("status", "active"),
		dstu1.NewPrimitive("date", s.instant(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))),
		dstu1.NewElement("software", dstu1.NewPrimitive("name", buildinfo.Product), dstu1.NewPrimitive("version", buildinfo.Version())),
		dstu1.NewElement("implementation", dstu1.NewPrimitive("description", "Koppelpoort Koppeltaal server"),
			dstu1.NewPrimitive("url", root+"/FHIR/Koppeltaal")),
		dstu1.NewPrimitive("fhirVersion", "0.0.82"),
		dstu1.NewPrimitive("acceptUnknown", "true"),
		dstu1.NewPrimitive("format", "xml"),
		dstu1.NewPrimitive("format", "json"),
	)
	uri := func(ext, path string) *dstu1.Node {
		return dstu1.NewExtension(ext, dstu1.NewPrimitive("valueUri", root+"/OAuth2/Koppeltaal/"+path))
	}
	// The old server's two first (a client that reads them by position finds them there), then Launch.
	sec := dstu1.NewElement("security",
		uri(ExtConformanceAuthorize, "Authorize"), uri(ExtConformanceToken, "Token"), uri(ExtConformanceLaunch, "Launch"),
		uri(ExtConformanceAuthorizeSMART, "Authorize"), uri(ExtConformanceTokenSMART, "Token"),
		dstu1.NewPrimitive("description", "HTTP Basic with the application-instance credentials, or an OAuth2 Bearer token from the SMART launch."),
	)
	rest := dstu1.NewElement("rest", dstu1.NewPrimitive("mode", "server"), sec)
	mhRes := dstu1.NewElement("resource", dstu1.NewPrimitive("type", "MessageHeader"),
		dstu1.NewElement("operation", dstu1.NewPrimitive("code", "read")),
		dstu1.NewElement("operation", dstu1.NewPrimitive("code", "vread")),
		dstu1.NewElement("operation", dstu1.NewPrimitive("code", "update")),
		dstu1.NewElement("operation", dstu1.NewPrimitive("code", "search-type")))
	for _, p := range []string{"_id", "_count", "_summary", "_query", "Patient", "event", "ProcessingStatus", "identifier"} {
		typ := "token"
		if p == "Patient" {
			typ = "reference"
		}
		if p == "_count" {
			typ = "number"
		}
		mhRes.Add(dstu1.NewElement("searchParam", dstu1.NewPrimitive("name", p), dstu1.NewPrimitive("type", typ)))
	}
	rest.Add(mhRes)
	rest.Add(dstu1.NewElement("operation", dstu1.NewPrimitive("code", "transaction"),
		dstu1.NewPrimitive("documentation", "POST [base]/Mailbox publishes a Koppeltaal message")))
	rest.Add(dstu1.NewElement("query", dstu1.NewPrimitive("name", "MessageHeader.GetNextNewAndClaim"),
		dstu1.NewPrimitive("definition", dstu1.KoppeltaalBase+"Query#MessageHeader.GetNextNewAndClaim"),
		dstu1.NewPrimitive("documentation", "Claims and returns the oldest New message of the caller's mailbox")))
	r.Add(rest)
	msg := dstu1.NewElement("messaging", dstu1.NewPrimitive("endpoint", root+"/FHIR/Koppeltaal/Mailbox"))
	for _, ev := range Events {
		msg.Add(dstu1.NewElement("event",
			dstu1.NewCoding("code", dstu1.SystemMessageEvents, ev, ev),
			dstu1.NewPrimitive("mode", "receiver"),
			dstu1.NewPrimitive("focus", focusOf[ev]),
			dstu1.NewElement("request", dstu1.NewPrimitive("reference", "Profile/MessageHeader")),
			dstu1.NewElement("response", dstu1.NewPrimitive("reference", "Profile/MessageHeader"))))
	}
	r.Add(msg)
	return r
}
