package regress

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// The Test Storage Service (SPEC.md §9, §3.8): items a module keeps per patient, owned by its instance.
// A target without a Storage Service skips these cases.

var itemLocation = regexp.MustCompile(regexp.QuoteMeta(fhirPrefix) + `/Other/StorageItem:[^/]+/_history/[^/]+$`)

func storageCases() []Case {
	mod := []Capability{CapModule}
	ref := "SPEC.md §9, §3.8 (the seed's Test Storage Service)"
	return []Case{
		{ID: "storage/create-and-read", Title: "POST Other?code=StorageItem stores an item: 2xx, a versioned Content-Location, and a read returns the content",
			Ref: ref, Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				loc, it := t.createItem(t.moduleAccount(), d.Patient, "state", []byte(`{"level":1}`))
				t.Expect(it.ApplicationIdentifier != "" && it.DomainName == t.s.cfg.Domain, "ApplicationIdentifier and DomainName of the stored item",
					"set by the server (the domain "+t.s.cfg.Domain+")", it.ApplicationIdentifier+" / "+it.DomainName)
				got := t.readItem(t.moduleAccount(), loc)
				t.Expect(bytes.Equal(got.Content, []byte(`{"level":1}`)), "the content read back", `{"level":1}`, string(got.Content))
				t.Equal("the patient of the item read back", d.Patient, got.Patient)
			}},
		{ID: "storage/update", Title: "PUT to the item's versioned URL replaces it with a new, greater version",
			Ref: ref, Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				loc, _ := t.createItem(t.moduleAccount(), d.Patient, "state", []byte("one"))
				next := t.putItem(t.moduleAccount(), loc, d.Patient, "state", []byte("two"))
				t.Require(ok2xx(next), "PUT to "+pathOf(loc), "HTTP 2xx", next.Status)
				nloc := next.Header.Get("Content-Location")
				_, v1 := dstu1.SplitHistory(loc)
				_, v2 := dstu1.SplitHistory(nloc)
				t.Expect(v2 > v1, "the version after the update", "greater than "+v1, v2)
				t.Expect(bytes.Equal(t.readItem(t.moduleAccount(), nloc).Content, []byte("two")), "the content after the update", "two", "other")
			}},
		{ID: "storage/update-stale", Title: "PUT to an outdated version of an item gets 409 with exactly \"The specified resource version is not correct\"",
			Ref: ref + "; CLIENTS.md Error texts (wherever a stale version is refused)", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				loc, _ := t.createItem(t.moduleAccount(), d.Patient, "state", []byte("one"))
				t.Require(ok2xx(t.putItem(t.moduleAccount(), loc, d.Patient, "state", []byte("two"))), "the first update", "HTTP 2xx", "other")
				details := t.outcome(t.putItem(t.moduleAccount(), loc, d.Patient, "state", []byte("three")), http.StatusConflict)
				t.Expect(len(details) > 0 && details[0] == textStaleVersion, "issue[0].details", `"`+textStaleVersion+`"`, details)
			}},
		{ID: "storage/search-by-patient", Title: "a search with patient= lists that patient's items only; _id= finds one",
			Ref: ref + " (search arguments: patient, _id)", Formats: both, Needs: mod, Run: func(t *T) {
				a, b := t.storageDossier(), t.storageDossier()
				first, _ := t.createItem(t.moduleAccount(), a.Patient, "state", []byte("a1"))
				t.createItem(t.moduleAccount(), a.Patient, "score", []byte("a2"))
				t.createItem(t.moduleAccount(), b.Patient, "state", []byte("b1"))
				t.Expect(len(t.searchItems(t.moduleAccount(), url.Values{"patient": {a.Patient}})) == 2, "items of the first patient", "2", "other")
				id := lastSegment(stripHistory(first))
				got := t.searchItems(t.moduleAccount(), url.Values{"patient": {a.Patient}, "_id": {id}})
				t.Expect(len(got) == 1, "items with _id="+id, "1", len(got))
			}},
		{ID: "storage/delete", Title: "DELETE Other/StorageItem:<id> removes the item: reads and searches no longer find it",
			Ref: ref, Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				loc, _ := t.createItem(t.moduleAccount(), d.Patient, "state", []byte("gone soon"))
				del := t.Do(Request{Method: http.MethodDelete, URL: pathOf(stripHistory(loc)), Basic: t.moduleAccount()})
				t.Require(ok2xx(del), "DELETE "+pathOf(stripHistory(loc)), "HTTP 2xx", del.Status)
				t.outcome(t.Do(Request{URL: pathOf(stripHistory(loc)), Basic: t.moduleAccount()}), http.StatusNotFound, http.StatusGone)
				t.Expect(len(t.searchItems(t.moduleAccount(), url.Values{"patient": {d.Patient}})) == 0, "items of the patient after the delete", "none", "some")
			}},
		{ID: "storage/server-sets-owner", Title: "ApplicationIdentifier and DomainName sent by a client are ignored: the server sets them",
			Ref: ref + " (ApplicationIdentifier and DomainName are set by the server and immutable)", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				it := dstu1.StorageItem{Patient: d.Patient, ObjectType: "state", ContentType: "application/json", Content: []byte("{}"),
					ApplicationIdentifier: "Forged", DomainName: "Elsewhere"}
				resp := t.Do(Request{Method: http.MethodPost, URL: fhir("/Other?code=StorageItem"), Basic: t.moduleAccount(), Body: it.Resource().Encode(t.Format)})
				t.Require(ok2xx(resp), "POST of an item naming another application and domain", "HTTP 2xx", resp.Status)
				got := t.readItem(t.moduleAccount(), resp.Header.Get("Content-Location"))
				t.Expect(got.ApplicationIdentifier != "Forged" && got.DomainName == t.s.cfg.Domain, "ApplicationIdentifier / DomainName stored", "the server's own", got.ApplicationIdentifier+" / "+got.DomainName)
			}},
		{ID: "storage/owned-by-instance", Title: "another instance can neither read nor find a module's item",
			Ref: ref + " (the credentials bind the item to an application instance)", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				loc, _ := t.createItem(t.moduleAccount(), d.Patient, "state", []byte("mine"))
				t.outcome(t.Do(Request{URL: pathOf(stripHistory(loc)), Basic: t.Portal()}))
				t.Expect(len(t.searchItems(t.Portal(), url.Values{"patient": {d.Patient}})) == 0, "the portal's search for the patient's items", "none", "the module's item")
			}},
		{ID: "storage/bearer-own-patient", Title: "with a Bearer token a module reaches its launch patient's items, not another patient's",
			Ref: ref + "; SPEC.md §8.5", Formats: both, Needs: mod, Run: func(t *T) {
				mine, other := t.storageDossier(), t.storageDossier()
				own, _ := t.createItem(t.moduleAccount(), mine.Patient, "state", []byte("mine"))
				foreign, _ := t.createItem(t.moduleAccount(), other.Patient, "state", []byte("theirs"))
				tok := t.launchToken(t.module(), t.newLaunchContext(mine))
				ok := t.Do(Request{URL: pathOf(stripHistory(own)), Bearer: tok.AccessToken})
				t.Expect(ok.Status == http.StatusOK, "reading the launch patient's item with the token", "HTTP 200", ok.Status)
				t.outcome(t.Do(Request{URL: pathOf(stripHistory(foreign)), Bearer: tok.AccessToken}))
			}},
		{ID: "storage/not-an-item", Title: "POST Other?code=StorageItem with something else is refused with an OperationOutcome and stores nothing",
			Ref: ref, Formats: both, Needs: mod, Run: func(t *T) {
				d := t.storageDossier()
				body := t.carePlan(d, "Available").Entries[2].Resource.Encode(t.Format) // a Patient
				t.outcome(t.Do(Request{Method: http.MethodPost, URL: fhir("/Other?code=StorageItem"), Basic: t.moduleAccount(), Body: body}))
				t.Expect(len(t.searchItems(t.moduleAccount(), url.Values{"patient": {d.Patient}})) == 0, "items of the patient afterwards", "none", "some")
			}},
	}
}

