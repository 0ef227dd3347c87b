package dstu1

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"testing"
)

func BenchmarkScanXMLTokens(b *testing.B) {
	data, err := os.ReadFile(benchBundle)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		sc := newXMLScanner(data)
		for {
			tok, err := sc.next()
			if err != nil {
				b.Fatal(err)
			}
			if tok.kind == xEOF {
				break
			}
		}
	}
}

func BenchmarkScanJSONValues(b *testing.B) {
	_, j, _ := benchInputs(b)
	b.SetBytes(int64(len(j)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		s := jsonScanner{data: j, src: string(j), lim: Limits{}.withDefaults()}
		if _, err := s.document(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingXMLTokens is the baseline the tokenizer replaced: encoding/xml reading the same bundle.
func BenchmarkEncodingXMLTokens(b *testing.B) {
	data, err := os.ReadFile(benchBundle)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		d := xml.NewDecoder(bytes.NewReader(data))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
