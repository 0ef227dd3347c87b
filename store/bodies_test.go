package store

import (
	"bytes"
	"os"
	"testing"
)

func careplanBodies(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{"careplan.json", "careplan.xml"} {
		b, err := os.ReadFile("../loadtest/testdata/golden/" + f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// Bodies round-trip; a body stored before compression (or on PostgreSQL) reads as it is.
func TestBodyCodec(t *testing.T) {
	sq, pg := &Tx{dialect: SQLite}, &Tx{dialect: Postgres}
	for name, b := range careplanBodies(t) {
		enc := sq.encodeBody(b)
		if len(enc) >= len(b)/3 {
			t.Errorf("%s: %d bytes compressed to %d", name, len(b), len(enc))
		}
		for _, stored := range [][]byte{enc, b, pg.encodeBody(b)} {
			got, err := decodeBody(stored)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: decode(%d bytes) = %d bytes, %v", name, len(stored), len(got), err)
			}
		}
		t.Logf("%s: %d → %d bytes", name, len(b), len(enc))
	}
	if _, err := decodeBody(append(append([]byte{}, zstdMagic...), "garbage"...)); err == nil {
		t.Fatal("a corrupt compressed body decoded without error")
	}
}

func BenchmarkBodyCodec(b *testing.B) {
	sq := &Tx{dialect: SQLite}
	for name, body := range careplanBodies(b) {
		enc := sq.encodeBody(body)
		b.Run("encode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sq.encodeBody(body)
			}
			b.ReportMetric(float64(len(enc)), "stored-bytes")
		})
		b.Run("decode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := decodeBody(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
