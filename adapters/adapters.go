// Package adapters defines what inbound and outbound adapters are, the registry they join in init() under a
// namespaced id ("inbound.file", "outbound.http", ...), and the config spec that drives their decoding, lint,
// JSON Schema and docs. The adapters themselves live in sub-packages, one each.
package adapters

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Record is one inbound unit of work: a CSV row, a JSON object, a database row, a Koppeltaal message.
type Record struct {
	// Key identifies the record at its source (row key, file+line, message id); it goes into logs and
	// idempotency keys, so it must be stable across re-deliveries of the same record.
	Key string `json:"key"`
	// Fields are the record's values; expressions see them as `record`.
	Fields map[string]any `json:"fields"`
	// Meta are facts about the origin (adapter, file, line); expressions see them as `meta`.
	Meta map[string]string `json:"meta,omitempty"`
}

// Delivery is one message for an outbound adapter.
type Delivery struct {
	Route string
	// Output is the name of the output in the route file.
	Output string
	// RecordKey is the inbound record's key.
	RecordKey string
	// IdempotencyKey is stable for the same route, record and content: a retry carries the same key, so the
	// adapter can make the second attempt a no-op.
	IdempotencyKey string
	// ContentHash identifies the content (Fields and Koppeltaal) whatever source it came from: change
	// detection (a route's skip_unchanged) compares it with the last one sent for the record key.
	ContentHash string `json:",omitempty"`
	// Fields is the transformed record (the `fields` of the transform, or the record itself).
	Fields map[string]any
	// Koppeltaal is set when the transform declared a Koppeltaal message; it is the DSTU1 JSON bundle
	// (without the domain-specific URLs, which the Koppeltaal output fills in).
	Koppeltaal *KoppeltaalMessage
}

// KoppeltaalMessage is a Koppeltaal message a transform declared, before it is bound to a server.
type KoppeltaalMessage struct {
	Event string
	// Patient is the focal patient's resource id (type Patient), empty for messages without one.
	Patient string
	// Resources are the message's resources in order; the first is the focal resource.
	Resources []KoppeltaalResource
}

// KoppeltaalResource is one resource of a declared Koppeltaal message.
type KoppeltaalResource struct {
	Type string
	ID   string
	// Body is the resource content without resourceType and id.
	Body map[string]any
	// Parsed is Body as the codec read it when the route checked the message (client.ParseResources), so
	// an output in this process builds the message from it without encoding and parsing Body again; it is
	// not stored with a delivery (nil after one is read back) and must not be changed.
	Parsed *dstu1.Resource `json:"-"`
}

// Sink receives inbound records. Accept returns only after the records are durable (or processed); an error
// means none of them were taken and the source must keep them.
type Sink interface {
	Accept(ctx context.Context, recs []Record) error
}

// Checker is implemented by sinks that can run the route's rules and transforms on records without storing
// or delivering anything. An inbound that answers its sender (HTTP) uses it to report the keys the route gives
// the records and, when asked to, to refuse records the route could never deliver.
type Checker interface {
	Check(ctx context.Context, recs []Record) []Verdict
}

// Verdict is what the route would do with one record.
type Verdict struct {
	// Key is the record key the route computes (its key: expression), else the inbound's.
	Key string `json:"key"`
	// Outcome is "routed", "dropped" or "dead_lettered".
	Outcome string `json:"outcome"`
	// Reason explains a drop or dead letter.
	Reason string `json:"reason,omitempty"`
}

// TxSink is implemented by the runtime's sink: AcceptTx takes records on the caller's store transaction,
// for inbounds whose source lives in the store (a local Koppeltaal mailbox), so that taking items from the
// source and accepting their records commit together. It must not be called inside Store.Update's
// function of another store.
type TxSink interface {
	Sink
	AcceptTx(ctx context.Context, tx *store.Tx, recs []Record) error
}

// Inbound feeds a route until ctx ends.
type Inbound interface {
	Run(ctx context.Context, sink Sink) error
}

// Outbound delivers messages. Deliver must be idempotent for the same Delivery.IdempotencyKey.
type Outbound interface {
	Deliver(ctx context.Context, d Delivery) error
}

// TxOutbound is implemented by outputs whose target lives in the store itself (a local Koppeltaal domain).
// The runtime calls DeliverTx inside the transaction that consumes and routes the record: the record, the
// delivered message and the record's outcome commit together (the outbox), with nothing left pending. An
// error wrapping ErrTransient (or any error of the store) fails the whole transaction, which is retried;
// any other error (a refusal) dead-letters the record's delivery and the transaction goes on, so DeliverTx
// must refuse before its first write: nothing it wrote is undone (a savepoint per record cost SQLite a copy
// of every page the record touched). DeliverTx must only use tx (never Store.Update: the writer is busy
// with tx).
type TxOutbound interface {
	Outbound
	DeliverTx(ctx context.Context, tx *store.Tx, d Delivery) error
	// InTx reports whether this output is set up to deliver in the store (a Koppeltaal output naming a
	// local instance) rather than by calling out (one pointing at a remote server).
	InTx() bool
}

