package loadtest

import (
	"strconv"
	"testing"
)

// BenchmarkTracker measures the bookkeeping per message: register, accept,
// three deliveries and three acknowledgements.
func BenchmarkTracker(b *testing.B) {
	tr := NewTracker([]string{"portal", "a", "b", "c"})
	subs := []int{1, 2, 3}
	i := 0
	for b.Loop() {
		id := strconv.Itoa(i)
		i++
		tr.Expect(id, MessageExpectation{Event: EventCarePlan, Focal: "cp/" + id, Sender: 0, Subscribers: subs})
		tr.Accepted(id, "v1")
		for _, s := range subs {
			tr.Delivered(id, s)
			tr.Acked(id, s, StatusSuccess)
		}
	}
}
