package regress

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// hookCall is one webhook call the target made.
type hookCall struct {
	Method     string
	Path       string
	Header     http.Header
	BodyLength int
	At         time.Time
}

// hookReceiver is the HTTP server the target's webhook calls reach.
type hookReceiver struct {
	srv   *http.Server
	mu    sync.Mutex
	calls []hookCall
	wake  chan struct{}
}

// listenHooks starts receiving webhook calls on addr (host:port); any path is accepted and answered 204.
func listenHooks(addr string) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &hookReceiver{wake: make(chan struct{}, 1)}
	h.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), BodyLength: int(n), At: time.Now()})
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

func (h *hookReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}

// waitFor returns the first call for which match is true, waiting up to d.
func (h *hookReceiver) waitFor(ctx context.Context, d time.Duration, match func(hookCall) bool) (hookCall, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		for _, c := range h.calls {
			if match(c) {
				h.mu.Unlock()
				return c, true
			}
		}
		h.mu.Unlock()
		select {
		case <-h.wake:
		case <-deadline.C:
			return hookCall{}, false
		case <-ctx.Done():
			return hookCall{}, false
		}
	}
}

// hookWait is how long a webhook may take: servers batch and retry notifications.
const hookWait = 30 * time.Second

func notifyCases() []Case {
	return []Case{
		{ID: "notify/webhook-called", Title: "a message queued for an instance with a webhook makes the target POST to it without a body, with KoppeltaalMessageIdentifier",
			Ref: "SPEC.md §13.1 (no payload, Content-Length 0; KoppeltaalMessageIdentifier, Content-Type application/json since 1.3.8)", Needs: []Capability{CapWebhook}, Run: func(t *T) {
				want := t.postCarePlan()
				call, ok := t.s.hook.waitFor(t.ctx, hookWait, func(c hookCall) bool { return c.Header.Get("KoppeltaalMessageIdentifier") == want })
				t.Require(ok, "webhook calls at "+t.s.cfg.Webhook.Listen+" within "+hookWait.String(), "one with KoppeltaalMessageIdentifier "+want, "none")
				t.Equal("the webhook call's method", http.MethodPost, call.Method)
				t.Expect(call.BodyLength == 0, "the webhook call's body", "empty (no payload)", call.BodyLength)
				t.Expect(strings.HasPrefix(call.Header.Get("Content-Type"), "application/json"), "the webhook call's Content-Type", "application/json", call.Header.Get("Content-Type"))
			}},
		{ID: "notify/webhook-domain-category", Title: "the webhook call names the domain in its Category header",
			Ref: "SPEC.md §13.1 (Category: …/Koppeltaal/Domain#{Domain} since 1.3.8)", Needs: []Capability{CapWebhook}, Run: func(t *T) {
				want := t.postCarePlan()
				call, ok := t.s.hook.waitFor(t.ctx, hookWait, func(c hookCall) bool { return c.Header.Get("KoppeltaalMessageIdentifier") == want })
				t.Require(ok, "webhook calls within "+hookWait.String(), "one for "+want, "none")
				t.Expect(strings.Contains(call.Header.Get("Category"), "Domain#"+t.s.cfg.Domain), "the Category header", "…/Koppeltaal/Domain#"+t.s.cfg.Domain+"…", call.Header.Get("Category"))
			}},
		{ID: "notify/stream-announces", Title: "the live stream (if the target offers one) announces a message queued for the instance",
			Ref: "SPEC.md §13.2 (push instead of polling; Koppelpoort: Server-Sent Events at /FHIR/Koppeltaal/_stream)", Needs: []Capability{CapModule}, Run: func(t *T) {
				t.streamAnnounces()
			}},
	}
}

// postCarePlan posts a CarePlan message about a new patient (the webhook instance and the module are
// subscribed to CreateOrUpdateCarePlan) and returns its identifier.
func (t *T) postCarePlan() string {
	d := t.newDossier()
	msg := t.carePlan(d, "Available")
	t.postOK(t.Portal(), d, msg)
	return msg.MessageHeader().Identifier()
}

// streamAnnounces opens the module's stream, posts a message the module gets and waits for its announcement.
func (t *T) streamAnnounces() {
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base()+"/_stream", nil)
	t.Require(err == nil, "the stream request", "buildable", err)
	a := t.moduleAccount()
	req.SetBasicAuth(a.Username, a.Password)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{}).Do(req)
	t.Require(err == nil, "GET "+fhirPrefix+"/_stream", "an answer", err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotImplemented {
		t.Skipf("the target offers no live stream at %s/_stream (HTTP %d)", fhirPrefix, resp.StatusCode)
	}
	t.Require(resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"),
		"GET "+fhirPrefix+"/_stream", "HTTP 200 text/event-stream", resp.StatusCode)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	want := t.postCarePlan()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended before announcing %s", want)
			}
			if strings.HasPrefix(line, "data:") && strings.Contains(line, want) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the stream announced nothing about message %s within 20s", want)
		}
	}
}
