package regress

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// The SPEC.md §7.4 worked example (BV, files bv-step1…6): a CarePlan with its Patient and two CareTeams,
// then an update in which one CareTeam was renamed.
const exampleBase = "http://local.emhp"

func workedExampleCases() []Case {
	return []Case{
		{ID: "example/step2-reply", Title: "worked example step 2: the reply versions all four resources with one version and echoes the identifier",
			Ref: "SPEC.md §7.4 steps 1–2 (bv-step1, bv-step2)", Formats: both, Run: func(t *T) {
				ex := t.runExample(2)
				id, code, _ := ex.reply1.Response()
				t.Equal("reply response.identifier", ex.first.MessageHeader().Identifier(), id)
				t.Equal("reply response.code", "ok", code)
				versions := map[string]string{}
				for _, d := range ex.reply1.Data() {
					u, v := dstu1.SplitHistory(d)
					versions[u] = v
				}
				for _, u := range ex.all() {
					t.Expect(versions[u] != "", "reply data", "a versioned reference to "+u, ex.reply1.Data())
				}
				t.Expect(len(distinct(versions)) == 1, "the versions issued by one message", "one version string for all its resources", versions)
			}},
		{ID: "example/step3-claim", Title: "worked example step 3: the subscriber claims the sender's feed, status Claimed, IsExpired false, server entry metadata, versioned self links",
			Ref: "SPEC.md §7.4 step 3, §4.3, §3.2 (bv-step3)", Formats: both, Run: func(t *T) {
				ex := t.runExample(3)
				got := ex.claimed1
				t.Equal("the claimed bundle's feed id", ex.first.ID, got.ID)
				mh := got.MessageHeader()
				ps, _ := mh.ProcessingStatus()
				t.Equal("ProcessingStatus of the claimed message", "Claimed", ps.Status)
				t.Expect(ps.LastChanged != "", "ProcessingStatusStatusLastChanged", "present (an instant)", "absent")
				expired, present := mh.IsExpired()
				t.Expect(present && !expired, "the IsExpired extension", "present and false", map[bool]string{true: "true", false: "false or absent"}[expired && present])
				e := got.Entries[0]
				m := iidRe.FindStringSubmatch(e.Title)
				t.Expect(m != nil, "the MessageHeader entry's title", `"MessageHeader with IID=<n>"`, e.Title)
				if m != nil {
					t.Equal("the MessageHeader entry's id", t.base()+"/MessageHeader/"+m[1], e.ID)
					base, v := dstu1.SplitHistory(e.SelfLink())
					t.Expect(base == e.ID && v != "", "the MessageHeader entry's self link", e.ID+"/_history/<version>", e.SelfLink())
				}
				for _, u := range ex.all() {
					self := selfLinkOf(got, u)
					t.Expect(self == u+"/_history/"+ex.tr.current[u], "the self link of "+u, "versioned with the issued version", self)
				}
			}},
		{ID: "example/step5-update-reply", Title: "worked example step 5: the update's reply lists the CarePlan and the renamed CareTeam with a new, greater version",
			Ref: "SPEC.md §7.4 steps 4–5 (bv-step4, bv-step5)", Formats: both, Run: func(t *T) {
				ex := t.runExample(5)
				got := map[string]string{}
				for _, d := range ex.reply2.Data() {
					u, v := dstu1.SplitHistory(d)
					got[u] = v
				}
				for _, u := range []string{ex.url("/CarePlan/81636954"), ex.url("/CareTeam/82483757")} {
					t.Expect(got[u] > ex.v1, "reply data for "+u, "a new version greater than "+ex.v1, got[u])
				}
				for _, u := range []string{ex.url("/Patient/9664"), ex.url("/CareTeam/24470607")} {
					t.Expect(got[u] == "", "reply data", "no reference to the unchanged "+u, got[u])
				}
			}},
		{ID: "example/step6-update-claim", Title: "worked example step 6: the subscriber gets the update with new versions for the changed resources and the old ones for the rest",
			Ref: "SPEC.md §7.4 step 6 (bv-step6)", Formats: both, Run: func(t *T) {
				ex := t.runExample(6)
				upd := ex.claimed2
				for _, u := range []string{ex.url("/CarePlan/81636954"), ex.url("/CareTeam/82483757")} {
					_, v := dstu1.SplitHistory(selfLinkOf(upd, u))
					t.Expect(v > ex.v1, "the self link of "+u+" in the update", "the new version", v)
				}
				for _, u := range []string{ex.url("/Patient/9664"), ex.url("/CareTeam/24470607")} {
					_, v := dstu1.SplitHistory(selfLinkOf(upd, u))
					t.Equal("the self link version of the unchanged "+u, ex.v1, v)
				}
				id, _ := headerRef(ex.claimed1)
				t.Equal("ProcessingStatus of the first message, acknowledged before the update", "Success", t.statusOf(t.Subscriber(0), id).Status)
			}},
		{ID: "example/step6-replaced", Title: "worked example step 6: a subscriber that had not processed the first message finds it ReplacedByNewVersion",
			Ref: "SPEC.md §7.4 step 6, §5.1, §6.3 step 5", Formats: both, Needs: []Capability{CapSecondSubscriber}, Run: func(t *T) {
				ex := t.runExample(6)
				other := t.Subscriber(1)
				var states []string
				for _, mh := range headers(t.summary(other, ex.patient(), nil)) {
					ps, _ := mh.ProcessingStatus()
					states = append(states, ps.Status)
				}
				t.Expect(len(states) == 2 && contains(states, "ReplacedByNewVersion") && contains(states, "New"), "the second subscriber's two messages",
					"the first ReplacedByNewVersion, the update New", states)
				got := t.claimWait(other, ex.patient())
				t.Equal("the second subscriber's claim", ex.update.MessageHeader().Identifier(), got.MessageHeader().Identifier())
			}},
	}
}

