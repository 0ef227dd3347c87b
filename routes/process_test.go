package routes_test

import (
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes"
)

func patientRecord() adapters.Record {
	return adapters.Record{Key: "in.csv:2", Meta: map[string]string{"source_id": "s1"}, Fields: map[string]any{
		"patientnummer": "1001", "bsn": "111222333", "voornaam": "Jan", "tussenvoegsel": "van", "achternaam": "Berg",
		"geslacht": "1", "geboortedatum": "03-02-1980", "email": "jan@example.nl"}}
}

func TestProcessIdempotencyKeys(t *testing.T) {
	r, err := routes.LoadFile("testdata/patients.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := r.Process(patientRecord())
	b := r.Process(patientRecord())
	if a.Outcome != routes.Routed || len(a.Deliveries) != 1 || a.Deliveries[0].IdempotencyKey != b.Deliveries[0].IdempotencyKey {
		t.Fatalf("the same record from the same source must give the same key: %+v %+v", a, b)
	}
	changed := patientRecord()
	changed.Fields["email"] = "new@example.nl"
	if c := r.Process(changed); c.Deliveries[0].IdempotencyKey == a.Deliveries[0].IdempotencyKey {
		t.Fatal("changed content must give a new key")
	}
	other := patientRecord()
	other.Meta["source_id"] = "s2"
	if c := r.Process(other); c.Deliveries[0].IdempotencyKey == a.Deliveries[0].IdempotencyKey {
		t.Fatal("a later export (other source id) must give a new key")
	}
	bad := patientRecord()
	bad.Fields["geboortedatum"] = "31-02-1980"
	if c := r.Process(bad); c.Outcome != routes.DeadLettered || c.Reason == "" {
		t.Fatalf("an impossible date must dead-letter with the reason: %+v", c)
	}
}

// BenchmarkProcess is the per-record hot path: rules, transform and a Koppeltaal message declaration.
func BenchmarkProcess(b *testing.B) {
	r, err := routes.LoadFile("testdata/patients.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rec := patientRecord()
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Process(rec); res.Outcome != routes.Routed {
			b.Fatal(res.Reason)
		}
	}
}