// Provisioner is implemented by adapters that need set-up after decoding (open files, connections).
type Provisioner interface {
	Provision(ctx context.Context, host Host) error
}

// Validator is implemented by adapters whose settings need checks beyond the spec.
type Validator interface {
	Validate() error
}

// Shaper is implemented by inbound adapters that know the record shape before the first record
// (e.g. a CSV header declared in the settings), so expressions can be type-checked at load.
type Shaper interface {
	Shape() transforms.Shape
}

// Host is what the runtime offers adapters during provisioning.
type Host struct {
	Logger *slog.Logger
	// Dir is the directory of the route file; relative paths in settings are relative to it.
	Dir string
	// Store is the store's database: the one place durable state lives (and, on SQLite, its one writer).
	Store *store.Store
	// Koppeltaal is this process's Koppeltaal server (nil when it serves no Koppeltaal domains): a
	// Koppeltaal adapter naming one of its instances works on it in-process.
	Koppeltaal *koppeltaal.Service
	// Route is the route name.
	Route string
	// Mount registers an HTTP handler on the server's router (nil when there is no server, e.g. in tests).
	Mount func(pattern string, h http.Handler)
	// Checkpoints persists source positions (cursor values) per route and key.
	Checkpoints Checkpoints
	// RequestLog is the server's HTTP request log in the database (package httplog's middleware), for an
	// adapter that serves HTTP on a listener of its own; nil: none.
	RequestLog func(http.Handler) http.Handler
}

// Checkpoints stores source positions durably.
type Checkpoints interface {
	Get(ctx context.Context, route, key string) (string, bool, error)
	Set(ctx context.Context, route, key, value string) error
}

// ErrTransient marks an outbound failure worth retrying (timeouts, 5xx, connection refused).
var ErrTransient = transientError{}

type transientError struct{}

func (transientError) Error() string { return "transient" }

// Transient wraps err so errors.Is(err, ErrTransient) holds.
func Transient(err error) error { return fmt.Errorf("%w: %w", ErrTransient, err) }

// Registration is one adapter kind in the registry.
type Registration struct {
	// ID is namespaced: "inbound.<name>" or "outbound.<name>".
	ID   string
	Spec Spec
	// New returns a zero adapter ready for decoding.
	New func() any
}

// Name is the id without its namespace, as written in route files.
func (r Registration) Name() string { return r.ID[strings.IndexByte(r.ID, '.')+1:] }

var (
	registryMu sync.RWMutex
	registry   = map[string]Registration{}
)

// Register adds an adapter kind; call it from init(). A duplicate or malformed id panics at start-up.
func Register(r Registration) {
	ns, name, ok := strings.Cut(r.ID, ".")
	if !ok || (ns != "inbound" && ns != "outbound") || name == "" {
		panic(fmt.Sprintf("adapters: id %q must be inbound.<name> or outbound.<name>", r.ID))
	}
	if r.New == nil {
		panic(fmt.Sprintf("adapters: %s has no constructor", r.ID))
	}
	v := r.New()
	if _, ok := v.(Inbound); ns == "inbound" && !ok {
		panic(fmt.Sprintf("adapters: %s does not implement Inbound", r.ID))
	}
	if _, ok := v.(Outbound); ns == "outbound" && !ok {
		panic(fmt.Sprintf("adapters: %s does not implement Outbound", r.ID))
	}
	if err := r.Spec.check(); err != nil {
		panic(fmt.Sprintf("adapters: %s: %v", r.ID, err))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[r.ID]; dup {
		panic(fmt.Sprintf("adapters: %s registered twice", r.ID))
	}
	registry[r.ID] = r
}

// Get returns the registration for a namespaced id.
func Get(id string) (Registration, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	r, ok := registry[id]
	return r, ok
}

// List returns the registrations in a namespace ("inbound", "outbound"; "" for all), sorted by id.
func List(namespace string) []Registration {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []Registration
	for id, r := range registry {
		if namespace == "" || strings.HasPrefix(id, namespace+".") {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close closes v if it is an io.Closer; adapters must tolerate Close after a failed Provision.
func Close(v any) error {
	if c, ok := v.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Acknowledger is implemented by inbound adapters whose source wants each record's final outcome (the
// Koppeltaal mailbox: Success after every delivery succeeded, Failed with the reason after dead-lettering).
// The runtime calls Outcome at least once per record, after the outcome is durable; it must be idempotent.
type Acknowledger interface {
	Outcome(ctx context.Context, rec Record, ok bool, reason string) error
}

// Backoff returns the wait before retry attempt n (1-based): base·2^(n-1), capped.
func Backoff(n int, base, maxWait time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}
