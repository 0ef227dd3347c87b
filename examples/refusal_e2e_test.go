package examples_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
)

// refusingRoute sends a Patient for a row of kind p and, for a row of kind a, a message the mailbox refuses
// (CreateOrUpdateActivityDefinition is the server's own event) to the examples' local Koppeltaal domain.
const refusingRoute = `name: refusals
key: record.id
input:
  file:
    path: ./inbox
    pattern: "rows*.csv"
    format: csv
    delimiter: ";"
    columns: [id, kind]
    poll_interval: 50ms
    min_age: 0s
rules:
  - when: record.kind == "a"
    transform: activity
  - transform: patient
transforms:
  patient:
    koppeltaal:
      event: CreateOrUpdatePatient
      patient: '"r-" + record.id'
      resources:
        - type: Patient
          id: '"r-" + record.id'
          fields:
            birthDate: '"1980-02-03"'
  activity:
    koppeltaal:
      event: CreateOrUpdateActivityDefinition
      resources:
        - type: ActivityDefinition
          id: '"ad-" + record.id'
outputs:
  - name: koppeltaal
    koppeltaal:
      instance: epd@demo
      resource_base: https://epd.example.nl/fhir/Koppeltaal
`

// TestLocalRefusalIsADeadLetterWithNothingWritten: a message the local mailbox refuses, in the routing
// transaction, becomes a dead letter (stage output) with nothing of it stored — there is no savepoint to
// undo it, the refusal comes before the first write — and the records routed with it in the same
// transaction still reach the mailbox.
func TestLocalRefusalIsADeadLetterWithNothingWritten(t *testing.T) {
	n := ktServer(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "refusals.yaml"), []byte(refusingRoute), 0o644); err != nil {
		t.Fatal(err)
	}
	runRoutes(t, dir, n)
	drop(t, dir, "rows_1.csv", "id;kind\r\n1;p\r\n2;a\r\n3;p\r\n")
	ctx := context.Background()
	var dl []runtime.DeadLetter
	deadline := time.Now().Add(60 * time.Second)
	for waitingFor(t, n.store) < 2 || len(dl) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages waiting and %d dead letters after 60 s, want 2 and 1", waitingFor(t, n.store), len(dl))
		}
		time.Sleep(10 * time.Millisecond)
		var err error
		if dl, err = runtime.ListDeadLetters(ctx, n.store, runtime.Filter{Route: "refusals"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(dl) != 1 || dl[0].Stage != "output" || dl[0].RecordKey != "2" || !strings.Contains(dl[0].Reason, "sent by the server only") {
		t.Fatalf("dead letters: %+v", dl)
	}
	var messages, activities int
	if err := n.store.View(ctx, func(tx *store.Tx) error {
		if err := tx.Get(ctx, &messages, `SELECT COUNT(*) FROM messages m JOIN app_instances i ON i.id = m.sender_instance_id WHERE i.username = 'epd@demo'`); err != nil {
			return err
		}
		return tx.Get(ctx, &activities, `SELECT COUNT(*) FROM resources WHERE url LIKE '%ActivityDefinition%'`)
	}); err != nil {
		t.Fatal(err)
	}
	if messages != 2 || activities != 0 {
		t.Fatalf("%d messages from the EPD and %d ActivityDefinition resources stored, want 2 and 0", messages, activities)
	}
}
