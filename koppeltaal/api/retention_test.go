package api_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Automatic data removal (SPEC.md §10) with a controllable clock, on both
// databases: every rule of §10.2, what recipients see afterwards, and what the
// resource store keeps.

const (
	retDomain  = "R"
	retPatient = "https://epd.example/fhir/Koppeltaal/Patient/r1"
)

// clock is the server's controllable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func retentionConfig(mutate func(*koppeltaal.Config)) koppeltaal.Config {
	evs := []string{"CreateOrUpdateCarePlan"}
	cfg := koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: retDomain}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}, {ID: "EPD"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: retDomain, Username: "portal@r", Password: "pr"},
			{Application: "Game", Domain: retDomain, Username: "game@r", Password: "gr", Subscriptions: evs},
			{Application: "EPD", Domain: retDomain, Username: "epd@r", Password: "er", Subscriptions: evs},
		},
		Retention: koppeltaal.RetentionConfig{BatchSize: 2},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

type retEnv struct {
	*harness
	clock *clock
}

func newRetEnv(t *testing.T, b storetest.Backend, mutate func(*koppeltaal.Config)) *retEnv {
	h := newHarness(t, b, retentionConfig(mutate))
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h.srv.Service().SetClock(c.now)
	return &retEnv{harness: h, clock: c}
}

// post sends a CarePlan message from the portal and returns the issued version of the plan.
func (e *retEnv) post(plan, version, note string) string {
	e.t.Helper()
	r := e.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@r", pass: "pr", accept: "application/json",
		ctype: "application/json", body: carePlanMessage(retDomain, plan, version, retPatient, note).JSON()})
	if r.Status != 200 {
		e.t.Fatalf("post: %d %s", r.Status, r.Body)
	}
	_, v := dstu1.SplitHistory(header(e.t, bundleOf(e.t, r)).Data()[0])
	return v
}

// claim claims the next message of user ("" query: default) and returns it (nil when none).
func (e *retEnv) claim(user, pass, query string) *dstu1.Bundle {
	e.t.Helper()
	r := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim" + query,
		user: user, pass: pass, accept: "application/json"})
	if r.Status != 200 {
		e.t.Fatalf("claim: %d %s", r.Status, r.Body)
	}
	b := bundleOf(e.t, r)
	if len(b.Entries) == 0 {
		return nil
	}
	return b
}

func (e *retEnv) ack(user, pass string, msg *dstu1.Bundle) {
	e.t.Helper()
	mh := header(e.t, msg)
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
	r := e.do(req{method: "PUT", path: strings.TrimPrefix(msg.Entries[0].SelfLink(), e.ts.URL), user: user, pass: pass,
		accept: "application/json", ctype: "application/json", body: mh.Resource.JSON()})
	if r.Status != 200 {
		e.t.Fatalf("ack: %d %s", r.Status, r.Body)
	}
}

// claimAndAck makes both subscribers claim and acknowledge their next message.
func (e *retEnv) claimAndAck() {
	e.t.Helper()
	for _, u := range [][2]string{{"game@r", "gr"}, {"epd@r", "er"}} {
		msg := e.claim(u[0], u[1], "")
		if msg == nil {
			e.t.Fatalf("%s: nothing to claim", u[0])
		}
		e.ack(u[0], u[1], msg)
	}
}

