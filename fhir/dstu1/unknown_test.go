package dstu1

import (
	"slices"
	"testing"
)

func TestResourceUnknownElements(t *testing.T) {
	r, err := ParseResource([]byte(`{"resourceType": "Patient", "birthdate": "1980-02-03",
		"name": [{"family": ["Berg"], "givn": ["Jan"]}],
		"extension": [{"url": "http://x/y", "valueString": "kept"}],
		"contact": [{"name": {"text": "x"}}, {"relationship": [{"coding": [{"cod": "x"}]}]}]}`), FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, u := range r.UnknownElements() {
		paths = append(paths, u.Path)
	}
	// In the order the codec keeps: schema order, unknown elements last.
	want := []string{"Patient.name[0].givn", "Patient.contact[1].relationship[0].coding[0].cod", "Patient.birthdate"}
	if !slices.Equal(paths, want) {
		t.Fatalf("unknown %v, want %v", paths, want)
	}
	if u := r.UnknownElements()[2]; !slices.Contains(u.Known, "birthDate") {
		t.Errorf("known names of Patient lack birthDate: %v", u.Known)
	}
	ok, _ := ParseResource([]byte(`{"resourceType": "Patient", "birthDate": "1980-02-03", "gender": {"coding": [{"code": "M"}]}}`), FormatJSON)
	if u := ok.UnknownElements(); len(u) != 0 {
		t.Errorf("a valid Patient has unknown elements: %v", u)
	}
	if !slices.Contains(ResourceElements("Other"), "code") || ResourceElements("Nope") != nil {
		t.Error("ResourceElements")
	}
}