// storageDossier is a new patient, after checking that the target has a Storage Service (skipping the
// case when it does not): a search for the patient's items must answer 200 with a bundle.
func (t *T) storageDossier() *dossier {
	d := t.newDossier()
	q := url.Values{"code": {"StorageItem"}, "patient": {d.Patient}}
	resp := t.Do(Request{URL: fhir("/Other/_search?" + q.Encode()), Basic: t.moduleAccount()})
	if resp.Status != http.StatusOK {
		t.Skipf("the target has no Storage Service (a search for StorageItems answers HTTP %d)", resp.Status)
	}
	return d
}

// createItem stores an item as a and returns its Content-Location and the item as the server answered it.
func (t *T) createItem(a *Account, patient, objectType string, content []byte) (string, dstu1.StorageItem) {
	it := dstu1.StorageItem{Patient: patient, ObjectType: objectType, ObjectKey: t.Unique("key"), ContentType: "application/octet-stream", Content: content}
	resp := t.Do(Request{Method: http.MethodPost, URL: fhir("/Other?code=StorageItem"), Basic: a, Body: it.Resource().Encode(t.Format)})
	t.Require(ok2xx(resp), "POST Other?code=StorageItem", "HTTP 2xx", resp.Status)
	loc := resp.Header.Get("Content-Location")
	t.Require(itemLocation.MatchString(loc), "Content-Location of the stored item", "…"+fhirPrefix+"/Other/StorageItem:<id>/_history/<version>", loc)
	got, err := dstu1.ReadStorageItem(t.resource(resp))
	t.Require(err == nil, "the reply to the POST", "the stored StorageItem", err)
	return loc, got
}

// putItem replaces the item at loc.
func (t *T) putItem(a *Account, loc, patient, objectType string, content []byte) *Response {
	it := dstu1.StorageItem{Patient: patient, ObjectType: objectType, ContentType: "application/octet-stream", Content: content}
	return t.Do(Request{Method: http.MethodPut, URL: pathOf(loc) + "?code=StorageItem", Basic: a, Body: it.Resource().Encode(t.Format)})
}

// readItem reads the item at loc.
func (t *T) readItem(a *Account, loc string) dstu1.StorageItem {
	resp := t.Do(Request{URL: pathOf(loc), Basic: a})
	t.Require(resp.Status == http.StatusOK, "GET "+pathOf(loc), "HTTP 200 with the item", resp.Status)
	it, err := dstu1.ReadStorageItem(t.resource(resp))
	t.Require(err == nil, "the item read", "a StorageItem", err)
	return it
}

// searchItems searches items as a.
func (t *T) searchItems(a *Account, q url.Values) []*dstu1.Entry {
	q.Set("code", "StorageItem")
	resp := t.Do(Request{URL: fhir("/Other/_search?" + q.Encode()), Basic: a})
	if resp.Status >= 400 { // a refused search finds nothing; the caller's expectation says whether that is right
		return nil
	}
	return t.bundle(resp).Entries
}
