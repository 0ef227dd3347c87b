package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// fhirBase is where a Koppeltaal 1.3 server answers, from the root of its host.
const fhirBase = "/FHIR/Koppeltaal"

// instance is one application instance the tool acts as.
type instance struct {
	idx    int
	spec   InstanceSpec
	auth   string // precomputed Authorization header
	format string // json or xml
}

func (in *instance) name() string { return in.spec.Username }

func (in *instance) contentType() string {
	if in.format == "xml" {
		return "application/xml+fhir"
	}
	return "application/json+fhir"
}

func (in *instance) accept() string {
	if in.format == "xml" {
		return "application/xml+fhir, application/xml"
	}
	return "application/json+fhir, application/json"
}

// httpError is a non-2xx reply.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// client does the HTTP calls; one shared keep-alive pool for all instances.
// With several targets (processes of one server on one database) every request
// goes to the next target in turn.
type client struct {
	targets []*url.URL
	next    atomic.Uint64
	hc      *http.Client
	timeout time.Duration
}

// newClient makes a client for targets: one base URL, or several separated by commas.
func newClient(targets string, conns int, timeout time.Duration) (*client, error) {
	c := &client{timeout: timeout}
	for _, t := range strings.Split(targets, ",") {
		u, err := url.Parse(strings.TrimRight(strings.TrimSpace(t), "/"))
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", t, err)
		}
		c.targets = append(c.targets, u)
	}
	tr := &http.Transport{
		Proxy:               nil, // a load test must reach the target directly
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // Koppeltaal clients do not follow redirects on FHIR calls
	}}
	return c, nil
}

// base is the base URL for the next request (round robin over the targets).
func (c *client) base() *url.URL {
	if len(c.targets) == 1 {
		return c.targets[0]
	}
	return c.targets[(c.next.Add(1)-1)%uint64(len(c.targets))]
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// urlFor maps a link the server returned onto a target: like the Python
// connector, only the path and query of a returned link are used.
func (c *client) urlFor(link string) string {
	base := c.base()
	if strings.HasPrefix(link, "/") {
		return base.String() + link
	}
	u, err := url.Parse(link)
	if err != nil || u.Path == "" {
		return base.String() + link
	}
	out := *base
	out.Path, out.RawPath, out.RawQuery = u.Path, u.RawPath, u.RawQuery
	return out.String()
}

// do sends one request and returns the reply body of a 2xx answer.
func (c *client) do(ctx context.Context, in *instance, method, u string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", in.auth)
	req.Header.Set("Accept", in.accept())
	if body != nil {
		req.Header.Set("Content-Type", in.contentType())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return out, &httpError{status: resp.StatusCode, body: snippet(out)}
	}
	return out, nil
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// errorKind classifies an error for the report: "409", "HTTP 500", "timeout", ...
func errorKind(err error) string {
	var he *httpError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &he):
		return fmt.Sprintf("HTTP %d", he.status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, errNotBundle) || strings.HasPrefix(err.Error(), "decode "):
		return "bad reply"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "connection: " + oe.Op
	}
	return "transport"
}

// isHTTP reports whether err is a reply from the server (it answered), so a
// POST is known to be rejected rather than lost.
func isHTTP(err error) bool {
	var he *httpError
	return errors.As(err, &he)
}

func httpStatus(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return 0
}
