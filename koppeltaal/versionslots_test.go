package koppeltaal

import (
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

func TestVersionSlotsFill(t *testing.T) {
	s := newVersionSlots()
	a, b, unused := s.add(), s.add(), s.add()
	if a == b || len(a) != len(b) || !strings.HasPrefix(a, "kpv") {
		t.Fatalf("slots %q %q", a, b)
	}
	if other := newVersionSlots(); other.prefix == s.prefix {
		t.Fatal("two messages share a placeholder prefix")
	}
	tmpl := []byte(`{"a":"x/_history/` + a + `","b":"` + b + `","c":"` + a + `","d":"` + unused + `"}`)
	got := string(s.fill(tmpl, map[string]string{a: "2026-11-28T10:00:00:000.0001", b: "v-longer-than-the-slot-itself-and-more"}))
	want := `{"a":"x/_history/2026-11-28T10:00:00:000.0001","b":"v-longer-than-the-slot-itself-and-more","c":"2026-11-28T10:00:00:000.0001","d":"` + unused + `"}`
	if got != want {
		t.Fatalf("fill:\n got %s\nwant %s", got, want)
	}
}

// Placeholders survive both writers unchanged, so filling the encoded body gives what encoding the
// bundle with the versions set would.
func TestVersionSlotsThroughBothFormats(t *testing.T) {
	for _, f := range []Format{dstu1.FormatJSON, dstu1.FormatXML} {
		b := cacheTestBundle()
		s := newVersionSlots()
		slot := s.add()
		b.Entries[1].SetSelfLink("https://a.example/Patient/1/_history/" + slot)
		tmpl := EncodeBundle(b, f)
		b.Entries[1].SetSelfLink("https://a.example/Patient/1/_history/2026-11-28T10:00:00:000.0001")
		want := EncodeBundle(b, f)
		if got := s.fill(tmpl, map[string]string{slot: "2026-11-28T10:00:00:000.0001"}); string(got) != string(want) {
			t.Fatalf("%v:\n got %s\nwant %s", f, got, want)
		}
	}
}
