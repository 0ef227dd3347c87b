package regress

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

const extAD = dstu1.KoppeltaalBase + "ActivityDefinition#"

// adLocation is what Content-Location must hold after a create or update (CLIENTS.md).
var adLocation = regexp.MustCompile(`^(?:https?://[^/]+)?` + regexp.QuoteMeta(fhirPrefix) + `/Other/ActivityDefinition:[^/]+/_history/[^/]+$`)

func activityCases() []Case {
	list := func(path string) func(t *T) {
		return func(t *T) {
			resp := t.Do(Request{URL: fhir(path), Basic: t.Portal()})
			t.Require(resp.Status == http.StatusOK, "GET "+path, "HTTP 200 with a bundle", resp.Status)
			if t.Format == dstu1.FormatXML {
				t.Expect(bytes.HasPrefix(bytes.TrimLeft(resp.Body, " \r\n\t"), []byte("<feed")), "the first bytes of the reply", "<feed", excerpt(resp.Body, 40))
			}
			b := t.bundle(resp)
			for _, e := range b.Entries {
				t.Equal("the Koppeltaal type of a listed resource", dstu1.KindActivityDefinition, e.ResourceType())
				base, v := dstu1.SplitHistory(e.SelfLink())
				t.Expect(v != "" && strings.Contains(base, "/Other/ActivityDefinition:"), "the self link of a listed definition",
					".../Other/ActivityDefinition:<id>/_history/<version>", e.SelfLink())
			}
		}
	}
	return []Case{
		{ID: "activity/list-search", Title: "Other/_search?code=ActivityDefinition lists definitions as Other coded ActivityDefinition with versioned self links",
			Ref: "CLIENTS.md Calls: list activity definitions; SPEC.md §3.7", Formats: both, Run: list("/Other/_search?code=ActivityDefinition")},
		{ID: "activity/list-plain", Title: "Other?code=ActivityDefinition (no _search, the JS Test Game) lists them too",
			Ref: "CLIENTS.md Calls: list activity definitions", Formats: both, Run: list("/Other?code=ActivityDefinition")},
		{ID: "activity/list-well-formed", Title: "every listed definition is well formed: ActivityName, ActivityDefinitionIdentifier and Application",
			Ref: "CLIENTS.md Calls: list activity definitions (a malformed one crashes the clients' lookups)", Formats: both, Run: func(t *T) {
				t.createAD(t.adOwner(), t.Unique("ad"), false)
				for _, e := range t.listADs(false).Entries {
					r := e.Resource
					id := r.Extension(extAD + "ActivityDefinitionIdentifier").ExtensionValue().Str()
					t.Expect(id != "", "ActivityDefinitionIdentifier of "+e.SelfLink(), "a valueString", "absent")
					t.Expect(r.Extension(extAD+"ActivityName").ExtensionValue().Str() != "", "ActivityName of "+e.SelfLink(), "a valueString", "absent")
					t.Expect(r.Extension(extAD+"Application").ExtensionValue() != nil, "Application of "+e.SelfLink(), "a valueResource", "absent")
				}
			}},
		{ID: "activity/create", Title: "POST Other creates a definition: 2xx with Content-Location …/Other/ActivityDefinition:<id>/_history/<version>",
			Ref: "CLIENTS.md Calls: create activity definition", Formats: both, Run: func(t *T) {
				loc := t.createAD(t.adOwner(), t.Unique("ad"), false)
				found := false
				for _, e := range t.listADs(false).Entries {
					found = found || sameURL(e.SelfLink(), loc)
				}
				t.Expect(found, "the default list after the create", "an entry whose self link is "+loc, "none")
			}},
		{ID: "activity/read", Title: "GET of the Content-Location returns the definition",
			Ref: "SPEC.md §3.7 (TA §URL opbouw: GET …/Other/ActivityDefinition:<id>/_history/<v>)", Formats: both, Run: func(t *T) {
				id := t.Unique("ad")
				loc := t.createAD(t.adOwner(), id, false)
				resp := t.Do(Request{URL: loc, Basic: t.Portal()})
				t.Require(resp.Status == http.StatusOK, "GET "+loc, "HTTP 200", resp.Status)
				r := t.resource(resp)
				t.Equal("ActivityDefinitionIdentifier of the definition read", id, r.Extension(extAD+"ActivityDefinitionIdentifier").ExtensionValue().Str())
			}},
		{ID: "activity/update", Title: "PUT to the Content-Location's path updates it: 2xx, a new Content-Location, a version greater as a string",
			Ref: "CLIENTS.md Calls: update activity definition", Formats: both, Run: func(t *T) {
				id := t.Unique("ad")
				o := t.adOwner()
				loc := t.createAD(o, id, false)
				next := t.updateAD(o, loc, id, false)
				_, v1 := dstu1.SplitHistory(loc)
				_, v2 := dstu1.SplitHistory(next)
				t.Expect(v2 > v1, "the version after the update", "greater than "+v1+" as a string", v2)
			}},
		{ID: "activity/update-stale", Title: "PUT to an outdated version gets 409 with exactly \"The specified resource version is not correct\"",
			Ref: "CLIENTS.md Error texts clients look for (the same text for ActivityDefinition PUT)", Formats: both, Run: func(t *T) {
				id := t.Unique("ad")
				o := t.adOwner()
				loc := t.createAD(o, id, false)
				t.updateAD(o, loc, id, false)
				resp := t.Do(Request{Method: http.MethodPut, URL: pathOf(loc), Basic: o.acct, Body: t.adBody(id, o.app, true)})
				details := t.outcome(resp, http.StatusConflict)
				t.Expect(len(details) > 0 && details[0] == textStaleVersion, "issue[0].details", `"`+textStaleVersion+`"`, details)
			}},
		{ID: "activity/archive", Title: "an archived definition (IsArchived true) drops out of the default list and stays in includearchived=yes",
			Ref: "CLIENTS.md Calls: update activity definition; SPEC.md §3.7", Formats: both, Run: func(t *T) {
				id := t.Unique("ad")
				o := t.adOwner()
				loc := t.updateAD(o, t.createAD(o, id, false), id, true)
				has := func(b *dstu1.Bundle) bool {
					for _, e := range b.Entries {
						if sameURL(e.SelfLink(), loc) {
							return true
						}
					}
					return false
				}
				t.Expect(!has(t.listADs(false)), "the default list", "without the archived definition", "it is listed")
				t.Expect(has(t.listADs(true)), "the list with includearchived=yes", "with the archived definition", "it is missing")
			}},
		{ID: "activity/unknown-application", Title: "a definition naming an application the server does not know is accepted",
			Ref: "CLIENTS.md Calls: update activity definition", Formats: both, Run: func(t *T) {
				t.createAD(adOwner{acct: t.Portal(), app: t.Unique("unknown-app")}, t.Unique("ad"), true)
			}},
		{ID: "activity/duplicate-identifier", Title: "a second definition with an identifier already used in the domain gets 409",
			Ref: "SPEC.md §3.7 (the identifier is unique per domain)", Formats: both, Run: func(t *T) {
				id := t.Unique("ad")
				o := t.adOwner()
				t.createAD(o, id, false)
				t.outcome(t.Do(Request{Method: http.MethodPost, URL: fhir("/Other"), Basic: o.acct, Body: t.adBody(id, o.app, false)}), http.StatusConflict)
			}},
		{ID: "activity/published", Title: "a created definition is published to subscribers as a CreateOrUpdateActivityDefinition with source.software and no Patient",
			Ref: "SPEC.md §3.7 (the server publishes CreateOrUpdateActivityDefinition)", Formats: both, Needs: []Capability{CapModule}, Run: func(t *T) {
				loc := t.createAD(t.adOwner(), t.Unique("ad"), false)
				mod := &t.s.cfg.Module.Account
				q := url.Values{"event": {"CreateOrUpdateActivityDefinition"}}
				var msg *dstu1.Bundle
				t.Eventually(t.s.cfg.DeliveryWait, func() bool {
					for range 50 { // the module's queue may hold definitions of earlier runs: take them off
						b := t.bundle(t.Do(Request{URL: claimURL("", q), Basic: mod}))
						if len(b.Entries) == 0 {
							return false
						}
						t.ack(mod, b, "Success", "")
						if sameURL(first(b.MessageHeader().Data()), loc) {
							msg = b
							return true
						}
					}
					return false
				})
				t.Require(msg != nil, "the module's CreateOrUpdateActivityDefinition messages", "one for "+loc+" (is the module subscribed to it?)", "none")
				mh := msg.MessageHeader()
				t.Expect(mh.Source().Software != "", "source.software of the server's message (DSTU1 1..1)", "non-empty (the old server wrote Koppeltaal)", mh.Source().Software)
				t.Equal("MessageHeader#Patient of the server's message", "", mh.Patient())
			}},
	}
}