// state is what the store holds for the messages: bodies left, expired messages, expired queue entries.
func (e *retEnv) state() (bodies, expired, expiredEntries int) {
	e.t.Helper()
	err := e.st.View(ctx, func(tx *store.Tx) error {
		if err := tx.Get(ctx, &bodies, "SELECT COUNT(*) FROM message_bodies"); err != nil {
			return err
		}
		if err := tx.Get(ctx, &expired, "SELECT COUNT(*) FROM messages WHERE is_expired AND body_id IS NULL"); err != nil {
			return err
		}
		return tx.Get(ctx, &expiredEntries, "SELECT COUNT(*) FROM queue WHERE is_expired")
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return
}

func (e *retEnv) run() koppeltaal.RetentionResult {
	e.t.Helper()
	res, err := e.srv.Service().RemoveExpired(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *retEnv) expectState(what string, bodies, expired, entries int) {
	e.t.Helper()
	if b, x, q := e.state(); b != bodies || x != expired || q != entries {
		e.t.Fatalf("%s: %d bodies, %d expired messages, %d expired entries; want %d, %d, %d", what, b, x, q, bodies, expired, entries)
	}
}

// The default rule: the body goes in the transaction of the last Success.
// Afterwards the message is out of claims and searches; include-expired shows
// it rebuilt from its row (every DSTU1 1..1 element present, IsExpired true);
// the resource store keeps the CarePlan's content until a newer version comes.
func TestRetentionWhenEveryRecipientSucceeded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newRetEnv(t, b, nil)
		plan := "https://portal.example/fhir/Koppeltaal/CarePlan/p1"
		v1 := e.post(plan, "", "first note")
		game := e.claim("game@r", "gr", "")
		e.ack("game@r", "gr", game)
		e.expectState("one of two recipients succeeded", 1, 0, 0)
		e.ack("epd@r", "er", e.claim("epd@r", "er", ""))
		e.expectState("both succeeded", 0, 1, 2)

		var version string
		var content []byte
		if err := e.st.View(ctx, func(tx *store.Tx) error {
			var err error
			version, content, err = tx.StoredResourceContent(ctx, domainID(t, e.st, retDomain), plan)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if version != v1 || !bytes.Contains(content, []byte("first note")) || !bytes.Contains(content, []byte(`"resourceType":"CarePlan"`)) {
			t.Fatalf("resource store after the body went: version %s, content %s", version, content)
		}

		search := func(extra string) *dstu1.Bundle {
			r := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true" + extra, user: "game@r", pass: "gr", accept: "application/json"})
			if r.Status != 200 {
				t.Fatalf("search: %d %s", r.Status, r.Body)
			}
			return bundleOf(t, r)
		}
		if got := search(""); got.TotalResults != "0" {
			t.Fatalf("default search shows %s expired messages", got.TotalResults)
		}
		for _, f := range []string{"application/json", "application/xml+fhir"} {
			r := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&include-expired=yes", user: "game@r", pass: "gr", accept: f})
			got := bundleOf(t, r)
			if got.TotalResults != "1" {
				t.Fatalf("%s: include-expired search: %s", f, r.Body)
			}
			checkExpiredHeader(t, got, header(t, game))
		}
		read := e.do(req{method: "GET", path: strings.TrimPrefix(game.Entries[0].ID, e.ts.URL), user: "game@r", pass: "gr", accept: "application/json"})
		if read.Status != 200 || len(bundleOf(t, read).Entries) != 1 {
			t.Fatalf("read of an expired message: %d %s", read.Status, read.Body)
		}
		checkExpiredHeader(t, bundleOf(t, read), header(t, game))

		e.post(plan, v1, "second note")
		if err := e.st.View(ctx, func(tx *store.Tx) error {
			var err error
			_, content, err = tx.StoredResourceContent(ctx, domainID(t, e.st, retDomain), plan)
			return err
		}); err != nil || content != nil {
			t.Fatalf("a newer version is in a kept body, the copy must go: %s %v", content, err)
		}
	})
}

// checkExpiredHeader: the rebuilt MessageHeader of §10.2 names the message as it was and is complete.
func checkExpiredHeader(t *testing.T, b *dstu1.Bundle, was *dstu1.MessageHeader) {
	t.Helper()
	mh := header(t, b)
	if exp, ok := mh.IsExpired(); !exp || !ok {
		t.Fatalf("IsExpired not true: %s", mh.Resource.JSON())
	}
	if mh.Identifier() != was.Identifier() || mh.EventCode() != was.EventCode() || mh.Patient() != was.Patient() ||
		len(mh.Data()) != 1 || mh.Data()[0] != was.Data()[0] {
		t.Fatalf("rebuilt header %s does not name the message %s", mh.Resource.JSON(), was.Resource.JSON())
	}
	if missing := mh.Resource.MissingRequired(); len(missing) > 0 {
		t.Fatalf("rebuilt header lacks DSTU1 1..1 elements %v: %s", missing, mh.Resource.JSON())
	}
	if mh.Source().Software == "" || mh.Source().Endpoint == "" {
		t.Fatalf("rebuilt header source: %+v", mh.Source())
	}
}

func domainID(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	var d store.Domain
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		d, err = tx.DomainByName(ctx, name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// The global maximum age removes bodies whatever their status; expired New
// entries are not claimed, except with include-expired=yes (then rebuilt).
// Batches of two, one message past the age by a microsecond only, and idle
// Storage Service items.
func TestRetentionGlobalAge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newRetEnv(t, b, nil)
		for i := range 5 {
			e.post("https://portal.example/fhir/Koppeltaal/CarePlan/g"+string(rune('a'+i)), "", "n")
		}
		e.clock.add(time.Hour)
		e.post("https://portal.example/fhir/Koppeltaal/CarePlan/young", "", "n")
		if err := e.st.Update(ctx, func(tx *store.Tx) error {
			var inst int64
			if err := tx.Get(ctx, &inst, "SELECT id FROM app_instances WHERE username = 'game@r'"); err != nil {
				return err
			}
			for i, at := range []time.Time{e.clock.now().AddDate(-1, 0, -2), e.clock.now()} {
				if _, err := tx.InsertStorageItem(ctx, store.StorageItem{DomainID: domainID(t, e.st, retDomain), InstanceID: inst,
					PatientRef: retPatient, ObjectKey: string(rune('k' + i)), ContentType: "text/plain", Content: []byte("x"),
					Version: "v", CreatedAt: at.UnixMicro(), UpdatedAt: at.UnixMicro()}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.clock.add(55 * 24 * time.Hour)
		if res := e.run(); res.ByAge != 0 || res.StorageItems != 1 {
			t.Fatalf("at 55 days: %+v, want only the idle storage item", res)
		}
		e.clock.add(24*time.Hour - time.Hour) // the first five are exactly 56 days old now: not yet past it
		e.expectState("at 56 days", 6, 0, 0)
		if res := e.run(); res.ByAge != 0 {
			t.Fatalf("at exactly 56 days: %+v", res)
		}
		e.clock.add(time.Microsecond)
		res := e.run()
		if res.ByAge != 5 || res.Batches < 3 {
			t.Fatalf("past 56 days: %+v, want 5 removed in batches of 2", res)
		}
		e.expectState("past 56 days", 1, 5, 10)
		if msg := e.claim("game@r", "gr", ""); msg == nil || !strings.Contains(string(msg.JSON()), "CarePlan/young") {
			t.Fatalf("default claim must skip the expired entries and find the young message")
		}
		msg := e.claim("game@r", "gr", "&include-expired=yes")
		if msg == nil || len(msg.Entries) != 1 {
			t.Fatalf("include-expired claim: %v", msg)
		}
		if exp, _ := header(t, msg).IsExpired(); !exp {
			t.Fatalf("claimed expired message without IsExpired")
		}
		if ps, _ := header(t, msg).ProcessingStatus(); ps.Status != "Claimed" {
			t.Fatalf("claimed expired message has status %s", ps.Status)
		}
		if missing := header(t, msg).Resource.MissingRequired(); len(missing) > 0 {
			t.Fatalf("claimed expired message lacks %v", missing)
		}
		e.ack("game@r", "gr", msg) // an expired message can still be acknowledged
	})
}

// The exceptions: a domain that keeps fully retrieved messages of an event
// (until its shorter maximum age), and an application that must keep an
// event's messages (past the global maximum too).
func TestRetentionSettings(t *testing.T) {
	t.Run("domain keeps retrieved messages for 7 days", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, b storetest.Backend) {
			e := newRetEnv(t, b, func(c *koppeltaal.Config) {
				c.Domains[0].MessageSettings = []koppeltaal.DomainMessageSettingConfig{
					{Event: "CreateOrUpdateCarePlan", MaximumMessageAgeDays: 7, RetainOnSuccessfulRetrieval: true}}
			})
			e.post("https://portal.example/fhir/Koppeltaal/CarePlan/d1", "", "n")
			e.claimAndAck()
			e.expectState("retained on success", 1, 0, 0)
			e.clock.add(7 * 24 * time.Hour)
			e.run()
			e.expectState("at 7 days", 1, 0, 0)
			e.clock.add(time.Second)
			e.run()
			e.expectState("past 7 days", 0, 1, 2)
		})
	})
	t.Run("application requires retainment", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, b storetest.Backend) {
			e := newRetEnv(t, b, func(c *koppeltaal.Config) {
				c.Applications[1].MessageSettings = []koppeltaal.ApplicationMessageSettingConfig{
					{Event: "CreateOrUpdateCarePlan", RetainmentRequired: true}}
			})
			e.post("https://portal.example/fhir/Koppeltaal/CarePlan/k1", "", "n")
			e.claimAndAck()
			e.expectState("retained by the application", 1, 0, 0)
			e.clock.add(400 * 24 * time.Hour)
			e.run()
			e.expectState("past the global age", 1, 0, 0)
		})
	})
}

