package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestPostgresAckRacingANewerVersion: on PostgreSQL an acknowledgement can read
// its entry as Claimed while a concurrent POST of a newer version replaces it.
// The acknowledgement must then answer as if it came after the POST (409 naming
// ReplacedByNewVersion, which clients and the load tool recognise), not with a
// vague "changed concurrently".
func TestPostgresAckRacingANewerVersion(t *testing.T) {
	b := storetest.NewPostgres(t)
	h := newHarness(t, b, twoDomains())
	const plan, pat = "https://a.example/CarePlan/race", "https://a.example/Patient/race"
	if r := postAs(h, "portal@a", "pa", carePlanMessage("A", plan, "", pat, "v1"), dstu1.FormatJSON); r.Status != http.StatusOK {
		t.Fatalf("post: %d %s", r.Status, r)
	}
	claimed := claim(h, "game@a", "ga", dstu1.FormatJSON)
	if claimed.Status != http.StatusOK || len(bundleOf(t, claimed).Entries) == 0 {
		t.Fatalf("claim: %d %s", claimed.Status, claimed)
	}
	self := bundleOf(t, claimed).Entries[0].SelfLink()

	// A second connection holds the entry's row, as a POST replacing it would.
	db, holder := lockingTx(t, b.DSN)
	var entryID int64
	if err := holder.QueryRowContext(ctx, "SELECT id FROM queue WHERE focal_ref = $1 AND status = 'Claimed' FOR UPDATE", plan).Scan(&entryID); err != nil {
		t.Fatal(err)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: "x", Timestamp: "2026-01-01T00:00:00Z",
			Event: dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan"}})
		mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
		hr, err := http.NewRequest("PUT", self, bytes.NewReader(koppeltaal.EncodeResource(mh.Resource, dstu1.FormatJSON)))
		if err != nil {
			done <- result{err: err}
			return
		}
		hr.SetBasicAuth("game@a", "ga")
		hr.Header.Set("Content-Type", "application/json+fhir")
		hr.Header.Set("Accept", "application/json+fhir")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(body)}
	}()
	// Wait until the acknowledgement has read the entry and waits for the row in its update.
	waitForLockWait(t, db, "UPDATE queue SET status%", "the acknowledgement never waited for the entry's row")
	if _, err := holder.ExecContext(ctx, "UPDATE queue SET status = 'ReplacedByNewVersion', version = 'replaced' WHERE id = $1", entryID); err != nil {
		t.Fatal(err)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.status != http.StatusConflict || !strings.Contains(r.body, "ReplacedByNewVersion") || strings.Contains(r.body, "concurrently") {
		t.Fatalf("acknowledgement that lost the race: %d %s; want 409 naming ReplacedByNewVersion", r.status, r.body)
	}
}