// adBody is an ActivityDefinition as the Python connector creates it, in the case's format.
func (t *T) adBody(identifier, application string, archived bool) []byte {
	ext := func(name, key string, v any) map[string]any { return map[string]any{"url": extAD + name, key: v} }
	res := map[string]any{
		"resourceType": "Other",
		"code":         map[string]any{"coding": []any{map[string]any{"system": dstu1.SystemOtherResourceUsage, "code": "ActivityDefinition", "display": "ActivityDefinition"}}},
		"extension": []any{
			ext("Application", "valueResource", map[string]any{"display": application}),
			ext("ActivityDefinitionIdentifier", "valueString", identifier),
			ext("ActivityKind", "valueCoding", map[string]any{"system": dstu1.KoppeltaalBase + "ActivityKind", "code": "ELearning", "display": "E-Learning"}),
			ext("ActivityName", "valueString", "Regress "+identifier),
			ext("ActivityDescription", "valueString", "created by koppelpoort regress"),
			ext("DefaultPerformer", "valueCoding", map[string]any{"system": dstu1.KoppeltaalBase + "ActivityPerformer", "code": "Patient", "display": "Patient"}),
			ext("LaunchType", "valueCode", "Web"),
			ext("IsActive", "valueBoolean", true),
			ext("IsDomainSpecific", "valueBoolean", true),
			ext("IsArchived", "valueBoolean", archived),
		},
	}
	b, _ := json.Marshal(res)
	r, err := dstu1.ParseResource(b, dstu1.FormatJSON)
	if err != nil {
		t.Fatalf("building the ActivityDefinition: %v", err)
	}
	return r.Encode(t.Format)
}

