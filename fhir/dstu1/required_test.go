package dstu1

import (
	"os"
	"slices"
	"testing"
)

func TestMissingRequired(t *testing.T) {
	// The old server's Mailbox reply: source.software with an empty value (CLIENTS.md: the Python connector
	// rejects it). Its other required elements are there.
	raw, err := os.ReadFile("testdata/examples/mailbox-post-response-1.3.5-to.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(raw, FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.MissingRequired(), []string{"entry[0].content.MessageHeader.source.software"}; !slices.Equal(got, want) {
		t.Fatalf("old server's reply: %q, want %q", got, want)
	}

	mh := NewMessageHeader(MessageHeaderFields{Identifier: "x", Timestamp: "2026-01-01T00:00:00Z",
		Event: Coding{Code: "CreateOrUpdatePatient"}, ResponseIdentifier: "y", Data: []string{"http://x/Patient/1"}})
	if got, want := mh.MissingRequired(), []string{"MessageHeader.source", "MessageHeader.response.code"}; !slices.Equal(got, want) {
		t.Fatalf("header without source: %q, want %q", got, want)
	}
	mh.SetResponse("y", "ok")
	mh.SetChild(NewElement("source", NewPrimitive("endpoint", "http://x")))
	if got, want := mh.MissingRequired(), []string{"MessageHeader.source.software"}; !slices.Equal(got, want) {
		t.Fatalf("source without software: %q, want %q", got, want)
	}
	// A primitive with only an extension is present (DSTU1).
	mh.Child("source").Add(&Node{Name: "software", Children: []*Node{NewExtension("http://x/e", NewPrimitive("valueString", "v"))}})
	if got := mh.MissingRequired(); got != nil {
		t.Fatalf("complete header: %q", got)
	}

	// Repeated elements are numbered; nested required elements are found; contained resources are checked.
	oo := NewOperationOutcome("", Issue{Severity: "error", Details: "a"}, Issue{Details: "b"})
	oo.Add(NewElement("contained", NewResource("Other").Node))
	oo.SortElements()
	want := []string{"OperationOutcome.contained[0].Other.code", "OperationOutcome.issue[1].severity"}
	if got := oo.MissingRequired(); !slices.Equal(got, want) {
		t.Fatalf("OperationOutcome: %q, want %q", got, want)
	}
	if got, want := NewResource("OperationOutcome").MissingRequired(), []string{"OperationOutcome.issue"}; !slices.Equal(got, want) {
		t.Fatalf("empty OperationOutcome: %q, want %q", got, want)
	}
}
