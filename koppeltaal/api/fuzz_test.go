package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/storage"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// FuzzReplies sends arbitrary paths, queries and bodies to the API with
// valid credentials — the core, ActivityDefinitions and the Storage Service
// (whose errors echo codes, ids and parameters too): every reply is a
// well-formed document in the negotiated format (an OperationOutcome for
// every error) and none is a 500 (issue 16 item 6). Run with
// go test -run '^$' -fuzz FuzzReplies ./koppeltaal/api/.
func FuzzReplies(f *testing.F) {
	handler := fuzzHandler(f)
	for _, s := range []struct{ method, path, query, body string }{
		{"GET", "/FHIR/Koppeltaal/MessageHeader/1\x00", "", ""},
		{"GET", "/FHIR/Koppeltaal/MessageHeader/_search", "_query=x%00y", ""},
		{"GET", "/FHIR/Koppeltaal/MessageHeader/_search", "ProcessingStatus=x%ff", ""},
		{"GET", "/FHIR/Koppeltaal/MessageHeader/\uFFFE", "", ""},
		{"GET", "/FHIR/Koppeltaal/MessageHeader/_search", "_id=%ed%a0%80&_count=-1&page=x", ""},
		{"PUT", "/FHIR/Koppeltaal/MessageHeader/1/_history/\x01", "", `{"resourceType":"MessageHeader"}`},
		{"POST", "/FHIR/Koppeltaal/Mailbox", "", `{"resourceType":"Bundle","entry":[{"content":{"resourceType":"MessageHeader"}}]}`},
		{"POST", "/FHIR/Koppeltaal/Mailbox", "", "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>\x00</title></feed>"},
		{"FOO", "/FHIR/Koppeltaal/metadata", "_format=json", ""},
		{"GET", "/FHIR/Koppeltaal/Other/_search", "code=x%00%ff", ""},
		{"GET", "/FHIR/Koppeltaal/Other/ActivityDefinition/\x01", "", ""},
		{"POST", "/FHIR/Koppeltaal/Other", "code=ActivityDefinition", `{"resourceType":"Other","code":{"coding":[{"code":"ActivityDefinition\u0000"}]}}`},
		{"PUT", "/FHIR/Koppeltaal/Other/StorageItem/1", "", `{"resourceType":"Other","extension":[{"url":"\u00ff","valueString":"\ufffe"}]}`},
		{"GET", "/FHIR/Koppeltaal/Binary/_search", "patient=%ff&objectType=%00", ""},
		{"POST", "/FHIR/Koppeltaal/Binary", "objectKey=%fe", "\x00\xff"},
	} {
		f.Add(s.method, s.path, s.query, []byte(s.body), true)
		f.Add(s.method, s.path, s.query, []byte(s.body), false)
	}
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte, jsonReply bool) {
		// The API's replies: a path elsewhere is the root router's (internal/server, headers_test.go).
		if !strings.HasPrefix(path, "/FHIR/Koppeltaal/") {
			path = "/FHIR/Koppeltaal/" + strings.TrimPrefix(path, "/")
		}
		for _, m := range []string{"GET", "PUT", "POST", "FOO"} {
			if strings.EqualFold(method, m) {
				method = m
			}
		}
		if method != "GET" && method != "PUT" && method != "POST" {
			method = "FOO"
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{},
			Body: http.NoBody, Host: "koppeltaal.test", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: "192.0.2.1:1"}
		if len(body) > 0 {
			r.Body, r.ContentLength = httpBody(body), int64(len(body))
		}
		r.SetBasicAuth("game@a", "ga")
		f := dstu1.FormatXML
		if jsonReply {
			f = dstu1.FormatJSON
		}
		r.Header.Set("Accept", ctypeOf(f))
		r = r.WithContext(t.Context())
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %q ? %q: 500 %s", method, path, query, w.Body)
		}
		ct := w.Header().Get("Content-Type")
		if q, _ := url.ParseQuery(query); strings.Contains(strings.ToLower(q.Get("_format")), "json") {
			f = dstu1.FormatJSON
		} else if q.Get("_format") != "" {
			f = dstu1.FormatXML
		}
		if want := ctypeOf(f)[:len("application/xml")]; !strings.HasPrefix(ct, want) && !(f == dstu1.FormatJSON && strings.HasPrefix(ct, "application/json")) {
			t.Fatalf("%s %q ? %q: Content-Type %q for %v", method, path, query, ct, f)
		}
		if err := wellFormed(w.Body.Bytes(), f); err != nil {
			t.Fatalf("%s %q ? %q: reply not well-formed (%v): %q", method, path, query, err, w.Body)
		}
	})
}

// fuzzHandler is the API with the ActivityDefinition and Storage Service
// extensions on a fresh SQLite store.
func fuzzHandler(f *testing.F) http.Handler {
	st := storetest.Backend{Name: "sqlite", DSN: f.TempDir() + "/kp.db"}.Open(f)
	ads, err := activity.New(activity.Options{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	stor, err := storage.New(storage.Options{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	cfg := fastHashes(twoDomains())
	cfg.PublicURL = "http://koppeltaal.test"
	srv, err := api.New(ctx, api.Options{Store: st, Config: cfg, Extensions: []func(*api.Server, chi.Router){ads.Extension, stor.Extension}})
	if err != nil {
		f.Fatal(err)
	}
	return srv.Handler()
}

func httpBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
