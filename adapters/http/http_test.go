package http

import (
	"context"
	"errors"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
)

type sink struct {
	recs []adapters.Record
	err  error
}

func (s *sink) Accept(_ context.Context, r []adapters.Record) error {
	if s.err != nil {
		return s.err
	}
	s.recs = append(s.recs, r...)
	return nil
}

func TestInbound(t *testing.T) {
	in := &Inbound{Path: "/hook", Format: "csv", Delimiter: ";", Encoding: "windows-1252", Auth: "basic", Username: "rom", Password: "pw", MaxBody: 1 << 10}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	in.sink.Store(func() *adapters.Sink { var x adapters.Sink = s; return &x }())
	srv := httptest.NewServer(in)
	defer srv.Close()
	do := func(method, user, body string, hdr map[string]string) (int, string) {
		req, _ := nethttp.NewRequest(method, srv.URL, strings.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, method, user, body string
		hdr                      map[string]string
		code                     int
		contains                 string
	}{
		{"wrong password", "POST", "nobody", "a;b\n1;2\n", nil, 401, "credentials"},
		{"GET", "GET", "rom", "", nil, 405, "use POST"},
		{"bad row", "POST", "rom", "a;b\n1;2;3\n", nil, 400, "line 2: 3 fields"},
		{"too large", "POST", "rom", "a;b\n" + strings.Repeat("x;y\n", 400), nil, 413, "too large"},
		{"ok", "POST", "rom", "a;b\nFr\xe9;2\n", map[string]string{"Idempotency-Key": "k1"}, 202, `"k1#1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.user, tc.body, tc.hdr)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("got %d %s, want %d containing %q", code, body, tc.code, tc.contains)
			}
		})
	}
	if len(s.recs) != 1 || s.recs[0].Fields["a"] != "Fré" || s.recs[0].Meta["source_id"] != "k1" {
		t.Fatalf("records: %+v", s.recs)
	}
	s.err = errors.New("disk full")
	if code, _ := do("POST", "rom", "a;b\n1;2\n", nil); code != 503 {
		t.Fatalf("a sink failure must be 503 (not durable), got %d", code)
	}
}

func TestOutbound(t *testing.T) {
	var calls atomic.Int32
	var gotPath, gotKey, gotAuth, gotHdr string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		n := calls.Add(1)
		gotPath, gotKey, gotAuth, gotHdr = r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), r.Header.Get("X-Record")
		switch {
		case strings.Contains(r.URL.Path, "busy"):
			nethttp.Error(w, "busy", nethttp.StatusServiceUnavailable)
		case strings.Contains(r.URL.Path, "bad"):
			nethttp.Error(w, "no such patient", nethttp.StatusUnprocessableEntity)
		default:
			_ = n
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	o := &Outbound{URL: srv.URL + "/api/p/{id}", Method: "PUT", Auth: "bearer", Token: "t0k", Timeout: "5s", Body: "fields",
		Headers: map[string]string{"X-Record": "rec {id}"}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Provision(context.Background(), adapters.Host{})
	d := func(id string) adapters.Delivery {
		return adapters.Delivery{IdempotencyKey: "idem-" + id, Fields: map[string]any{"id": id}}
	}
	if err := o.Deliver(context.Background(), d("a b")); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/api/p/a b" || gotKey != "idem-a b" || gotAuth != "Bearer t0k" || gotHdr != "rec a b" {
		t.Fatalf("request: %q %q %q %q", gotPath, gotKey, gotAuth, gotHdr)
	}
	if err := o.Deliver(context.Background(), d("busy")); !errors.Is(err, adapters.ErrTransient) {
		t.Fatalf("503 must be transient: %v", err)
	}
	if err := o.Deliver(context.Background(), d("bad")); err == nil || errors.Is(err, adapters.ErrTransient) || !strings.Contains(err.Error(), "no such patient") {
		t.Fatalf("422 must be permanent with the body: %v", err)
	}
	if err := o.Deliver(context.Background(), adapters.Delivery{Fields: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "no field id") {
		t.Fatalf("missing URL field: %v", err)
	}
	srv.Close()
	if err := o.Deliver(context.Background(), d("x")); !errors.Is(err, adapters.ErrTransient) {
		t.Fatalf("connection refused must be transient: %v", err)
	}
}
