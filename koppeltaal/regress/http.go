package regress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// FHIR and OAuth paths of a Koppeltaal server, at the root of its host (CLIENTS.md: clients drop any prefix).
const (
	fhirPrefix  = "/FHIR/Koppeltaal"
	oauthPrefix = "/OAuth2/Koppeltaal"
)

// Request is one HTTP request of a case. URL is absolute, or a path under the target's root.
type Request struct {
	Method string
	URL    string
	// Basic authenticates with an instance's credentials (sent pre-emptively, as connectors do).
	Basic *Account
	// Bearer authenticates with an access token instead.
	Bearer string
	// Accept and ContentType override the format's media types; "-" sends none.
	Accept, ContentType string
	Header              http.Header
	Body                []byte
}

// Response is what the target answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Request is the request line and the headers that matter, for failure reports.
	Request string
	// RequestBody is what was sent (for failure reports).
	RequestBody []byte
}

// ContentType is the reply's media type without parameters, lower case.
func (r *Response) ContentType() string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Type")))
	}
	return mt
}

// Format is the FHIR format the reply says it is in (Content-Type), 0 when it names neither.
func (r *Response) Format() dstu1.Format {
	f, _ := dstu1.FormatFromMediaType(r.Header.Get("Content-Type"))
	return f
}

// mediaTypes are what deployed clients send: the Python connector application/json, SoapUI application/xml.
func mediaTypes(f dstu1.Format) string {
	if f == dstu1.FormatXML {
		return "application/xml"
	}
	return "application/json"
}

// client is the suite's HTTP client: it never follows redirects (clients read them, CLIENTS.md).
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// exchange sends r and reads the whole reply (up to 64 MiB).
func exchange(ctx context.Context, hc *http.Client, target string, f dstu1.Format, r Request) (*Response, error) {
	u := r.URL
	if !strings.Contains(u, "://") {
		u = strings.TrimRight(target, "/") + u
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, u, err)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	setDefault(req.Header, "Accept", r.Accept, f != 0, mediaTypes(f))
	setDefault(req.Header, "Content-Type", r.ContentType, f != 0 && r.Body != nil, mediaTypes(f))
	switch {
	case r.Bearer != "":
		req.Header.Set("Authorization", "Bearer "+r.Bearer)
	case r.Basic != nil:
		req.SetBasicAuth(r.Basic.Username, r.Basic.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, u, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b, Request: describe(req, r), RequestBody: r.Body}, nil
}

// setDefault sets header k: the explicit value v ("-" for none), else def when useDef.
func setDefault(h http.Header, k, v string, useDef bool, def string) {
	switch {
	case v == "-":
		h.Del(k)
	case v != "":
		h.Set(k, v)
	case useDef && h.Get(k) == "":
		h.Set(k, def)
	}
}

// describe renders a request for a failure report: method, URL, and the headers a reader needs (the
// credentials only by name).
func describe(req *http.Request, r Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", req.Method, req.URL.String())
	switch {
	case r.Bearer != "":
		b.WriteString(" (Bearer token)")
	case r.Basic != nil:
		fmt.Fprintf(&b, " (Basic %s)", r.Basic.Username)
	}
	for _, k := range []string{"Accept", "Content-Type", "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
		if v := req.Header.Get(k); v != "" {
			fmt.Fprintf(&b, " %s: %s;", k, v)
		}
	}
	return strings.TrimSuffix(b.String(), ";")
}

// queryOf returns the query parameters of a URL (a redirect Location), or nil.
func queryOf(loc string) url.Values {
	u, err := url.Parse(loc)
	if err != nil {
		return nil
	}
	return u.Query()
}

// excerpt shortens a body for a report.
func excerpt(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return s
}
