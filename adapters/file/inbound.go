// Package file is the file adapter: inbound it watches a folder for CSV, JSON and NDJSON exports (any
// delimiter, UTF-8 or Windows-1252) and moves each file to done/ or error/ with a reason; outbound it writes
// one JSON file per delivery (idempotent) or appends NDJSON lines.
package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/transforms"
)

func init() {
	adapters.Register(adapters.Registration{ID: "inbound.file", Spec: InboundSpec, New: func() any { return new(Inbound) }})
	adapters.Register(adapters.Registration{ID: "outbound.file", Spec: OutboundSpec, New: func() any { return new(Outbound) }})
}

// InboundSpec is the inbound file adapter's settings.
var InboundSpec = adapters.Spec{
	Summary: "Watch a folder for CSV, JSON or NDJSON files; each file moves to done/ after its records are durable, or to error/ with <file>.error.txt listing the bad rows.",
	Fields: []adapters.Field{
		{Name: "path", Type: adapters.TypeString, Required: true, Description: "Folder to watch (relative to the route file)."},
		{Name: "pattern", Type: adapters.TypeString, Default: "*", Description: "Glob of file names to take, e.g. patients_*.csv."},
		{Name: "format", Type: adapters.TypeString, Default: "auto", Enum: []string{"auto", "csv", "json", "ndjson"}, Description: "File format; auto picks by extension (.json, .ndjson/.jsonl, anything else CSV)."},
		{Name: "delimiter", Type: adapters.TypeString, Default: ",", Description: "CSV field separator; EPD exports often use \";\"."},
		{Name: "encoding", Type: adapters.TypeString, Default: "utf-8", Enum: EncodingNames, Description: "Character encoding of the files."},
		{Name: "header", Type: adapters.TypeBool, Default: true, Description: "The first CSV row names the columns."},
		{Name: "columns", Type: adapters.TypeStrings, Description: "Column names. With header: the columns the header must have (expressions are checked against them at load). Without header: the names of the fields in order."},
		{Name: "on_bad_rows", Type: adapters.TypeString, Default: "reject_file", Enum: []string{"reject_file", "skip_rows"}, Description: "reject_file: a file with any bad row goes to error/ untouched; skip_rows: good rows are taken, the file goes to error/ with the bad rows listed."},
		{Name: "poll_interval", Type: adapters.TypeDuration, Default: "2s", Description: "How often the folder is scanned."},
		{Name: "min_age", Type: adapters.TypeDuration, Default: "1s", Description: "A file must be unchanged this long before it is read (so half-written exports are not taken)."},
		{Name: "done_dir", Type: adapters.TypeString, Default: "done", Description: "Where processed files go (relative to path)."},
		{Name: "error_dir", Type: adapters.TypeString, Default: "error", Description: "Where rejected files go, with <file>.error.txt (relative to path)."},
	},
}

// Inbound watches a folder.
type Inbound struct {
	Format       `yaml:",inline"`
	Path         string            `yaml:"path"`
	Pattern      string            `yaml:"pattern"`
	OnBadRows    string            `yaml:"on_bad_rows"`
	PollInterval adapters.Duration `yaml:"poll_interval"`
	MinAge       adapters.Duration `yaml:"min_age"`
	DoneDir      string            `yaml:"done_dir"`
	ErrorDir     string            `yaml:"error_dir"`

	log *slog.Logger
}

// Validate checks settings beyond the spec.
func (in *Inbound) Validate() error {
	if _, err := filepath.Match(in.Pattern, "x"); err != nil {
		return fmt.Errorf("pattern %q: %w", in.Pattern, err)
	}
	return in.Format.validate()
}

// Shape tells the route which fields records have (declared columns) and that CSV values are strings.
func (in *Inbound) Shape() transforms.Shape {
	if in.Format.Format != "csv" && in.Format.Format != "auto" {
		return transforms.Shape{}
	}
	s := transforms.Shape{Fields: in.Columns}
	// auto could still read JSON; only a definite CSV has string values.
	s.StringValues = in.Format.Format == "csv"
	return s
}

// Provision resolves the folders against the route's directory and creates them.
func (in *Inbound) Provision(_ context.Context, h adapters.Host) error {
	in.log = h.Logger
	if in.log == nil {
		in.log = slog.Default()
	}
	if !filepath.IsAbs(in.Path) {
		in.Path = filepath.Join(h.Dir, in.Path)
	}
	if !filepath.IsAbs(in.DoneDir) {
		in.DoneDir = filepath.Join(in.Path, in.DoneDir)
	}
	if !filepath.IsAbs(in.ErrorDir) {
		in.ErrorDir = filepath.Join(in.Path, in.ErrorDir)
	}
	for _, d := range []string{in.Path, in.DoneDir, in.ErrorDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("file inbound: create %s: %w", d, err)
		}
	}
	return nil
}

// DecodeFile reads records the way this adapter reads them; route tests use it for input files.
func (in *Inbound) DecodeFile(name string, data []byte) ([]adapters.Record, []RowError, error) {
	return in.Format.Decode(name, data)
}

