package loadtest

import (
	"strings"
	"testing"
)

// scenario helpers: instance 0 sends, 1..3 subscribe.
func newTestTracker() *Tracker {
	return NewTracker([]string{"portal", "patientportal", "game", "questionnaire"})
}

func post(t *Tracker, id, focal, verIn, verOut string) {
	t.Expect(id, MessageExpectation{Event: EventCarePlan, Focal: focal, VersionIn: verIn, Sender: 0, Subscribers: []int{1, 2, 3}})
	if verOut != "" {
		t.Accepted(id, verOut)
	}
}

func deliverAll(t *Tracker, id string, status string, rb Readback) {
	for inst := 1; inst <= 3; inst++ {
		t.Delivered(id, inst)
		t.Acked(id, inst, status)
		if rb[inst] == nil {
			rb[inst] = map[string]string{}
		}
		rb[inst][id] = status
	}
}

func TestConsistencyPasses(t *testing.T) {
	tr := newTestTracker()
	rb := Readback{}
	post(tr, "m1", "cp/1", "", "v1")
	deliverAll(tr, "m1", StatusSuccess, rb)
	post(tr, "m2", "cp/1", "v1", "v2")
	deliverAll(tr, "m2", StatusFailed, rb)
	// Acknowledged New once by the game: delivered again, then Success.
	post(tr, "m3", "cp/2", "", "w1")
	tr.Delivered("m3", 2)
	tr.Acked("m3", 2, StatusNew)
	deliverAll(tr, "m3", StatusSuccess, rb)
	// Rejected (409) and never delivered: fine.
	post(tr, "m4", "cp/2", "stale", "")
	tr.Rejected("m4")
	// m5 is replaced by m6 before anyone claimed it: not a miss.
	post(tr, "m5", "cp/3", "", "x1")
	post(tr, "m6", "cp/3", "x1", "x2")
	deliverAll(tr, "m6", StatusSuccess, rb)
	for inst := 1; inst <= 3; inst++ {
		rb[inst]["m5"] = StatusReplaced
	}
	// A Patient message replaced by a later one whose version came from a
	// CarePlan message in between (no direct version chain): still superseded.
	tr.Expect("p1", MessageExpectation{Event: EventPatient, Focal: "pat/1", Sender: 0, Subscribers: []int{1}})
	tr.Accepted("p1", "pv1")
	tr.Expect("p2", MessageExpectation{Event: EventPatient, Focal: "pat/1", VersionIn: "pv2", Sender: 0, Subscribers: []int{1}})
	tr.Accepted("p2", "pv3")
	tr.Delivered("p2", 1)
	tr.Acked("p2", 1, StatusSuccess)
	rb[1]["p1"], rb[1]["p2"] = StatusReplaced, StatusSuccess
	c := tr.Check(rb)
	if !c.Pass {
		t.Fatalf("consistent run failed the check: %+v", c)
	}
	if c.Accepted != 7 || c.Rejected != 1 || c.Superseded != 4 || c.Deliveries != 14 || c.AcksChecked != 13 {
		t.Fatalf("counts: %+v", c)
	}
}

