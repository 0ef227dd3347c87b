// Package client is a Go client for Koppeltaal 1.3.x servers (this one or any other): metadata, post a
// message to the mailbox, claim the next new message, search and read messages, and acknowledge them, in
// JSON or XML. It also builds message bundles from a declared message (BuildMessage).
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Client talks to one Koppeltaal server as one application instance (HTTP Basic, sent pre-emptively), or
// as a launched module with an OAuth2 access token.
type Client struct {
	// BaseURL is the server root, e.g. https://kt.example.nl (the client adds /FHIR/Koppeltaal/...).
	BaseURL  string
	Username string
	Password string
	// Token, when set, is sent as "Authorization: Bearer" instead of the Basic credentials.
	Token string
	// Format is the wire format; default JSON.
	Format dstu1.Format
	// HTTP is the HTTP client; default one with a 30s timeout.
	HTTP *http.Client
}

// ErrVersionConflict is a 409 from the mailbox: a resource was sent with a version that is not current.
var ErrVersionConflict = errors.New("koppeltaal: resource version conflict")

// Error is a non-2xx reply; Outcome is the OperationOutcome text when the server sent one.
type Error struct {
	Method, URL string
	Status      int
	Outcome     string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("koppeltaal: %s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Outcome != "" {
		msg += ": " + e.Outcome
	}
	return msg
}

// Is makes a 409 match ErrVersionConflict.
func (e *Error) Is(target error) bool {
	return target == ErrVersionConflict && e.Status == http.StatusConflict
}

// Temporary reports whether retrying may help (5xx, 429, 408).
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// Prefix is the FHIR path of the Koppeltaal API.
const Prefix = "/FHIR/Koppeltaal"

func (c *Client) format() dstu1.Format {
	if c.Format == dstu1.FormatXML {
		return dstu1.FormatXML
	}
	return dstu1.FormatJSON
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// URL returns the absolute URL of a path under /FHIR/Koppeltaal.
func (c *Client) URL(path string) string {
	return strings.TrimRight(c.BaseURL, "/") + Prefix + path
}

func (c *Client) do(ctx context.Context, method, target string, body []byte) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("koppeltaal: build request: %w", err)
	}
	mt := dstu1.MediaType(c.format())
	req.Header.Set("Accept", mt)
	if body != nil {
		req.Header.Set("Content-Type", mt)
	}
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	case c.Username != "":
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("koppeltaal: %s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("koppeltaal: %s %s: read reply: %w", method, target, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.Header, &Error{Method: method, URL: target, Status: resp.StatusCode, Outcome: outcomeText(b)}
	}
	return b, resp.Header, nil
}

// replyLimits read a server's replies: their values are taken as the server wrote them (a client refusing a
// date another Koppeltaal server accepted from its sender would only lose the message).
var replyLimits = dstu1.Limits{SkipValueChecks: true}

