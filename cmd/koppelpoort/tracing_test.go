package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

// collector is an in-process OpenTelemetry collector: a real HTTP server taking OTLP/HTTP protobuf exports.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   [][]byte // every export as it arrived
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("collector: %s %s (%s) is not an OTLP/HTTP protobuf export", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.raw = append(c.raw, body)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// trace waits until the trace holds spans of all the names and returns it by name.
func (c *collector) trace(t *testing.T, traceID string, names ...string) map[string]*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]*tracepb.Span{}
		c.mu.Lock()
		for _, s := range c.spans {
			if hex.EncodeToString(s.TraceId) == traceID {
				got[s.Name] = s
			}
		}
		c.mu.Unlock()
		missing := ""
		for _, n := range names {
			if got[n] == nil {
				missing = n
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has no span %q; it has %v", traceID, missing, keys(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// traceNamed waits for a span named name in any trace.
func (c *collector) traceNamed(t *testing.T, name string) *tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		for _, s := range c.spans {
			if s.Name == name {
				c.mu.Unlock()
				return s
			}
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no span %q", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keys(m map[string]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func attrs(s *tracepb.Span) map[string]string {
	out := map[string]string{}
	for _, a := range s.Attributes {
		out[a.Key] = anyValue(a.Value)
	}
	return out
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

const tracedRoute = `name: hook
input:
  http: {path: /hook, listen: %HOOK%, auth: none}
transforms:
  out:
    fields: {id: record.id, bsn: record.bsn}
outputs:
  - name: epd
    http: {url: "%RECEIVER%/receive"}
`

// With tracing.otlp_endpoint set, serve exports a trace per request — the caller's traceparent honoured;
// spans for parse, checks, the store transaction and fan-out — and one per gateway delivery, to a collector
// (here an in-process one, decoding real OTLP/HTTP protobuf); the log lines carry the trace id; no span
// holds patient data (issue 15: tracing).
func TestServeExportsTraces(t *testing.T) {
	col := newCollector(t)
	var mu sync.Mutex
	var delivered []http.Header
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delivered = append(delivered, r.Header.Clone())
		mu.Unlock()
	}))
	defer receiver.Close()
	dir := t.TempDir()
	hook := testkit.FreeAddr(t)
	route := strings.NewReplacer("%HOOK%", hook, "%RECEIVER%", receiver.URL).Replace(tracedRoute)
	testkit.WriteFile(t, filepath.Join(dir, "r.yaml"), []byte(route))
	cfg := `store: {dsn: ./kp.db}
tracing: {otlp_endpoint: "` + col.URL + `", sample_ratio: 1, service_name: koppelpoort-test}
koppeltaal:
  domains: [{name: Demo}]
  applications:
    - {id: EPD, name: EPD}
    - {id: Portal, name: Portal, roles: [PatientPortal]}
  instances:
    - {application: EPD, domain: Demo, username: epd@demo, password: demo-epd}
    - {application: Portal, domain: Demo, username: portal@demo, password: demo-portal, subscriptions: [CreateOrUpdatePatient]}
routes: [r.yaml]
`
	testkit.WriteFile(t, filepath.Join(dir, "kp.yaml"), []byte(cfg))
	// The batch span processor sends every 50 ms instead of every 5 s.
	base, _, _, stderr := startBinary(t, dir, []string{"OTEL_BSP_SCHEDULE_DELAY=50"}, "--config", filepath.Join(dir, "kp.yaml"))

	body, err := os.ReadFile(filepath.Join("..", "..", "docs", "curl", "patient-message.json"))
	if err != nil {
		t.Fatal(err)
	}
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", base+"/FHIR/Koppeltaal/Mailbox?_format=json", bytes.NewReader(body))
	req.SetBasicAuth("epd@demo", "demo-epd")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: %d %s", resp.StatusCode, reply)
	}

	const server = "POST /FHIR/Koppeltaal/Mailbox"
	tr := col.trace(t, callerTrace, server, "koppeltaal.parse", "koppeltaal.check", "store.transaction", "koppeltaal.fanout")
	id := func(name string) string { return hex.EncodeToString(tr[name].SpanId) }
	parent := func(name string) string { return hex.EncodeToString(tr[name].ParentSpanId) }
	if parent(server) != callerSpan || tr[server].Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("the request span's parent is %s (kind %v); want the caller's %s", parent(server), tr[server].Kind, callerSpan)
	}
	for _, step := range []string{"koppeltaal.parse", "koppeltaal.check", "store.transaction"} {
		if parent(step) != id(server) {
			t.Errorf("%s is a child of %s, not of the request span %s", step, parent(step), id(server))
		}
	}
	if parent("koppeltaal.fanout") != id("store.transaction") {
		t.Errorf("the fan-out is not inside the store transaction")
	}
	want := map[string]map[string]string{
		server:              {"http.request.method": "POST", "http.route": "/FHIR/Koppeltaal/Mailbox", "http.response.status_code": "200"},
		"koppeltaal.parse":  {"koppeltaal.format": "json"},
		"koppeltaal.check":  {"koppeltaal.sender": "epd@demo", "koppeltaal.event": "CreateOrUpdatePatient", "koppeltaal.resources": "1"},
		"store.transaction": {"koppelpoort.store.dialect": "sqlite"},
		"koppeltaal.fanout": {"koppeltaal.recipients": "1"},
	}
	for name, kv := range want {
		got := attrs(tr[name])
		for k, v := range kv {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q (all: %v)", name, k, got[k], v, got)
			}
		}
	}
	waitForLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s in the log:\n%s", what, stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitForLog(`"path":"/FHIR/Koppeltaal/Mailbox","status":200`)
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, `"path":"/FHIR/Koppeltaal/Mailbox"`) && !strings.Contains(line, `"trace_id":"`+callerTrace+`","span_id":"`+id(server)+`"`) {
			t.Errorf("the request's log line does not carry its trace: %s", line)
		}
	}

	// A gateway delivery: a trace of its own, and the destination gets its traceparent.
	hresp, err := http.Post("http://"+hook+"/hook", "application/json", strings.NewReader(`{"id": "rec-1", "bsn": "999999990"}`))
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	var traceparent string
	for traceparent == "" {
		mu.Lock()
		if len(delivered) > 0 {
			traceparent = delivered[0].Get("traceparent")
			if traceparent == "" {
				t.Fatalf("the delivery carried no traceparent: %v", delivered[0])
			}
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deliveryTrace := strings.Split(traceparent, "-")[1]
	// The hook's own listener traces its requests too (named by its pattern, never its path's values).
	col.traceNamed(t, "POST /hook")
	d := col.trace(t, deliveryTrace, "route.deliver")["route.deliver"]
	if len(d.ParentSpanId) != 0 || d.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("the delivery span is not a root client span: parent %x kind %v", d.ParentSpanId, d.Kind)
	}
	for k, v := range map[string]string{"koppelpoort.route": "hook", "koppelpoort.output": "epd", "koppelpoort.delivery.attempt": "1"} {
		if got := attrs(d)[k]; got != v {
			t.Errorf("route.deliver: %s = %q, want %q", k, got, v)
		}
	}
	waitForLog(`"msg":"delivered","route":"hook"`)
	if !strings.Contains(stderr.String(), `"trace_id":"`+deliveryTrace+`"`) {
		t.Errorf("the delivery's log line does not carry its trace %s:\n%s", deliveryTrace, stderr)
	}

	// No patient data anywhere in what went to the collector: not in a span name, an attribute or any byte.
	col.mu.Lock()
	defer col.mu.Unlock()
	patientData := []string{"Patient/1001", "123456782", "Jansen", "Anna", "1990-04-12", "999999990", "rec-1"}
	for _, s := range col.spans {
		for _, p := range patientData {
			if strings.Contains(s.Name, p) {
				t.Errorf("span name %q holds %q", s.Name, p)
			}
			for k, v := range attrs(s) {
				if strings.Contains(v, p) {
					t.Errorf("span %s: attribute %s = %q holds %q", s.Name, k, v, p)
				}
			}
		}
	}
	for _, raw := range col.raw {
		for _, p := range patientData {
			if bytes.Contains(raw, []byte(p)) {
				t.Errorf("an export holds %q", p)
			}
		}
	}
}