// adOwner is who creates the suite's definitions: an instance may define activities of its own
// application only, so the module's instance naming its own application; without a module the portal
// naming an application the server does not know (as the Python connector's tests do).
type adOwner struct {
	acct *Account
	app  string
}

func (t *T) adOwner() adOwner {
	if t.s.cfg.Module != nil {
		return adOwner{acct: t.moduleAccount(), app: t.module().ClientID}
	}
	return adOwner{acct: t.Portal(), app: "regress-app-" + t.s.run}
}

// createAD POSTs a definition as o and returns its Content-Location.
func (t *T) createAD(o adOwner, identifier string, archived bool) string {
	resp := t.Do(Request{Method: http.MethodPost, URL: fhir("/Other"), Basic: o.acct, Body: t.adBody(identifier, o.app, archived)})
	t.Require(ok2xx(resp), "POST Other (an ActivityDefinition of "+o.app+" by "+o.acct.Username+")", "HTTP 2xx", resp.Status)
	loc := resp.Header.Get("Content-Location")
	t.Require(adLocation.MatchString(loc), "Content-Location of the create", fhirPrefix+"/Other/ActivityDefinition:<id>/_history/<version>", loc)
	return loc
}

// updateAD PUTs a definition as o to the path of loc and returns the new Content-Location.
func (t *T) updateAD(o adOwner, loc, identifier string, archived bool) string {
	resp := t.Do(Request{Method: http.MethodPut, URL: pathOf(loc), Basic: o.acct, Body: t.adBody(identifier, o.app, archived)})
	t.Require(ok2xx(resp), "PUT to "+pathOf(loc), "HTTP 2xx", resp.Status)
	next := resp.Header.Get("Content-Location")
	t.Require(adLocation.MatchString(next), "Content-Location of the update", fhirPrefix+"/Other/ActivityDefinition:<id>/_history/<version>", next)
	t.Expect(next != loc, "Content-Location of the update", "a new version", next)
	return next
}

// listADs lists the definitions (one page; next links followed).
func (t *T) listADs(archived bool) *dstu1.Bundle {
	q := url.Values{"code": {"ActivityDefinition"}}
	if archived {
		q.Set("includearchived", "yes")
	}
	link := fhir("/Other/_search?" + q.Encode())
	all := &dstu1.Bundle{}
	for pages := 0; link != "" && pages < 100; pages++ {
		resp := t.Do(Request{URL: link, Basic: t.Portal()})
		t.Require(resp.Status == http.StatusOK, "GET "+link, "HTTP 200", resp.Status)
		b := t.bundle(resp)
		all.Entries = append(all.Entries, b.Entries...)
		link = findLink(b, "next")
	}
	return all
}

// pathOf is the path (and query) of an absolute URL: what a client that rewrites hosts PUTs to.
func pathOf(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	return p.RequestURI()
}

// sameURL compares two URLs by path (hosts may be rewritten by proxies or clients).
func sameURL(a, b string) bool { return pathOf(a) == pathOf(b) }