// Run scans the folder until ctx ends.
func (in *Inbound) Run(ctx context.Context, sink adapters.Sink) error {
	t := time.NewTicker(in.PollInterval.Duration)
	defer t.Stop()
	for {
		if err := in.ScanOnce(ctx, sink); err != nil && ctx.Err() == nil {
			in.log.Warn("file inbound scan failed; retrying at the next poll", "path", in.Path, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ScanOnce processes every ready file once, oldest first.
func (in *Inbound) ScanOnce(ctx context.Context, sink adapters.Sink) error {
	entries, err := os.ReadDir(in.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", in.Path, err)
	}
	type cand struct {
		name string
		mod  time.Time
	}
	var files []cand
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".error.txt") {
			continue
		}
		if ok, _ := filepath.Match(in.Pattern, e.Name()); !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if time.Since(info.ModTime()) < in.MinAge.Duration {
			continue
		}
		files = append(files, cand{e.Name(), info.ModTime()})
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].name < files[j].name
	})
	for _, f := range files {
		if ctx.Err() != nil {
			return nil
		}
		if err := in.processFile(ctx, sink, f.name); err != nil {
			return err
		}
	}
	return nil
}

func (in *Inbound) processFile(ctx context.Context, sink adapters.Sink, name string) error {
	full := filepath.Join(in.Path, name)
	data, err := os.ReadFile(full)
	if err != nil {
		return fmt.Errorf("read %s: %w", full, err)
	}
	recs, bad, err := in.Format.Decode(name, data)
	if err != nil {
		return in.reject(name, []string{err.Error()})
	}
	// One export is identified by name, size and modification time: re-reading it after a crash yields the
	// same source id (so no second delivery), a new export of the same name does not.
	if info, err := os.Stat(full); err == nil {
		sourceID := transforms.StableID(name, fmt.Sprint(info.Size()), info.ModTime().UTC().Format(time.RFC3339Nano))
		for i := range recs {
			recs[i].Meta["source_id"] = sourceID
		}
	}
	if len(bad) > 0 && in.OnBadRows == "reject_file" {
		return in.reject(name, rowReasons(bad, "the file was not processed; fix the rows and put it back"))
	}
	if len(recs) > 0 {
		// Accept returns only when the records are durable; if it fails the file stays for the next poll.
		if err := sink.Accept(ctx, recs); err != nil {
			return fmt.Errorf("accept %d records from %s: %w", len(recs), name, err)
		}
	}
	if len(bad) > 0 {
		in.log.Warn("file had bad rows; good rows taken", "file", name, "records", len(recs), "bad_rows", len(bad))
		return in.reject(name, rowReasons(bad, fmt.Sprintf("%d good rows were processed; only the rows below were skipped", len(recs))))
	}
	if err := moveUnique(full, in.DoneDir, name); err != nil {
		return err
	}
	in.log.Info("file processed", "file", name, "records", len(recs))
	return nil
}

func rowReasons(bad []RowError, header string) []string {
	out := []string{header}
	for _, b := range bad {
		out = append(out, b.String())
	}
	return out
}

func (in *Inbound) reject(name string, reasons []string) error {
	full := filepath.Join(in.Path, name)
	target, err := uniqueName(in.ErrorDir, name)
	if err != nil {
		return err
	}
	text := strings.Join(reasons, "\n") + "\n"
	if err := os.WriteFile(target+".error.txt", []byte(text), 0o640); err != nil {
		return fmt.Errorf("write reason for %s: %w", name, err)
	}
	if err := os.Rename(full, target); err != nil {
		return fmt.Errorf("move %s to %s: %w", name, in.ErrorDir, err)
	}
	in.log.Warn("file rejected", "file", name, "to", target, "reason", reasons[0])
	return nil
}

func moveUnique(full, dir, name string) error {
	target, err := uniqueName(dir, name)
	if err != nil {
		return err
	}
	if err := os.Rename(full, target); err != nil {
		return fmt.Errorf("move %s to %s: %w", name, dir, err)
	}
	return nil
}

// uniqueName avoids overwriting an earlier file of the same name (nightly exports reuse names).
func uniqueName(dir, name string) (string, error) {
	target := filepath.Join(dir, name)
	for i := 1; ; i++ {
		_, err := os.Stat(target)
		if errors.Is(err, os.ErrNotExist) {
			return target, nil
		}
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", target, err)
		}
		ext := filepath.Ext(name)
		target = filepath.Join(dir, fmt.Sprintf("%s.%d%s", strings.TrimSuffix(name, ext), i, ext))
	}
}

// Interface guards.
var (
	_ adapters.Inbound     = (*Inbound)(nil)
	_ adapters.Provisioner = (*Inbound)(nil)
	_ adapters.Validator   = (*Inbound)(nil)
	_ adapters.Shaper      = (*Inbound)(nil)
)

// DecodeFileLines is DecodeFile with the bad rows as line numbers (route tests use it).
func (in *Inbound) DecodeFileLines(name string, data []byte) ([]adapters.Record, []int, error) {
	recs, bad, err := in.Format.Decode(name, data)
	lines := make([]int, len(bad))
	for i, b := range bad {
		lines[i] = b.Line
	}
	return recs, lines, err
}
