package koppeltaal

import (
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

func cacheTestBundle() *dstu1.Bundle {
	b := dstu1.NewMessageBundle("urn:uuid:feed", "A")
	mh := dstu1.NewResource("MessageHeader")
	mh.Add(dstu1.NewPrimitive("identifier", "m1"))
	b.AddEntry(mh, "urn:uuid:mh", "")
	p := dstu1.NewResource("Patient")
	p.Add(dstu1.NewPrimitive("gender", "F"))
	b.AddEntry(p, "https://a.example/Patient/1", "https://a.example/Patient/1/_history/v1")
	return b
}

// A recipient's changes to its copy must not reach the cache or other recipients, and a copy
// writes the same bytes as the message it was made from.
func TestMsgCacheCopiesAreIndependent(t *testing.T) {
	c := newMsgCache(10, 1<<20)
	k := msgKey{messageID: 7}
	orig := cacheTestBundle()
	wantJSON, wantXML := orig.JSON(), orig.XML()
	cached, size := cacheForm(orig, 0)
	if size <= 0 || len(cached.Entries) != 1 || cached.EncodedTail().Len() != 1 {
		t.Fatalf("cache form: %d entries, tail %d, size %d", len(cached.Entries), cached.EncodedTail().Len(), size)
	}
	c.put(k, store.Message{ID: 7}, cached, size)

	_, b1, ok := c.get(k)
	if !ok {
		t.Fatal("miss after put")
	}
	if got := b1.JSON(); string(got) != string(wantJSON) {
		t.Fatalf("cached copy writes other JSON:\n got %s\nwant %s", got, wantJSON)
	}
	if got := b1.XML(); string(got) != string(wantXML) {
		t.Fatalf("cached copy writes other XML:\n got %s\nwant %s", got, wantXML)
	}
	b1.Entries[0].SetTitle("changed")
	b1.Entries[0].SetSelfLink("x")
	b1.Entries[0].Resource.Add(dstu1.NewPrimitive("extra", "1"))
	b1.Updated = "now"
	b1.SetLink("self", "y")

	m, b2, ok := c.get(k)
	if !ok || m.ID != 7 {
		t.Fatalf("get = %v, %v", m, ok)
	}
	if got := b2.JSON(); string(got) != string(wantJSON) {
		t.Fatalf("a recipient's changes reached the cache:\n got %s\nwant %s", got, wantJSON)
	}
}

func TestMsgCacheBounds(t *testing.T) {
	tests := []struct {
		name            string
		maxItems, bytes int
		size            int
		puts            int
		wantItems       int
	}{
		{"by count", 3, 1 << 20, 10, 5, 3},
		{"by bytes", 100, 25, 10, 5, 2},
		{"too large for the cache", 100, 25, 30, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMsgCache(tt.maxItems, tt.bytes)
			for i := 1; i <= tt.puts; i++ {
				c.put(msgKey{messageID: int64(i)}, store.Message{ID: int64(i)}, cacheTestBundle(), tt.size)
			}
			if c.ll.Len() != tt.wantItems || len(c.items) != tt.wantItems || c.bytes != tt.wantItems*tt.size {
				t.Fatalf("items %d/%d bytes %d, want %d items", c.ll.Len(), len(c.items), c.bytes, tt.wantItems)
			}
			if tt.wantItems > 0 {
				// The most recent ones survive.
				if _, _, ok := c.get(msgKey{messageID: int64(tt.puts)}); !ok {
					t.Fatal("most recent message evicted")
				}
				if _, _, ok := c.get(msgKey{messageID: 1}); ok {
					t.Fatal("oldest message kept")
				}
			}
		})
	}
}
