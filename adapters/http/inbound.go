package http

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/adapters/file"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// InboundSpec is the inbound HTTP adapter's settings.
var InboundSpec = adapters.Spec{
	Summary: "Accept POSTed JSON (an object or an array of objects), NDJSON or CSV on a path. The reply (202 with the records' keys as the route computes them) comes only after the records are durable.",
	Fields: []adapters.Field{
		{Name: "path", Type: adapters.TypeString, Required: true, Description: "Path to accept POSTs on, e.g. /hooks/rom."},
		{Name: "listen", Type: adapters.TypeString, Description: "Own listen address (e.g. :8090). Empty: mounted on the Koppelpoort server's router."},
		{Name: "format", Type: adapters.TypeString, Default: "json", Enum: []string{"json", "ndjson", "csv"}, Description: "Body format."},
		{Name: "delimiter", Type: adapters.TypeString, Default: ",", Description: "CSV field separator."},
		{Name: "encoding", Type: adapters.TypeString, Default: "utf-8", Enum: file.EncodingNames, Description: "Body character encoding (CSV)."},
		{Name: "columns", Type: adapters.TypeStrings, Description: "Known field names (CSV header columns or JSON keys) so expressions are checked at load."},
		{Name: "auth", Type: adapters.TypeString, Required: true, Enum: []string{"bearer", "basic", "none"}, Description: "How senders authenticate; none must be chosen explicitly."},
		{Name: "token", Type: adapters.TypeSecret, Description: "Expected bearer token (auth: bearer), usually ${ENV_VAR}."},
		{Name: "username", Type: adapters.TypeString, Description: "Expected user (auth: basic)."},
		{Name: "password", Type: adapters.TypeSecret, Description: "Expected password (auth: basic), usually ${ENV_VAR}."},
		{Name: "max_body", Type: adapters.TypeInt, Default: 10 << 20, Description: "Largest accepted body in bytes."},
		{Name: "reply", Type: adapters.TypeString, Default: "accepted", Enum: []string{"accepted", "checked"}, Description: "accepted: 202 once the records are stored. checked: the route's rules and transforms run first; a body with a record the route would dead-letter is refused with 422 and each record's reason, and nothing is stored."},
	},
}

// Inbound accepts records over HTTP.
type Inbound struct {
	Path      string   `yaml:"path"`
	Listen    string   `yaml:"listen"`
	Format    string   `yaml:"format"`
	Delimiter string   `yaml:"delimiter"`
	Encoding  string   `yaml:"encoding"`
	Columns   []string `yaml:"columns"`
	Auth      string   `yaml:"auth"`
	Token     string   `yaml:"token"`
	Username  string   `yaml:"username"`
	Password  string   `yaml:"password"`
	MaxBody   int64    `yaml:"max_body"`
	Reply     string   `yaml:"reply"`

	sink   atomic.Pointer[adapters.Sink]
	log    *slog.Logger
	server *nethttp.Server
	ln     net.Listener
}

func (in *Inbound) decoder() file.Format {
	return file.Format{Format: in.Format, Delimiter: in.Delimiter, Encoding: in.Encoding, Header: true, Columns: in.Columns}
}

// Validate checks path and auth.
func (in *Inbound) Validate() error {
	if !strings.HasPrefix(in.Path, "/") {
		return fmt.Errorf("path %q must start with /", in.Path)
	}
	return validateAuth(in.Auth, in.Token, in.Username, in.Password)
}

// Shape: CSV values are strings; declared columns are the known fields.
func (in *Inbound) Shape() transforms.Shape {
	return transforms.Shape{Fields: in.Columns, StringValues: in.Format == "csv"}
}