// outcomeText pulls the readable part out of an OperationOutcome (or returns a short raw snippet).
func outcomeText(b []byte) string {
	if r, err := replyLimits.ParseResource(b, dstu1.Sniff(b)); err == nil && r.Type() == "OperationOutcome" {
		var parts []string
		r.Node.Each("issue", func(n *dstu1.Node) bool {
			if d := n.Str("details"); d != "" {
				parts = append(parts, d)
			}
			return true
		})
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Metadata reads the server's Conformance statement.
func (c *Client) Metadata(ctx context.Context) (*dstu1.Resource, error) {
	b, _, err := c.do(ctx, http.MethodGet, c.URL("/metadata"), nil)
	if err != nil {
		return nil, err
	}
	r, err := replyLimits.ParseResource(b, dstu1.Sniff(b))
	if err != nil {
		return nil, fmt.Errorf("koppeltaal: metadata reply: %w", err)
	}
	return r, nil
}

// PostMessage posts a message bundle to the mailbox and returns the server's reply bundle (whose
// MessageHeader data lists the versioned URLs the server issued).
func (c *Client) PostMessage(ctx context.Context, msg *dstu1.Bundle) (*dstu1.Bundle, error) {
	var body []byte
	if c.format() == dstu1.FormatXML {
		body = msg.XML()
	} else {
		body = msg.JSON()
	}
	b, _, err := c.do(ctx, http.MethodPost, c.URL("/Mailbox"), body)
	if err != nil {
		return nil, err
	}
	return c.parseBundle(b, "mailbox reply")
}

func (c *Client) parseBundle(b []byte, what string) (*dstu1.Bundle, error) {
	bundle, err := replyLimits.ParseBundle(b, dstu1.Sniff(b))
	if err != nil {
		return nil, fmt.Errorf("koppeltaal: %s: %w", what, err)
	}
	return bundle, nil
}

// ClaimFilter narrows GetNextNewAndClaim.
type ClaimFilter struct {
	Patient string
	Event   string
}

// Claim claims the next new message for this instance; it returns nil when there is none.
func (c *Client) Claim(ctx context.Context, f ClaimFilter) (*dstu1.Bundle, error) {
	q := url.Values{"_query": {"MessageHeader.GetNextNewAndClaim"}}
	if f.Patient != "" {
		q.Set("Patient", f.Patient)
	}
	if f.Event != "" {
		q.Set("event", f.Event)
	}
	b, _, err := c.do(ctx, http.MethodGet, c.URL("/MessageHeader/_search?"+q.Encode()), nil)
	if err != nil {
		return nil, err
	}
	bundle, err := c.parseBundle(b, "claim reply")
	if err != nil {
		return nil, err
	}
	if len(bundle.Entries) == 0 {
		return nil, nil
	}
	return bundle, nil
}

// Search searches message headers (e.g. event, ProcessingStatus, Patient, _count, _summary).
func (c *Client) Search(ctx context.Context, params url.Values) (*dstu1.Bundle, error) {
	b, _, err := c.do(ctx, http.MethodGet, c.URL("/MessageHeader/_search?"+params.Encode()), nil)
	if err != nil {
		return nil, err
	}
	return c.parseBundle(b, "search reply")
}

// Read returns one whole message by MessageHeader id (or its full URL).
func (c *Client) Read(ctx context.Context, id string) (*dstu1.Bundle, error) {
	b, _, err := c.do(ctx, http.MethodGet, c.URL("/MessageHeader/_search?"+url.Values{"_id": {id}}.Encode()), nil)
	if err != nil {
		return nil, err
	}
	return c.parseBundle(b, "read reply")
}

// Ack sets the processing status of a claimed message: "Success", "Failed" (with exception) or "New".
// msg is the message as claimed; the PUT goes to its MessageHeader's self link (or entry id).
func (c *Client) Ack(ctx context.Context, msg *dstu1.Bundle, status, exception string) error {
	if len(msg.Entries) == 0 || msg.MessageHeader() == nil {
		return errors.New("koppeltaal: ack: the bundle holds no MessageHeader")
	}
	e := msg.Entries[0]
	target := e.SelfLink()
	if target == "" {
		target = e.ID
	}
	return c.AckHeader(ctx, target, e.Resource, status, exception)
}

// AckHeader is Ack for a MessageHeader kept on its own (target is its self link or id).
func (c *Client) AckHeader(ctx context.Context, target string, header *dstu1.Resource, status, exception string) error {
	if status == "Failed" && exception == "" {
		return errors.New("koppeltaal: ack: Failed needs an exception text")
	}
	if !strings.HasPrefix(target, "http") {
		target = c.URL("/MessageHeader/" + strings.TrimPrefix(target, "MessageHeader/"))
	}
	mh := dstu1.AsMessageHeader(header.Clone())
	if mh == nil {
		return errors.New("koppeltaal: ack: not a MessageHeader")
	}
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: status, Exception: exception, LastChanged: time.Now().UTC().Format(time.RFC3339)})
	var body []byte
	if c.format() == dstu1.FormatXML {
		body = mh.Resource.XML()
	} else {
		body = mh.Resource.JSON()
	}
	_, _, err := c.do(ctx, http.MethodPut, target, body)
	return err
}
