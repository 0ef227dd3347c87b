package dstu1

import (
	"fmt"
	"os"
	"testing"
)

// The CarePlan bundle of the brief: a full 1.3.5 CreateOrUpdateCarePlan with Organization, Patient,
// Practitioner and CareTeam entries (12 KB XML).
const benchBundle = "testdata/examples/createorupdatecareplan-request-vzvztest-careteam.xml"

func benchInputs(b *testing.B) (xmlBody, jsonBody []byte, bundle *Bundle) {
	b.Helper()
	xmlBody, err := os.ReadFile(benchBundle)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err = ParseBundle(xmlBody, FormatXML)
	if err != nil {
		b.Fatal(err)
	}
	return xmlBody, bundle.JSON(), bundle
}

func BenchmarkParseXML(b *testing.B) {
	x, _, _ := benchInputs(b)
	b.SetBytes(int64(len(x)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		if _, err := ParseBundle(x, FormatXML); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSON(b *testing.B) {
	_, j, _ := benchInputs(b)
	b.SetBytes(int64(len(j)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		if _, err := ParseBundle(j, FormatJSON); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteXML(b *testing.B) {
	_, _, bundle := benchInputs(b)
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		buf = bundle.AppendXML(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkWriteJSON(b *testing.B) {
	_, _, bundle := benchInputs(b)
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		buf = bundle.AppendJSON(buf[:0], JSONOptions{})
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkClone(b *testing.B) {
	_, _, bundle := benchInputs(b)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		_ = bundle.Clone()
	}
}

// BenchmarkWriteJSONEncodedTail is BenchmarkWriteJSON the way a server renders a stored message for a
// recipient: the MessageHeader entry written from the tree, the other entries copied pre-encoded.
func BenchmarkWriteJSONEncodedTail(b *testing.B) {
	_, _, bundle := benchInputs(b)
	split := *bundle
	split.Entries = bundle.Entries[:1]
	split.SetEncodedTail(EncodeEntriesSized(bundle.Entries[1:], 0))
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		buf = split.AppendJSON(buf[:0], JSONOptions{})
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeEntries is the one-time cost of preparing a stored message for the cache (both formats),
// without and with the size of the posted body as a hint (what the server passes).
func BenchmarkEncodeEntries(b *testing.B) {
	_, jsonBody, bundle := benchInputs(b)
	for _, hint := range []int{0, len(jsonBody)} {
		b.Run(fmt.Sprintf("hint=%d", hint), func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			for b.Loop() {
				EncodeEntriesSized(bundle.Entries[1:], hint)
			}
		})
	}
}