// Provision mounts the handler on the server's router or opens the adapter's own listener.
func (in *Inbound) Provision(_ context.Context, h adapters.Host) error {
	in.log = h.Logger
	if in.log == nil {
		in.log = slog.Default()
	}
	if in.Listen == "" {
		if h.Mount == nil {
			return errors.New("http inbound: no server to mount on; set listen: to give it its own address")
		}
		h.Mount(in.Path, in)
		return nil
	}
	ln, err := net.Listen("tcp", in.Listen)
	if err != nil {
		return fmt.Errorf("http inbound: listen %s: %w", in.Listen, err)
	}
	in.ln = ln
	mux := nethttp.NewServeMux()
	mux.Handle(in.Path, tracing.Pattern(in))
	var handler nethttp.Handler = mux
	if h.RequestLog != nil {
		handler = h.RequestLog(mux) // the request log in the database, inside the request id
	}
	in.server = &nethttp.Server{Handler: server.RequestLog(in.log, handler), ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Addr is the own listener's address (tests listen on :0).
func (in *Inbound) Addr() string {
	if in.ln == nil {
		return ""
	}
	return in.ln.Addr().String()
}

// Run accepts requests until ctx ends.
func (in *Inbound) Run(ctx context.Context, sink adapters.Sink) error {
	in.sink.Store(&sink)
	defer in.sink.Store(nil)
	if in.server == nil {
		<-ctx.Done()
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- in.server.Serve(in.ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.server.Shutdown(shutdown)
		return nil
	case err := <-errc:
		return fmt.Errorf("http inbound: %w", err)
	}
}

// Close stops the own listener (safe when never provisioned).
func (in *Inbound) Close() error {
	if in.server != nil {
		return in.server.Close()
	}
	if in.ln != nil {
		return in.ln.Close()
	}
	return nil
}

func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (in *Inbound) authorized(r *nethttp.Request) bool {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch in.Auth {
	case "bearer":
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && eq(got, in.Token)
	case "basic":
		u, p, ok := r.BasicAuth()
		return ok && eq(u, in.Username) && eq(p, in.Password)
	}
	return true
}

// ServeHTTP accepts one POST.
func (in *Inbound) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if r.Method != nethttp.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, nethttp.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
		return
	}
	if !in.authorized(r) {
		if in.Auth == "basic" {
			w.Header().Set("WWW-Authenticate", `Basic realm="koppelpoort"`)
		}
		writeJSON(w, nethttp.StatusUnauthorized, map[string]string{"error": "missing or wrong credentials"})
		return
	}
	sp := in.sink.Load()
	if sp == nil {
		writeJSON(w, nethttp.StatusServiceUnavailable, map[string]string{"error": "route is not running"})
		return
	}
	body, err := io.ReadAll(nethttp.MaxBytesReader(w, r.Body, in.MaxBody))
	if err != nil {
		writeJSON(w, nethttp.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body too large or unreadable: %v", err)})
		return
	}
	name := "request." + in.Format
	recs, bad, err := in.decoder().Decode(name, body)
	if err != nil || len(bad) > 0 {
		reasons := []string{}
		if err != nil {
			reasons = append(reasons, err.Error())
		}
		for _, b := range bad {
			reasons = append(reasons, b.String())
		}
		// Nothing is taken from a body with bad rows: the sender fixes and resends the whole body.
		writeJSON(w, nethttp.StatusBadRequest, map[string]any{"error": "body rejected; nothing was accepted", "problems": reasons})
		return
	}
	if len(recs) == 0 {
		writeJSON(w, nethttp.StatusBadRequest, map[string]string{"error": "no records in body"})
		return
	}
	sourceID := r.Header.Get("Idempotency-Key")
	if sourceID == "" {
		sourceID = uuid.NewString()
	}
	for i := range recs {
		recs[i].Key = fmt.Sprintf("%s#%d", sourceID, i+1)
		recs[i].Meta = map[string]string{"adapter": "http", "path": in.Path, "source_id": sourceID}
	}
	verdicts := check(r.Context(), *sp, recs)
	if in.Reply == "checked" {
		if refused := deadLettered(verdicts); len(refused) > 0 {
			writeJSON(w, nethttp.StatusUnprocessableEntity, map[string]any{
				"error":   fmt.Sprintf("%d of %d records cannot be processed by the route; nothing was accepted", len(refused), len(recs)),
				"records": refused,
			})
			return
		}
	}
	if err := (*sp).Accept(r.Context(), recs); err != nil {
		in.logger().Error("http inbound: records not stored", "path", in.Path, "error", err)
		writeJSON(w, nethttp.StatusServiceUnavailable, map[string]string{"error": "records could not be stored; retry later"})
		return
	}
	keys := make([]string, len(verdicts))
	for i, v := range verdicts {
		keys[i] = v.Key
	}
	reply := map[string]any{"accepted": len(recs), "keys": keys}
	if in.Reply == "checked" {
		reply["records"] = verdicts
	}
	writeJSON(w, nethttp.StatusAccepted, reply)
}

// check asks the route what it would do with recs; a sink that cannot tell keeps the inbound's keys.
func check(ctx context.Context, sink adapters.Sink, recs []adapters.Record) []adapters.Verdict {
	if c, ok := sink.(adapters.Checker); ok {
		return c.Check(ctx, recs)
	}
	out := make([]adapters.Verdict, len(recs))
	for i, r := range recs {
		out[i] = adapters.Verdict{Key: r.Key, Outcome: "routed"}
	}
	return out
}

func deadLettered(vs []adapters.Verdict) []adapters.Verdict {
	var out []adapters.Verdict
	for _, v := range vs {
		if v.Outcome == "dead_lettered" {
			out = append(out, v)
		}
	}
	return out
}

// DecodeFileLines lets route tests feed files through this adapter's decoder.
func (in *Inbound) DecodeFileLines(name string, data []byte) ([]adapters.Record, []int, error) {
	recs, bad, err := in.decoder().Decode(name, data)
	lines := make([]int, len(bad))
	for i, b := range bad {
		lines[i] = b.Line
	}
	return recs, lines, err
}

// Interface guards.
var (
	_ adapters.Inbound     = (*Inbound)(nil)
	_ adapters.Provisioner = (*Inbound)(nil)
	_ adapters.Validator   = (*Inbound)(nil)
	_ adapters.Shaper      = (*Inbound)(nil)
	_ nethttp.Handler      = (*Inbound)(nil)
)

func (in *Inbound) logger() *slog.Logger {
	if in.log == nil {
		return slog.Default()
	}
	return in.log
}
