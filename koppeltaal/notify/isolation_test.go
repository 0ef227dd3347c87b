package notify_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// stream is one open live stream; lines ends when the server closes it.
type stream struct {
	lines <-chan string
}

func openStream(t *testing.T, base string, cred [2]string) stream {
	t.Helper()
	hr, _ := http.NewRequest("GET", base+"/FHIR/Koppeltaal/_stream", nil)
	hr.SetBasicAuth(cred[0], cred[1])
	lines := apitest.Stream(t, hr)
	for l := range lines {
		if strings.HasPrefix(l, "event: ready") {
			break
		}
	}
	return stream{lines: lines}
}

// announcements collects the data lines of NewMessage events for d.
func (s stream) announcements(d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	event := ""
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return out
			}
			if strings.HasPrefix(l, "event: ") {
				event = strings.TrimPrefix(l, "event: ")
			}
			if strings.HasPrefix(l, "data: ") && event == "NewMessage" {
				out = append(out, l)
			}
		case <-deadline:
			return out
		}
	}
}

func postCarePlan(t *testing.T, base string, cred [2]string, domain, patient string) string {
	t.Helper()
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	focal := "https://portal.example/CarePlan/" + uuid.NewString()
	id := uuid.NewString()
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: id, Timestamp: time.Now().UTC().Format(time.RFC3339),
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan"},
		Source: dstu1.Source{Endpoint: "https://portal.example"}, Data: []string{focal}, Patient: patient})
	b.AddEntry(mh.Resource, "", "")
	b.AddEntry(dstu1.NewResource("CarePlan"), focal, focal)
	hr, _ := http.NewRequest("POST", base+"/FHIR/Koppeltaal/Mailbox", strings.NewReader(string(b.JSON())))
	hr.SetBasicAuth(cred[0], cred[1])
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post as %s: %d", cred[0], resp.StatusCode)
	}
	return id
}

// TestStreamStaysInItsDomain: the same application has an instance in two
// domains; each instance's stream announces its own domain's messages only,
// in both directions.
func TestStreamStaysInItsDomain(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		evs := []string{"CreateOrUpdateCarePlan"}
		cfg := koppeltaal.Config{
			Domains:      []koppeltaal.DomainConfig{{Name: "A"}, {Name: "B"}},
			Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}},
			Instances: []koppeltaal.InstanceConfig{
				{Application: "Portal", Domain: "A", Username: "portal@a", Password: "pa"},
				{Application: "Game", Domain: "A", Username: "game@a", Password: "ga", Subscriptions: evs},
				{Application: "Portal", Domain: "B", Username: "portal@b", Password: "pb"},
				{Application: "Game", Domain: "B", Username: "game@b", Password: "gb", Subscriptions: evs},
			},
		}
		st := b.Open(t)
		nt, err := notify.New(notify.Options{Store: st, PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		base := apitest.Serve(t, api.Options{Store: st, Config: cfg, Extensions: []func(*api.Server, chi.Router){nt.Extension}}).URL
		sa, sb := openStream(t, base, [2]string{"game@a", "ga"}), openStream(t, base, [2]string{"game@b", "gb"})
		idA := postCarePlan(t, base, [2]string{"portal@a", "pa"}, "A", "https://a.example/Patient/1")
		idB := postCarePlan(t, base, [2]string{"portal@b", "pb"}, "B", "https://b.example/Patient/1")
		gotA, gotB := sa.announcements(time.Second), sb.announcements(10*time.Millisecond)
		if len(gotA) != 1 || !strings.Contains(gotA[0], idA) {
			t.Fatalf("A's stream announced %v, want only %s", gotA, idA)
		}
		if len(gotB) != 1 || !strings.Contains(gotB[0], idB) {
			t.Fatalf("B's stream announced %v, want only %s", gotB, idB)
		}
	})
}

// TestStreamEndsWhenTheInstanceIsRemoved (issue 16 item 5): a Basic caller's
// stream ends once its instance is removed from the configuration.
func TestStreamEndsWhenTheInstanceIsRemoved(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), "", notify.Options{RecheckInterval: 100 * time.Millisecond}, route{})
		s := openStream(t, e.ts.URL, game)
		storetest.DisableInstance(t, e.st, game[0])
		closed := false
		deadline := time.After(5 * time.Second)
		for !closed {
			select {
			case l, ok := <-s.lines:
				if !ok {
					t.Fatal("the stream ended without a closed event")
				}
				closed = strings.HasPrefix(l, "event: closed")
			case <-deadline:
				t.Fatal("the stream of a removed instance stayed open")
			}
		}
	})
}

// TestStreamResumeBeyondTheNewestRow: a client resuming with a Last-Event-ID
// the database does not have (it lost its last rows in a failover or restore
// and hands those ids out again) is announced the new rows.
func TestStreamResumeBeyondTheNewestRow(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), "", notify.Options{}, route{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
		hr.SetBasicAuth(game[0], game[1])
		hr.Header.Set("Last-Event-ID", "999")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", err, resp)
		}
		defer resp.Body.Close()
		ident := e.post()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), ident) {
				return
			}
		}
		t.Fatalf("message %s not announced after resuming beyond the newest row: %v", ident, sc.Err())
	})
}