// TestConsistencyFails feeds the checker one lost and one duplicated delivery,
// an acknowledgement the server forgot, a rejected message that was delivered
// anyway and a delivery nobody posted: each must be counted and fail the run.
func TestConsistencyFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(tr *Tracker, rb Readback)
		check func(c Consistency) bool
		want  string
	}{
		{"lost delivery", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			for _, inst := range []int{1, 2} { // questionnaire (3) never gets it
				tr.Delivered("m1", inst)
				tr.Acked("m1", inst, StatusSuccess)
				rb[inst]["m1"] = StatusSuccess
			}
		}, func(c Consistency) bool { return c.Missing == 1 && c.Duplicates == 0 }, "questionnaire, expected 1"},
		{"duplicate delivery", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
			tr.Delivered("m1", 2) // the game gets it a second time
		}, func(c Consistency) bool { return c.Duplicates == 1 && c.Missing == 0 }, "delivered 2 times to game"},
		{"lost after New", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
			tr.Acked("m1", 1, StatusNew) // patient portal said New but never got it again
		}, func(c Consistency) bool { return c.Missing == 1 }, "expected 2"},
		{"ack did not stick", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
			rb[3]["m1"] = StatusClaimed
		}, func(c Consistency) bool { return c.AcksNotStuck == 1 }, "server says Claimed"},
		{"rejected but delivered", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "v0", "")
			tr.Rejected("m1")
			tr.Delivered("m1", 1)
		}, func(c Consistency) bool { return c.RejectedButDelivered == 1 }, "rejected by the server"},
		{"stray", func(tr *Tracker, rb Readback) {
			tr.AllowStrays = false
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
			tr.Delivered("ghost", 1)
		}, func(c Consistency) bool { return c.Strays == 1 }, "never posted"},
		{"stray on a fresh server", func(tr *Tracker, rb Readback) {
			tr.AllowStrays = false
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
			tr.Delivered("left-over", 2)
		}, func(c Consistency) bool { return c.Strays == 1 }, "never posted"},
		{"wrong recipient", func(tr *Tracker, rb Readback) {
			tr.Expect("m1", MessageExpectation{Event: EventPatient, Focal: "p/1", Sender: 0, Subscribers: []int{1}})
			tr.Accepted("m1", "v1")
			tr.Delivered("m1", 1)
			tr.Acked("m1", 1, StatusSuccess)
			rb[1]["m1"] = StatusSuccess
			tr.Delivered("m1", 2)
		}, func(c Consistency) bool { return c.WrongRecipient == 1 }, "not subscribed"},
		{"still queued", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			for _, inst := range []int{1, 2} {
				tr.Delivered("m1", inst)
				tr.Acked("m1", inst, StatusSuccess)
				rb[inst]["m1"] = StatusSuccess
			}
			rb[3]["m1"] = StatusNew // the server has it but nobody claimed it before the drain ended
		}, func(c Consistency) bool { return c.Missing == 0 && c.StillQueued == 1 }, "still New"},
		{"replaced without a newer message", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			for inst := 1; inst <= 3; inst++ {
				rb[inst]["m1"] = StatusReplaced // the server claims a newer version exists, but none was sent
			}
		}, func(c Consistency) bool { return c.Missing == 3 && c.Superseded == 0 }, "server status: ReplacedByNewVersion"},
		{"no readback", func(tr *Tracker, rb Readback) {
			post(tr, "m1", "cp/1", "", "v1")
			deliverAll(tr, "m1", StatusSuccess, rb)
		}, func(c Consistency) bool { return !c.ReadbackDone }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker()
			rb := Readback{1: {}, 2: {}, 3: {}}
			tt.setup(tr, rb)
			if tt.name == "no readback" {
				rb = nil
			}
			c := tr.Check(rb)
			if c.Pass {
				t.Fatalf("check passed, want failure: %+v", c)
			}
			if !tt.check(c) {
				t.Fatalf("wrong counts: %+v", c)
			}
			if tt.want != "" && !strings.Contains(strings.Join(c.Examples, "\n"), tt.want) {
				t.Fatalf("examples %q do not mention %q", c.Examples, tt.want)
			}
		})
	}
}

func TestOutstanding(t *testing.T) {
	tr := newTestTracker()
	post(tr, "m1", "cp/1", "", "v1")
	if n := tr.Outstanding(); n != 3 {
		t.Fatalf("outstanding %d, want 3", n)
	}
	tr.Delivered("m1", 1)
	tr.Acked("m1", 1, StatusNew)
	if n := tr.Outstanding(); n != 3 {
		t.Fatalf("outstanding after New %d, want 3", n)
	}
}

// testPrefill is a prefill of 4 messages from instance 0 to instances 1..3.
func testPrefill() *Prefill {
	return &Prefill{Tag: "0123abcd-ef01-2345", PerDomain: 4, Domains: []PrefillDomain{{Domain: "d", Sender: 0, Subscribers: []int{1, 2, 3}}}}
}

func TestPrefillID(t *testing.T) {
	id := prefillID("0123abcd-ef01-2345", 7, 999999)
	if len(id) != 36 {
		t.Fatalf("%q is not 36 characters", id)
	}
	if d, n, ok := parsePrefillID("0123abcd-ef01-2345", id); !ok || d != 7 || n != 999999 {
		t.Fatalf("parse %q: %d %d %v", id, d, n, ok)
	}
	for _, bad := range []string{"0123abcd-ef01-2346-0007-0000000f423f", "m1", id[:35], strings.Replace(id, "-0007-", "-zzzz-", 1)} {
		if _, _, ok := parsePrefillID("0123abcd-ef01-2345", bad); ok {
			t.Errorf("%q parsed as a prefilled identifier", bad)
		}
	}
}

