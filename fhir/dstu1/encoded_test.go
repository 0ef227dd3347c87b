package dstu1

import (
	"bytes"
	"os"
	"testing"
)

// A bundle written with its entries after the first as an encoded tail is byte for byte the bundle written
// whole, in both formats, for every message fixture (and with no entry left in the tree).
func TestEncodedTailWritesTheSameBytes(t *testing.T) {
	checked := 0
	for _, fx := range fixtures(t) {
		if !fx.bundle || fx.reject != nil || fx.wrap != "" || fx.elided {
			continue
		}
		data, err := os.ReadFile(fx.path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseBundle(data, fx.format)
		if err != nil {
			t.Fatalf("%s: %v", fx.path, err)
		}
		for _, head := range []int{0, 1} {
			if head > len(b.Entries) {
				continue
			}
			split := *b
			split.Entries = b.Entries[:head]
			tail := EncodeEntriesSized(b.Entries[head:], 0)
			split.SetEncodedTail(tail)
			if tail.Len() != len(b.Entries)-head {
				t.Fatalf("%s: Len %d, want %d", fx.path, tail.Len(), len(b.Entries)-head)
			}
			if got, want := split.JSON(), b.JSON(); !bytes.Equal(got, want) {
				t.Errorf("%s (head %d): JSON with encoded tail differs:\n got %s\nwant %s", fx.path, head, got, want)
			}
			if got, want := split.XML(), b.XML(); !bytes.Equal(got, want) {
				t.Errorf("%s (head %d): XML with encoded tail differs:\n got %s\nwant %s", fx.path, head, got, want)
			}
			// What is written parses back to the original.
			back, err := ParseBundle(split.JSON(), FormatJSON)
			if err != nil {
				t.Fatalf("%s: %v", fx.path, err)
			}
			if ok, diff := Equal(b, back); !ok {
				t.Errorf("%s: JSON with tail does not parse back equal: %s", fx.path, diff)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d bundle fixtures checked", checked)
	}
}

func TestEncodedTailNilAndEmpty(t *testing.T) {
	b := NewBundle("urn:uuid:1")
	want := b.JSON()
	b.SetEncodedTail(EncodeEntriesSized(nil, 0))
	if got := b.JSON(); !bytes.Equal(got, want) {
		t.Fatalf("empty tail changed the output: %s", got)
	}
	var none *EncodedEntries
	if none.Len() != 0 || none.Size() != 0 {
		t.Fatal("nil tail must be empty")
	}
}
