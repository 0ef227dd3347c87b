package koppeltaal

import (
	"os"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// benchMessage parses a real CarePlan message (Koppeltaal's own example) as loadMessage does.
func benchMessage(b *testing.B) ([]byte, *dstu1.Bundle) {
	body, err := os.ReadFile("testdata/examples/bv-step1-createorupdatecareplan-request.xml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := dstu1.ParseBundle(body, dstu1.FormatXML)
	if err != nil {
		b.Fatal(err)
	}
	return body, m
}

// BenchmarkMessageCacheCopies measures what the two caches copy per message: cacheForm when a message is
// posted or claimed for the first time, the recipient's copy of a cached message (claim and acknowledge),
// headForm when a search reads a message, and the recipient's copy of a kept header (every search result).
func BenchmarkMessageCacheCopies(b *testing.B) {
	body, msg := benchMessage(b)
	k, e := msgKey{messageID: 1}, store.Entry{MessageID: 1}
	b.Run("cacheForm", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			cacheForm(msg, len(body))
		}
	})
	b.Run("claim-copy", func(b *testing.B) {
		c := newMsgCache(10, 1<<24, 1<<24)
		cached, size := cacheForm(msg, len(body))
		c.put(k, store.Message{ID: 1}, cached, size, 0)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, ok := c.get(k, e, 0); !ok {
				b.Fatal("miss")
			}
		}
	})
	head := *msg
	head.Entries = msg.Entries[:1]
	b.Run("headForm", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			headForm(&head)
		}
	})
	b.Run("search-copy", func(b *testing.B) {
		c := newMsgCache(10, 1<<24, 1<<24)
		c.put(k, store.Message{ID: 1}, headForm(&head), headCacheSize, 0)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, ok := c.get(k, e, 0); !ok {
				b.Fatal("miss")
			}
		}
	})
}
