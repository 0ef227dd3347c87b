package storage_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// The audit trail names actor and patient of every access: a post, claim,
// read, search and acknowledgement with Basic, a claim and a storage write and
// read with a Bearer token (launch user and client too), and a refused read.
func TestTrailNamesActorAndPatient(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{})
		const epd = koppeltaal.DemoEPDUser + ":" + koppeltaal.DemoEPDPassword
		const game = koppeltaal.DemoGameUser + ":" + koppeltaal.DemoGamePassword
		post := func(patient string) {
			msg := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), koppeltaal.DemoDomain)
			plan := "https://epd.example/fhir/Koppeltaal/CarePlan/" + uuid.NewString()
			mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: uuid.NewString(), Timestamp: "2026-11-28T12:00:00Z",
				Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan", Display: "CreateOrUpdateCarePlan"},
				Source: dstu1.Source{Software: "test", Endpoint: "https://epd.example/fhir"}, Data: []string{plan}, Patient: patient})
			msg.AddEntry(mh.Resource, "", "")
			cp := dstu1.NewResource("CarePlan")
			cp.Add(dstu1.NewPrimitive("status", "active"))
			msg.AddEntry(cp, plan, plan)
			if st, _, body := e.do("POST", "/Mailbox", epd, "application/json", msg.JSON()); st != 200 {
				t.Fatalf("post: %d %s", st, body)
			}
		}
		post(patientA)
		post(patientB)
		st, _, body := e.do("GET", "/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", game, "", nil)
		claimed, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
		if st != 200 || err != nil || len(claimed.Entries) == 0 {
			t.Fatalf("claim: %d %s", st, body)
		}
		self := strings.TrimPrefix(claimed.Entries[0].SelfLink(), e.url+"/FHIR/Koppeltaal")
		if st, _, _ := e.do("GET", strings.Split(self, "/_history/")[0], game, "", nil); st != 200 {
			t.Fatalf("read: %d", st)
		}
		if st, _, _ := e.do("GET", "/MessageHeader/_search?_summary=true", game, "", nil); st != 200 {
			t.Fatalf("search: %d", st)
		}
		mh := claimed.MessageHeader()
		mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
		if st, _, body := e.do("PUT", self, game, "application/json", mh.Resource.JSON()); st != 200 {
			t.Fatalf("ack: %d %s", st, body)
		}
		if st, _, _ := e.do("GET", "/MessageHeader/999999", game, "", nil); st != 404 {
			t.Fatalf("read of a missing id: %d", st)
		}
		bearer := "Bearer " + e.token(patientB)
		if st, _, body := e.do("GET", "/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", bearer, "", nil); st != 200 || !strings.Contains(string(body), "Patient/B") {
			t.Fatalf("bearer claim: %d %s", st, body)
		}
		if st, _, _ := e.do("POST", "/Other?code=StorageItem", bearer, "application/json", item(patientB, "k", "x").Resource().JSON()); st != 201 {
			t.Fatalf("bearer storage write: %d", st)
		}
		if st, _, _ := e.do("GET", "/Other/_search?code=StorageItem", bearer, "", nil); st != 200 {
			t.Fatalf("bearer storage search: %d", st)
		}
		if err := e.rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}

		evs, err := audit.Query(ctx, e.st, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, ev := range evs {
			a := ev.Actor
			if a.Name == "" || a.Application == "" || a.Domain != koppeltaal.DemoDomain || a.SourceIP != "127.0.0.1" {
				t.Errorf("record %d names no actor: %+v", ev.ID, ev)
			}
			lines = append(lines, strings.Join([]string{ev.Action, ev.Result, a.Kind, a.Name, a.Client, a.LaunchUser, a.TokenPatient, ev.Patient}, " "))
		}
		got := "\n" + strings.Join(lines, "\n") + "\n"
		for _, want := range []string{
			"post ok instance epd@demo    " + patientA,
			"post ok instance epd@demo    " + patientB,
			"claim ok instance game@demo    " + patientA,
			"read ok instance game@demo    " + patientA,
			"search ok instance game@demo    " + patientA,
			"search ok instance game@demo    " + patientB,
			"ack ok instance game@demo    " + patientA,
			"read not-found instance game@demo    \n",
			"claim ok bearer game@demo DemoGame " + patientB + " " + patientB + " " + patientB,
			"storage-write ok bearer game@demo DemoGame " + patientB + " " + patientB + " " + patientB,
			"storage-read ok bearer game@demo DemoGame " + patientB + " " + patientB + " " + patientB,
		} {
			if !strings.Contains(got, "\n"+want) {
				t.Errorf("no record %q in%s", want, got)
			}
		}
	})
}
