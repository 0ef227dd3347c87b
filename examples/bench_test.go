package examples_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// benchBSN returns the i-th citizen service number that passes the eleven-proof.
func benchBSN(i int) string {
	for n := 100000000 + i*13; ; n++ {
		s := fmt.Sprintf("%09d", n)
		if transforms.BSNValid(s) {
			return s
		}
	}
}

// patientExport is an EPD export of rows patients numbered from first, in the example's CSV layout.
func patientExport(first, rows int) string {
	var b strings.Builder
	b.WriteString("patientnummer;bsn;voornaam;tussenvoegsel;achternaam;geslacht;geboortedatum;email;telefoon\r\n")
	for i := first; i < first+rows; i++ {
		fmt.Fprintf(&b, "%d;%s;Jan;van der;Berg%d;M;03-02-1980;p%d@example.nl;06-1234 5678\r\n", i, benchBSN(i), i, i)
	}
	return b.String()
}

// waitingFor counts the New messages in the demo game's mailbox: what it can claim.
func waitingFor(t testing.TB, st *store.Store) int {
	ctx := context.Background()
	var n int
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &n, `SELECT COUNT(*) FROM queue q JOIN app_instances i ON i.id = q.instance_id
			WHERE i.username = ? AND q.status = 'New'`, koppeltaal.DemoGameUser)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEPDRowsReachTheMailboxInOneCommit: the rows of an export reach the demo game's mailbox through the
// examples/epd-to-koppeltaal patients route with no HTTP request and at most one store transaction per row
// (the file's publish, then one routing transaction per batch: consumption, message, queue rows and outcome
// together; the design before the mailbox port took about six commits and an HTTP POST per row).
func TestEPDRowsReachTheMailboxInOneCommit(t *testing.T) {
	const rows = 300
	n := ktServer(t)
	dir := copyExample(t, "epd-to-koppeltaal")
	for _, f := range []string{"careplans.yaml", "practitioners.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	runRoutes(t, dir, n)
	before, requestsBefore := n.store.WriterStats(), n.httpRequests.Load()
	drop(t, dir, "patienten_commits.csv", patientExport(70000, rows))
	deadline := time.Now().Add(90 * time.Second)
	for waitingFor(t, n.store) < rows {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows claimable after 90 s", waitingFor(t, n.store), rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := n.store.WriterStats()
	// Requests are the transactions the code asked for (Store.Update), whatever the writer grouped into one
	// commit; idle polls of the subscribers count too, so this is an upper bound.
	txs, commits := after.Requests-before.Requests, after.Batches-before.Batches
	t.Logf("%d rows: %d store transactions (%.2f per row) in %d commits", rows, txs, float64(txs)/rows, commits)
	if txs > rows {
		t.Errorf("%d store transactions for %d rows: more than one per row", txs, rows)
	}
	if k := n.httpRequests.Load() - requestsBefore; k != 0 {
		t.Errorf("%d HTTP requests to the Koppeltaal server on the way to the mailbox, want none", k)
	}
}

// BenchmarkEPDPatientsToMailbox measures CSV rows → claimable Koppeltaal messages through the
// examples/epd-to-koppeltaal patients route on SQLite: each op is one export of 1,000 rows, timed from the
// drop in the inbox until every row waits as a New message in the demo game's mailbox.
func BenchmarkEPDPatientsToMailbox(b *testing.B) {
	const rows = 1000
	n := ktServer(b)
	st := n.store
	dir := copyExample(b, "epd-to-koppeltaal")
	for _, f := range []string{"careplans.yaml", "practitioners.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	runRoutes(b, dir, n)
	waiting := func() int { return waitingFor(b, st) }
	b.ResetTimer()
	start, before := time.Now(), st.WriterStats()
	for i := 0; i < b.N; i++ {
		drop(b, dir, fmt.Sprintf("patienten_%d.csv", i), patientExport(10000+i*rows, rows))
		want := (i + 1) * rows
		deadline := time.Now().Add(5 * time.Minute)
		for waiting() < want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d rows claimable after 5 minutes", waiting(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N*rows)/time.Since(start).Seconds(), "rows/s")
	// Commits of the store's writer: the one SQLite writer of the process.
	b.ReportMetric(float64(st.WriterStats().Batches-before.Batches)/float64(b.N*rows), "store-commits/row")
}

// TestEPDRowClaimedInJSONAndXML: what a row's message stores is what its recipient gets, in either format.
// The local output builds the message from the trees the route parsed and the mailbox encodes the body
// once; the demo game claims the message in JSON and reads it again in XML, and both carry the Patient the
// route declares for the row, element for element.
func TestEPDRowClaimedInJSONAndXML(t *testing.T) {
	dir, _, game := runExample(t, "epd-to-koppeltaal")
	drop(t, dir, "patienten_formats.csv", patientExport(80000, 1))
	claimed := claimAll(t, game, 1)[0]
	xmlGame := *game
	xmlGame.Format = dstu1.FormatXML
	read, err := xmlGame.Read(context.Background(), claimed.Entries[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed.Entries) != 2 || len(read.Entries) != 2 {
		t.Fatalf("entries: %d claimed (JSON), %d read (XML), want 2 each", len(claimed.Entries), len(read.Entries))
	}
	bsn := benchBSN(80000)
	want, err := dstu1.ParseResource([]byte(`{"resourceType": "Patient",
		"identifier": [{"use": "official", "system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "`+bsn+`"}],
		"name": [{"use": "official", "text": "Jan van der Berg80000", "family": ["Berg80000"], "given": ["Jan"], "prefix": ["van", "der"]}],
		"telecom": [{"system": "email", "value": "p80000@example.nl", "use": "home"}, {"system": "phone", "value": "0612345678", "use": "mobile"}],
		"gender": {"coding": [{"system": "http://hl7.org/fhir/v3/AdministrativeGender", "code": "M", "display": "Male"}]},
		"birthDate": "1980-02-03"}`), dstu1.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string]*dstu1.Bundle{"claimed in JSON": claimed, "read in XML": read} {
		e := b.Entries[1]
		if base, v := dstu1.SplitHistory(e.SelfLink()); base != "https://epd.example.nl/fhir/Koppeltaal/Patient/epd-80000" || v == "" {
			t.Errorf("%s: self link %q, want the versioned Patient URL", what, e.SelfLink())
		}
		if ok, diff := dstu1.EqualResource(e.Resource, want); !ok {
			t.Errorf("%s: the Patient is not the route's: %s\n%s", what, diff, e.Resource.JSON())
		}
	}
	if ok, diff := dstu1.EqualResource(claimed.Entries[1].Resource, read.Entries[1].Resource); !ok {
		t.Errorf("JSON and XML differ: %s", diff)
	}
	if got := claimed.MessageHeader().Data(); len(got) != 1 || got[0] != claimed.Entries[1].SelfLink() {
		t.Errorf("MessageHeader.data %v, want the focal self link %s", got, claimed.Entries[1].SelfLink())
	}
}
