package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
)

type captureSink struct {
	recs []adapters.Record
	fail error
}

func (s *captureSink) Accept(_ context.Context, recs []adapters.Record) error {
	if s.fail != nil {
		return s.fail
	}
	s.recs = append(s.recs, recs...)
	return nil
}

func newInbound(t *testing.T, dir string, settings map[string]any) *Inbound {
	t.Helper()
	in := &Inbound{}
	in.Path, in.Pattern, in.OnBadRows, in.DoneDir, in.ErrorDir = ".", "*", "reject_file", "done", "error"
	in.Format = Format{Format: "csv", Delimiter: ";", Encoding: "windows-1252", Header: true}
	if v, ok := settings["on_bad_rows"]; ok {
		in.OnBadRows = v.(string)
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := in.Provision(context.Background(), adapters.Host{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return in
}

// Windows-1252: "Frédérique" with é = 0xE9.
const cp1252 = "nr;naam\n1;Fr\xe9d\xe9rique\n2;Jan\n"

func TestInboundMovesGoodFileToDone(t *testing.T) {
	dir := t.TempDir()
	in := newInbound(t, dir, nil)
	os.WriteFile(filepath.Join(dir, "export.csv"), []byte(cp1252), 0o644)
	sink := &captureSink{}
	if err := in.ScanOnce(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 2 || sink.recs[0].Fields["naam"] != "Frédérique" || sink.recs[0].Key != "export.csv:2" {
		t.Fatalf("records: %+v", sink.recs)
	}
	if _, err := os.Stat(filepath.Join(dir, "done", "export.csv")); err != nil {
		t.Fatal("file not in done/")
	}
	// A second export with the same name does not overwrite the first in done/.
	os.WriteFile(filepath.Join(dir, "export.csv"), []byte(cp1252), 0o644)
	in.ScanOnce(context.Background(), sink)
	if _, err := os.Stat(filepath.Join(dir, "done", "export.1.csv")); err != nil {
		t.Fatal("second file not kept as export.1.csv")
	}
}

func TestInboundRejectsBadRows(t *testing.T) {
	dir := t.TempDir()
	in := newInbound(t, dir, nil)
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("nr;naam\n1;a\n2;b;extra\n3\n"), 0o644)
	sink := &captureSink{}
	if err := in.ScanOnce(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 0 {
		t.Fatalf("reject_file must take no records, took %d", len(sink.recs))
	}
	reason, err := os.ReadFile(filepath.Join(dir, "error", "bad.csv.error.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"line 3: 3 fields, the header has 2", "line 4: 1 fields"} {
		if !strings.Contains(string(reason), want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.csv")); !os.IsNotExist(err) {
		t.Fatal("bad file still in the inbox")
	}
}

func TestInboundSkipRows(t *testing.T) {
	dir := t.TempDir()
	in := newInbound(t, dir, map[string]any{"on_bad_rows": "skip_rows"})
	os.WriteFile(filepath.Join(dir, "mixed.csv"), []byte("nr;naam\n1;a\n2;b;extra\n"), 0o644)
	sink := &captureSink{}
	in.ScanOnce(context.Background(), sink)
	if len(sink.recs) != 1 {
		t.Fatalf("took %d records, want 1", len(sink.recs))
	}
	if _, err := os.Stat(filepath.Join(dir, "error", "mixed.csv.error.txt")); err != nil {
		t.Fatal("no reason file")
	}
}

func TestInboundKeepsFileWhenSinkFails(t *testing.T) {
	dir := t.TempDir()
	in := newInbound(t, dir, nil)
	os.WriteFile(filepath.Join(dir, "x.csv"), []byte(cp1252), 0o644)
	err := in.ScanOnce(context.Background(), &captureSink{fail: errors.New("database down")})
	if err == nil {
		t.Fatal("want error")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.csv")); err != nil {
		t.Fatal("file must stay in the inbox when records are not durable")
	}
}

func TestDecodeFormats(t *testing.T) {
	f := Format{Format: "auto", Delimiter: ",", Encoding: "utf-8", Header: true}
	recs, bad, err := f.Decode("a.ndjson", []byte("{\"a\":1}\nnot json\n\n{\"a\":2}\n"))
	if err != nil || len(recs) != 2 || len(bad) != 1 || bad[0].Line != 2 {
		t.Fatalf("ndjson: %v %v %v", recs, bad, err)
	}
	recs, _, err = f.Decode("a.json", []byte(`[{"a":1},{"a":2}]`))
	if err != nil || len(recs) != 2 {
		t.Fatalf("json array: %v %v", recs, err)
	}
	if _, _, err := f.Decode("a.csv", []byte("a,b\n\xe9,1\n")); err == nil || !strings.Contains(err.Error(), "windows-1252") {
		t.Fatalf("invalid UTF-8 must say which encoding to set, got %v", err)
	}
	recs, _, err = f.Decode("a.csv", []byte("\xef\xbb\xbfa,b\n1,2\n"))
	if err != nil || recs[0].Fields["a"] != "1" {
		t.Fatalf("BOM: %v %v", recs, err)
	}
	g := Format{Format: "csv", Delimiter: ",", Encoding: "utf-8", Header: true, Columns: []string{"a", "c"}}
	if _, _, err := g.Decode("a.csv", []byte("a,b\n1,2\n")); err == nil || !strings.Contains(err.Error(), `lacks column "c"`) {
		t.Fatalf("missing declared column: %v", err)
	}
}

func TestOutboundIdempotent(t *testing.T) {
	dir := t.TempDir()
	o := &Outbound{Dir: dir, Format: "ndjson", FileName: "out.ndjson"}
	if err := o.Provision(context.Background(), adapters.Host{}); err != nil {
		t.Fatal(err)
	}
	d := adapters.Delivery{Route: "r", IdempotencyKey: "k1", Fields: map[string]any{"a": 1}}
	for i := 0; i < 2; i++ {
		if err := o.Deliver(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	// A restarted adapter remembers the keys already in the file.
	o2 := &Outbound{Dir: dir, Format: "ndjson", FileName: "out.ndjson"}
	o2.Provision(context.Background(), adapters.Host{})
	o2.Deliver(context.Background(), d)
	b, _ := os.ReadFile(filepath.Join(dir, "out.ndjson"))
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Fatalf("%d lines, want 1:\n%s", n, b)
	}
	// envelope defaults to false: the line is the fields (issue 14, defect 26).
	if got := strings.TrimSpace(string(b)); got != `{"a":1}` {
		t.Fatalf("line %s, want the fields only", got)
	}
}

func TestOutboundNDJSONEnvelope(t *testing.T) {
	dir := t.TempDir()
	o := &Outbound{Dir: dir, Format: "ndjson", FileName: "out.ndjson", Envelope: true}
	if err := o.Provision(context.Background(), adapters.Host{}); err != nil {
		t.Fatal(err)
	}
	d := adapters.Delivery{Route: "r", RecordKey: "rec", IdempotencyKey: "k1", Fields: map[string]any{"a": 1}}
	o.Deliver(context.Background(), d)
	o2 := &Outbound{Dir: dir, Format: "ndjson", FileName: "out.ndjson", Envelope: true}
	o2.Provision(context.Background(), adapters.Host{})
	o2.Deliver(context.Background(), d)
	b, _ := os.ReadFile(filepath.Join(dir, "out.ndjson"))
	if got := strings.TrimSpace(string(b)); got != `{"route":"r","record_key":"rec","idempotency_key":"k1","fields":{"a":1}}` {
		t.Fatalf("got %s", got)
	}
}
