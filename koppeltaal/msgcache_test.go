package koppeltaal

import (
	"os"
	"testing"
	"unsafe"

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
	c := newMsgCache(10, 1<<20, 1<<20)
	k := msgKey{messageID: 7}
	orig := cacheTestBundle()
	wantJSON, wantXML := orig.JSON(), orig.XML()
	cached, size := cacheForm(orig, 0)
	if size <= 0 || len(cached.Entries) != 1 || cached.EncodedTail().Len() != 1 {
		t.Fatalf("cache form: %d entries, tail %d, size %d", len(cached.Entries), cached.EncodedTail().Len(), size)
	}
	c.put(k, store.Message{ID: 7}, cached, size, 0)

	_, b1, ok := c.get(k, store.Entry{MessageID: 7}, 0)
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

	m, b2, ok := c.get(k, store.Entry{MessageID: 7}, 0)
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
		maxEntry        int
		size            int
		puts            int
		wantItems       int
	}{
		{"by count", 3, 1 << 20, 1 << 20, 10, 5, 3},
		{"by bytes", 100, 25, 25, 10, 5, 2},
		{"too large for the cache", 100, 25, 100, 30, 5, 0},
		{"too large for one entry", 100, 1 << 20, 20, 30, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMsgCache(tt.maxItems, tt.bytes, tt.maxEntry)
			for i := 1; i <= tt.puts; i++ {
				c.put(msgKey{messageID: int64(i)}, store.Message{ID: int64(i)}, cacheTestBundle(), tt.size, 0)
			}
			if c.ll.Len() != tt.wantItems || len(c.items) != tt.wantItems || c.bytes != tt.wantItems*tt.size {
				t.Fatalf("items %d/%d bytes %d, want %d items", c.ll.Len(), len(c.items), c.bytes, tt.wantItems)
			}
			if tt.wantItems > 0 {
				// The most recent ones survive.
				if _, _, ok := c.get(msgKey{messageID: int64(tt.puts)}, store.Entry{MessageID: int64(tt.puts)}, 0); !ok {
					t.Fatal("most recent message evicted")
				}
				if _, _, ok := c.get(msgKey{messageID: 1}, store.Entry{MessageID: 1}, 0); ok {
					t.Fatal("oldest message kept")
				}
			}
		})
	}
}

// A cached message is only served for a queue entry of that very message: the
// same id with other message fields (a reused id, issue 15) is a miss that
// drops the stale entry, and a moved store epoch empties the cache.
func TestMsgCacheChecksIdentity(t *testing.T) {
	const ident = "5b0c1f8e-0d7a-4a53-9d6e-2f4c8a1b3e70"
	msg := store.Message{ID: 7, DomainID: 1, Event: "CreateOrUpdatePatient", MessageIdentifier: ident,
		FocalRef: "https://a.example/Patient/1", PatientRef: "https://a.example/Patient/1", CreatedAt: 1000}
	entry := store.Entry{ID: 3, MessageID: 7, MessageIdentifier: ident, DomainID: 1, Event: msg.Event, FocalRef: msg.FocalRef,
		PatientRef: msg.PatientRef, CreatedAt: 1000}
	k := msgKey{messageID: 7}
	for _, tt := range []struct {
		name   string
		change func(e *store.Entry)
	}{
		// Everything else equal: the same patient posted again within the microsecond.
		{"message identifier", func(e *store.Entry) { e.MessageIdentifier = "0a2f35d0-6c1e-4f7b-8e21-9b3d5c7a1f42" }},
		{"created_at", func(e *store.Entry) { e.CreatedAt++ }},
		{"patient", func(e *store.Entry) { e.PatientRef = "https://a.example/Patient/2" }},
		{"focal resource", func(e *store.Entry) { e.FocalRef = "https://a.example/CarePlan/1" }},
		{"event", func(e *store.Entry) { e.Event = "CreateOrUpdateCarePlan" }},
		{"domain", func(e *store.Entry) { e.DomainID = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newMsgCache(10, 1<<20, 1<<20)
			cached, size := cacheForm(cacheTestBundle(), 0)
			c.put(k, msg, cached, size, 0)
			if _, _, ok := c.get(k, entry, 0); !ok {
				t.Fatal("miss for the message's own entry")
			}
			other := entry
			tt.change(&other)
			if _, _, ok := c.get(k, other, 0); ok {
				t.Fatal("hit for an entry of another message with the same id")
			}
			if _, _, ok := c.get(k, entry, 0); ok || c.ll.Len() != 0 {
				t.Fatal("the stale entry was kept")
			}
		})
	}
	c := newMsgCache(10, 1<<20, 1<<20)
	cached, size := cacheForm(cacheTestBundle(), 0)
	old := entry // queued before migration 0027: the other fields decide
	old.MessageIdentifier = ""
	c.put(k, msg, cached, size, 0)
	if _, _, ok := c.get(k, old, 0); !ok {
		t.Fatal("miss for the message's entry queued without an identifier")
	}
	c.put(k, msg, cached, size, 4)
	if _, _, ok := c.get(k, entry, 5); ok || c.ll.Len() != 0 {
		t.Fatal("entry kept after the epoch moved")
	}
	c.put(k, msg, cached, size, 4) // read before the move
	if c.ll.Len() != 0 {
		t.Fatal("a message read under an older epoch was cached")
	}
	// A message under a reused id replaces the cached one on put.
	c.put(k, msg, cached, size, 5)
	newer := msg
	newer.CreatedAt, newer.PatientRef = 2000, "https://a.example/Patient/2"
	c.put(k, newer, cached, size, 5)
	e2 := entry
	e2.CreatedAt, e2.PatientRef = 2000, newer.PatientRef
	if m, _, ok := c.get(k, e2, 5); !ok || m != newer || c.ll.Len() != 1 {
		t.Fatalf("put did not replace the message cached under a reused id: %v %v", m, ok)
	}
}