var iidRe = regexp.MustCompile(`^MessageHeader with IID=(\d+)$`)

// example is the worked example run against the target up to a step.
type example struct {
	tr                 *translator
	first, update      *dstu1.Bundle
	reply1, reply2     *dstu1.MessageHeader
	claimed1, claimed2 *dstu1.Bundle
	v1                 string // the version step 2 issued
}

func (ex *example) url(path string) string { return ex.tr.base(exampleBase) + path }
func (ex *example) patient() string        { return ex.url("/Patient/9664") }

func (ex *example) all() []string {
	return []string{ex.url("/CarePlan/81636954"), ex.patient(), ex.url("/CareTeam/82483757"), ex.url("/CareTeam/24470607")}
}

// runExample plays the worked example up to step (2: first POST, 3: first claim and Success, 5: update
// POST, 6: update claim) in the case's format, the portal sending and the first subscriber receiving.
func (t *T) runExample(step int) *example {
	ex := &example{tr: t.newTranslator("EricTest", exampleBase)}
	ex.first = t.exampleMessage(ex.tr, "bv-step1-createorupdatecareplan-request.xml")
	ex.reply1 = t.postOK(t.Portal(), nil, ex.first)
	ex.tr.issued(ex.reply1)
	_, ex.v1 = dstu1.SplitHistory(first(ex.reply1.Data()))
	if step < 3 {
		return ex
	}
	ex.claimed1 = t.claimWait(t.Subscriber(0), ex.patient())
	if step < 4 {
		return ex
	}
	t.ackOK(t.Subscriber(0), ex.claimed1, "Success", "")
	ex.update = t.exampleMessage(ex.tr, "bv-step4-createorupdatecareplan-update-request.xml")
	ex.reply2 = t.postOK(t.Portal(), nil, ex.update)
	ex.tr.issued(ex.reply2)
	if step < 6 {
		return ex
	}
	ex.claimed2 = t.claimWait(t.Subscriber(0), ex.patient())
	t.ackOK(t.Subscriber(0), ex.claimed2, "Success", "")
	return ex
}

// exampleMessage reads a worked-example file, translated to this run and converted to the case's format.
func (t *T) exampleMessage(tr *translator, name string) *dstu1.Bundle {
	b, err := dstu1.ParseBundle(tr.apply(t.fixture(name)), dstu1.FormatXML)
	t.Require(err == nil, "fixture "+name, "a DSTU1 bundle", err)
	return b
}

// selfLinkOf is the self link of the entry for resource u in b.
func selfLinkOf(b *dstu1.Bundle, u string) string {
	for _, e := range b.Entries {
		if s := e.SelfLink(); s == u || strings.HasPrefix(s, u+"/_history/") {
			return s
		}
	}
	return ""
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// statusCode is a small helper for cases that only care about success.
func ok2xx(resp *Response) bool { return resp.Status >= http.StatusOK && resp.Status < 300 }
