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
