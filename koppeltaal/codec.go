package koppeltaal

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Format is a wire form: dstu1.FormatXML or dstu1.FormatJSON.
type Format = dstu1.Format

// formatName is how a body's format is stored.
func formatName(f Format) string {
	if f == dstu1.FormatJSON {
		return "json"
	}
	return "xml"
}

func formatFromName(n string) Format {
	if n == "json" {
		return dstu1.FormatJSON
	}
	return dstu1.FormatXML
}

// EncodeBundle writes b in format f.
func EncodeBundle(b *dstu1.Bundle, f Format) []byte {
	if f == dstu1.FormatJSON {
		return b.JSON()
	}
	return b.XML()
}

// encodeBundleSized is EncodeBundle into a buffer allocated once, for a bundle
// about size bytes long (the body it was parsed from).
func encodeBundleSized(b *dstu1.Bundle, f Format, size int) []byte {
	buf := make([]byte, 0, size+size/8+512)
	if f == dstu1.FormatJSON {
		return b.AppendJSON(buf, dstu1.JSONOptions{})
	}
	return b.AppendXML(buf)
}

// EncodeResource writes r in format f.
func EncodeResource(r *dstu1.Resource, f Format) []byte {
	if f == dstu1.FormatJSON {
		return r.JSON()
	}
	return r.XML()
}

// ContentHash is the format-independent digest of a resource tree stored with
// each version: a resource sent again with the same digest is unchanged and
// keeps its version. Exported for tools that write straight into a store.
func ContentHash(r *dstu1.Resource) string { return contentHash(r) }

// contentHash is a format-independent digest of a resource tree, used to tell
// whether a non-focal resource changed (and so needs a new version).
func contentHash(r *dstu1.Resource) string {
	h := sha256.New()
	hashNode(h, r.Node)
	return hex.EncodeToString(h.Sum(nil))
}

func hashNode(h hash.Hash, n *dstu1.Node) {
	if n == nil {
		return
	}
	var lenBuf [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint64(lenBuf[:], uint64(len(s)))
		h.Write(lenBuf[:])
		h.Write([]byte(s))
	}
	str(n.Name)
	str(n.ID)
	str(n.URL)
	if n.HasValue {
		str("=" + n.Value)
	} else {
		str("")
	}
	str(n.XHTML)
	binary.BigEndian.PutUint64(lenBuf[:], uint64(len(n.Children)))
	h.Write(lenBuf[:])
	for _, c := range n.Children {
		hashNode(h, c)
	}
}