// What the search head cache keeps of a parsed message shares no memory with the message it was parsed
// from (the parser's strings are slices of the body: keeping one keeps the whole body), in any string of
// the feed, the entry or the resource tree; and it writes what the message's MessageHeader entry wrote.
func TestHeadFormKeepsNothingOfTheBody(t *testing.T) {
	body, err := os.ReadFile("testdata/examples/bv-step1-createorupdatecareplan-request.xml")
	if err != nil {
		t.Fatal(err)
	}
	example, err := dstu1.ParseBundle(body, dstu1.FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	// Every Atom field of the entry set, so that each is checked.
	mhEntry := example.Entries[0]
	mhEntry.SetSelfLink("https://kt.example/MessageHeader/1/_history/1")
	mhEntry.Authors = append(mhEntry.Authors, dstu1.Person{Name: "portal", URI: "https://portal.example"})
	mhEntry.Categories = append(mhEntry.Categories, dstu1.Category{Term: "t", Label: "l", Scheme: "https://scheme.example"})
	mhEntry.Published = "2026-12-03T12:00:00Z"
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		encoded := example.XML()
		if f == dstu1.FormatJSON {
			encoded = example.JSON()
		}
		msg, err := dstu1.ParseBundle(encoded, f)
		if err != nil {
			t.Fatal(err)
		}
		head := *msg
		head.Entries = msg.Entries[:1]
		want := head.JSON()
		kept := headForm(&head)
		if got := kept.JSON(); string(got) != string(want) {
			t.Fatalf("%s: the kept header writes\n%s\nwant\n%s", f, got, want)
		}
		from, got := headStrings(&head), headStrings(kept)
		if len(from) != len(got) || len(got) < 20 {
			t.Fatalf("%s: %d strings kept of %d", f, len(got), len(from))
		}
		for i := range got {
			if got[i] != "" && unsafe.StringData(got[i]) == unsafe.StringData(from[i]) {
				t.Errorf("%s: %q is kept as a slice of the parsed message", f, got[i])
			}
		}
	}
}

// headStrings lists every string of b's feed and first entry, in order.
func headStrings(b *dstu1.Bundle) []string {
	out := []string{b.ID, b.Title, b.Updated, b.Published, b.TotalResults}
	atom := func(authors []dstu1.Person, links []dstu1.Link, categories []dstu1.Category) {
		for _, p := range authors {
			out = append(out, p.Name, p.URI)
		}
		for _, l := range links {
			out = append(out, l.Rel, l.Href)
		}
		for _, k := range categories {
			out = append(out, k.Term, k.Label, k.Scheme)
		}
	}
	atom(b.Authors, b.Links, b.Categories)
	e := b.Entries[0]
	out = append(out, e.Title, e.ID, e.Updated, e.Published, e.Summary, e.Deleted)
	atom(e.Authors, e.Links, e.Categories)
	e.Resource.Walk(func(n *dstu1.Node) bool {
		out = append(out, n.Name, n.ID, n.URL, n.Value, n.XHTML)
		return true
	})
	return out
}
