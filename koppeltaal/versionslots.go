package koppeltaal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// versionSlots lets a message body be encoded before its versions are known:
// each versioned reference is written with a placeholder, and fill replaces the
// placeholders once the transaction has issued the versions. Placeholders are
// a random per-message prefix plus a number, made only of letters and digits,
// so they are written verbatim in XML and JSON and cannot occur in what the
// sender wrote.
type versionSlots struct {
	prefix string
	n      int
}

const slotDigits = 4

func newVersionSlots() *versionSlots {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return &versionSlots{prefix: "kpv" + hex.EncodeToString(r[:])}
}

// add returns a new placeholder.
func (s *versionSlots) add() string {
	s.n++
	return fmt.Sprintf("%s%0*d", s.prefix, slotDigits, s.n)
}

// fill returns tmpl with every placeholder replaced by its value in values
// (placeholders without a value are left as they are).
func (s *versionSlots) fill(tmpl []byte, values map[string]string) []byte {
	size := len(s.prefix) + slotDigits
	out := make([]byte, 0, len(tmpl)+len(values)*16)
	prefix := []byte(s.prefix)
	for {
		i := bytes.Index(tmpl, prefix)
		if i < 0 || i+size > len(tmpl) {
			break
		}
		out = append(out, tmpl[:i]...)
		slot := string(tmpl[i : i+size])
		if v, ok := values[slot]; ok {
			out = append(out, v...)
		} else {
			out = append(out, slot...)
		}
		tmpl = tmpl[i+size:]
	}
	return append(out, tmpl...)
}