// TestConsistencyPrefill: prefilled messages count like posted ones. Each
// delivered once (one acknowledged New and delivered again) passes; one not
// yet claimed that the server still holds New is "still waiting", and a
// load-phase message queued behind it is not "still queued".
func TestConsistencyPrefill(t *testing.T) {
	tr := newTestTracker()
	p := testPrefill()
	tr.ExpectPrefill(p)
	if got := tr.PrefillOutstanding(1); got != 4 {
		t.Fatalf("outstanding for instance 1: %d, want 4", got)
	}
	rb := Readback{}
	for n := range 3 {
		deliverAll(tr, prefillID(p.Tag, 0, n), StatusSuccess, rb)
	}
	id0 := prefillID(p.Tag, 0, 0)
	tr.Delivered(id0, 2) // a second delivery after its Success
	// Message 3 is waiting for instance 1 and 2; instance 3 got it.
	id3 := prefillID(p.Tag, 0, 3)
	rb[1][id3], rb[2][id3] = StatusNew, StatusNew
	tr.Delivered(id3, 3)
	tr.Acked(id3, 3, StatusSuccess)
	rb[3][id3] = StatusSuccess
	// A load-phase message behind the prefill of instance 1 and 2; instance 3 got it.
	post(tr, "m1", "cp/1", "", "v1")
	rb[1]["m1"], rb[2]["m1"] = StatusNew, StatusNew
	tr.Delivered("m1", 3)
	tr.Acked("m1", 3, StatusSuccess)
	rb[3]["m1"] = StatusSuccess

	// id0 was delivered twice to instance 2: a duplicate.
	c := tr.Check(rb)
	if c.Pass || c.Duplicates != 1 {
		t.Fatalf("a prefilled message delivered twice passed: %+v", c)
	}

	// The same without the duplicate passes, also with one message
	// acknowledged New and delivered again.
	tr = newTestTracker()
	tr.ExpectPrefill(p)
	rb = Readback{}
	tr.Delivered(id0, 2)
	tr.Acked(id0, 2, StatusNew)
	for n := range 3 {
		deliverAll(tr, prefillID(p.Tag, 0, n), StatusSuccess, rb)
	}
	tr.Delivered(id3, 3)
	tr.Acked(id3, 3, StatusSuccess)
	rb[3][id3] = StatusSuccess
	rb[1][id3] = StatusNew
	tr.NotReadBack(2, 1) // instance 2's oldest New entry was not read back: id3
	post(tr, "m1", "cp/1", "", "v1")
	rb[1]["m1"], rb[2]["m1"] = StatusNew, StatusNew
	tr.Delivered("m1", 3)
	tr.Acked("m1", 3, StatusSuccess)
	rb[3]["m1"] = StatusSuccess
	c = tr.Check(rb)
	if !c.Pass || c.Prefilled != 4 || c.PrefillWaiting != 2 || c.BehindPrefill != 2 || c.StillQueued != 0 || c.Accepted != 5 || c.PrefillDelivered != 11 {
		t.Fatalf("want a pass with 2 prefilled deliveries waiting and 2 behind them: %+v", c)
	}
}

// TestConsistencyPrefillLost: when the prefill has drained, a prefilled
// message that never arrived and that the server does not hold is missing,
// and a load-phase message still queued is no longer excused.
func TestConsistencyPrefillLost(t *testing.T) {
	tr := newTestTracker()
	p := testPrefill()
	tr.ExpectPrefill(p)
	rb := Readback{}
	for n := range 4 {
		deliverAll(tr, prefillID(p.Tag, 0, n), StatusSuccess, rb)
	}
	post(tr, "m1", "cp/1", "", "v1")
	deliverAll(tr, "m1", StatusSuccess, rb)
	if c := tr.Check(rb); !c.Pass || c.PrefillWaiting != 0 || tr.Outstanding() != 0 {
		t.Fatalf("all delivered once, want a pass: %+v", c)
	}

	tr = newTestTracker()
	tr.ExpectPrefill(p)
	rb = Readback{}
	for n := range 3 {
		deliverAll(tr, prefillID(p.Tag, 0, n), StatusSuccess, rb)
	}
	id3 := prefillID(p.Tag, 0, 3)
	for inst := 2; inst <= 3; inst++ {
		tr.Delivered(id3, inst)
		tr.Acked(id3, inst, StatusSuccess)
		rb[inst][id3] = StatusSuccess
	}
	// Instance 1 never got id3 and the server does not have it: lost.
	c := tr.Check(rb)
	if c.Pass || c.Missing != 1 || c.PrefillWaiting != 0 {
		t.Fatalf("a lost prefilled message passed: %+v", c)
	}
	if !strings.Contains(strings.Join(c.Examples, "\n"), id3) {
		t.Fatalf("no example names %s: %v", id3, c.Examples)
	}

	// A delivery to an instance that is not subscribed fails too.
	tr = newTestTracker()
	tr.ExpectPrefill(&Prefill{Tag: p.Tag, PerDomain: 1, Domains: []PrefillDomain{{Domain: "d", Sender: 0, Subscribers: []int{1, 2}}}})
	rb = Readback{1: {}, 2: {}, 3: {}}
	id := prefillID(p.Tag, 0, 0)
	for inst := 1; inst <= 3; inst++ {
		tr.Delivered(id, inst)
		tr.Acked(id, inst, StatusSuccess)
		rb[inst][id] = StatusSuccess
	}
	if c := tr.Check(rb); c.Pass || c.WrongRecipient != 1 {
		t.Fatalf("delivery to an unsubscribed instance passed: %+v", c)
	}
}

// An acknowledgement without an answer (a failover) may not have stuck: the
// server then delivers the message once more, which is no duplicate; a second
// extra delivery still is.
func TestConsistencyUnansweredAck(t *testing.T) {
	for _, extra := range []int{1, 2} {
		tr := newTestTracker()
		rb := Readback{}
		post(tr, "m1", "cp/1", "", "v1")
		tr.Delivered("m1", 2)
		tr.AckUnknown("m1", 2)
		for range extra - 1 {
			tr.Delivered("m1", 2)
		}
		deliverAll(tr, "m1", StatusSuccess, rb)
		c := tr.Check(rb)
		if want := int64(extra - 1); c.Duplicates != want {
			t.Errorf("%d extra deliveries after one unanswered acknowledgement: %d duplicates, want %d", extra, c.Duplicates, want)
		}
	}
}
