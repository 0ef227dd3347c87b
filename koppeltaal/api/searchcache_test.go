package api_test

import (
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// searchedPatients returns the patients of game@a's entries as a search shows them.
func searchedPatients(t *testing.T, h *harness) []string {
	t.Helper()
	r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search", user: "game@a", pass: "ga", accept: "application/json"})
	if r.Status != 200 {
		t.Fatalf("search: %d %s", r.Status, r)
	}
	var out []string
	for _, e := range bundleOf(t, r).Entries {
		if mh := dstu1.AsMessageHeader(e.Resource); mh != nil {
			out = append(out, mh.Patient())
		}
	}
	return out
}

// A search renders only the MessageHeader of each message, and keeps it so
// that the next search does not read and parse the body again (the second
// search below answers although the stored body no longer parses) — but only
// for the message it was read from: after the database forgot the message and
// gave its ids to another patient's (an asynchronous failover, issue 15), the
// search shows the new one. The messages are posted through a second server on
// the database, so the first one's message cache never holds them whole.
func TestSearchKeepsHeadersOfTheRightMessage(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		other := newHarness(t, b, twoDomains())
		const lost, real = "https://a.example/Patient/lost", "https://a.example/Patient/real"
		if r := postAs(other, "portal@a", "pa", patientMessage("A", lost), dstu1.FormatJSON); r.Status != 200 {
			t.Fatalf("post: %d %s", r.Status, r)
		}
		if got := searchedPatients(t, h); len(got) != 1 || got[0] != lost {
			t.Fatalf("first search: %v", got)
		}
		if err := h.st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE message_bodies SET body = ?", []byte("no longer a bundle"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := searchedPatients(t, h); len(got) != 1 || got[0] != lost {
			t.Fatalf("second search, from the kept header: %v", got)
		}
		forgetNewest(t, h.st)
		if r := postAs(other, "portal@a", "pa", patientMessage("A", real), dstu1.FormatJSON); r.Status != 200 {
			t.Fatalf("post: %d %s", r.Status, r)
		}
		if got := searchedPatients(t, h); len(got) != 1 || got[0] != real {
			t.Fatalf("search after id reuse: %v, want [%s]", got, real)
		}
	})
}