// TestRetentionRemovesHTTPLog: the removal job also removes the HTTP request
// log's old rows (koppeltaal.Service.AddRemover), 7 days after a successful
// and 14 after a failed call, in batches of retention.batch_size.
func TestRetentionRemovesHTTPLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newRetEnv(t, b, nil)
		requests, err := httplog.New(httplog.Options{Store: e.st, Now: e.clock.now})
		if err != nil {
			t.Fatal(err)
		}
		defer requests.Close()
		e.srv.Service().AddRemover(requests)
		now := e.clock.now()
		var rows []store.HTTPLogRow
		for _, r := range []struct {
			days   int
			status int
		}{{1, 200}, {8, 200}, {8, 200}, {8, 503}, {20, 401}, {20, 200}, {3, 404}} {
			rows = append(rows, store.HTTPLogRow{At: now.AddDate(0, 0, -r.days).UnixMicro(), Method: "GET", Path: "/x", Status: r.status})
		}
		if err := e.st.InsertHTTPLog(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if res := e.run(); res.Other != 4 {
			t.Fatalf("the removal run removed %d request log rows, want 4", res.Other)
		}
		left, _, err := httplog.Query(ctx, e.st, httplog.Filter{})
		if err != nil || len(left) != 3 {
			t.Fatalf("%d rows left (%v), want 3: %+v", len(left), err, left)
		}
	})
}
