package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/koppelpoort/koppelpoort/adapters"
)

// OutboundSpec is the outbound file adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Write each delivery as a JSON file named after its idempotency key (a retry overwrites the same file), or append NDJSON lines (a key already written is skipped; the keys are kept in <file_name>.keys).",
	Fields: []adapters.Field{
		{Name: "dir", Type: adapters.TypeString, Required: true, Description: "Folder to write to (relative to the route file)."},
		{Name: "format", Type: adapters.TypeString, Default: "json", Enum: []string{"json", "ndjson"}, Description: "json: one file per delivery; ndjson: one line per delivery in file_name."},
		{Name: "file_name", Type: adapters.TypeString, Default: "out.ndjson", Description: "NDJSON file name (format ndjson)."},
		{Name: "envelope", Type: adapters.TypeBool, Default: false, Description: "Wrap the fields with route, record_key, idempotency_key and the Koppeltaal message (if any)."},
	},
}

// Outbound writes deliveries to files.
type Outbound struct {
	Dir      string `yaml:"dir"`
	Format   string `yaml:"format"`
	FileName string `yaml:"file_name"`
	Envelope bool   `yaml:"envelope"`

	mu   sync.Mutex
	seen map[string]bool
}

type envelope struct {
	Route          string                      `json:"route"`
	RecordKey      string                      `json:"record_key"`
	IdempotencyKey string                      `json:"idempotency_key"`
	Fields         map[string]any              `json:"fields"`
	Koppeltaal     *adapters.KoppeltaalMessage `json:"koppeltaal,omitempty"`
}

// Provision creates the folder and, for NDJSON, reads the keys already written.
func (o *Outbound) Provision(_ context.Context, h adapters.Host) error {
	if !filepath.IsAbs(o.Dir) {
		o.Dir = filepath.Join(h.Dir, o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return fmt.Errorf("file outbound: create %s: %w", o.Dir, err)
	}
	o.seen = map[string]bool{}
	if o.Format != "ndjson" {
		return nil
	}
	// The keys already written: the .keys file beside the data, and envelope lines in files written before it.
	if err := o.readKeys(o.keysPath(), func(line []byte) string { return string(line) }); err != nil {
		return err
	}
	return o.readKeys(filepath.Join(o.Dir, o.FileName), func(line []byte) string {
		var e struct {
			Key string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(line, &e)
		return e.Key
	})
}

func (o *Outbound) keysPath() string { return filepath.Join(o.Dir, o.FileName+".keys") }

func (o *Outbound) readKeys(path string, key func(line []byte) string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("file outbound: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if k := key(sc.Bytes()); k != "" {
			o.seen[k] = true
		}
	}
	return sc.Err()
}

// Deliver writes one delivery.
func (o *Outbound) Deliver(_ context.Context, d adapters.Delivery) error {
	var v any = d.Fields
	if o.Envelope {
		v = envelope{Route: d.Route, RecordKey: d.RecordKey, IdempotencyKey: d.IdempotencyKey, Fields: d.Fields, Koppeltaal: d.Koppeltaal}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Format == "ndjson" {
		if o.seen[d.IdempotencyKey] {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode delivery: %w", err)
		}
		// The line first, then its key: a crash in between repeats the line on retry (at least once), never
		// loses it.
		if err := appendSynced(filepath.Join(o.Dir, o.FileName), append(b, '\n')); err != nil {
			return err
		}
		if err := appendSynced(o.keysPath(), []byte(d.IdempotencyKey+"\n")); err != nil {
			return err
		}
		o.seen[d.IdempotencyKey] = true
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	name := filepath.Join(o.Dir, d.Route+"-"+d.IdempotencyKey+".json")
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return adapters.Transient(fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, name); err != nil {
		return adapters.Transient(fmt.Errorf("rename %s: %w", tmp, err))
	}
	return nil
}

// appendSynced appends b to the file at path and fsyncs it.
func appendSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return adapters.Transient(fmt.Errorf("open %s: %w", filepath.Base(path), err))
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return adapters.Transient(fmt.Errorf("append to %s: %w", filepath.Base(path), err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return adapters.Transient(fmt.Errorf("sync %s: %w", filepath.Base(path), err))
	}
	if err := f.Close(); err != nil {
		return adapters.Transient(err)
	}
	return nil
}

// Interface guards.
var (
	_ adapters.Outbound    = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
)
