package loadtest

import (
	"fmt"
	"sync"
)

// Ack statuses a subscriber reports (and the server reports back).
const (
	StatusNew      = "New"
	StatusClaimed  = "Claimed"
	StatusSuccess  = "Success"
	StatusFailed   = "Failed"
	StatusReplaced = "ReplacedByNewVersion"
)

// outcome of a POST as the sender saw it.
const (
	outPending  uint8 = iota // no reply yet
	outAccepted              // 200
	outRejected              // the server answered with an error: nothing may be delivered
	outUnknown               // transport error or timeout: the server may or may not have it
)

const (
	ackNone uint8 = iota
	ackSuccess
	ackFailed
	ackNew
	ackReplaced // the ack got 409 because a newer version had replaced the entry
)

func ackCode(status string) uint8 {
	switch status {
	case StatusSuccess:
		return ackSuccess
	case StatusFailed:
		return ackFailed
	case StatusNew:
		return ackNew
	}
	return ackNone
}

// Tracker records, per message identifier, who should receive it and who did,
// and checks at the end that every accepted message reached every subscriber
// exactly once (re-deliveries after an acknowledgement of New excepted) and
// that every acknowledgement stuck. It is safe for concurrent use.
type Tracker struct {
	mu        sync.Mutex
	msgs      map[string]*tracked
	strays    int64
	self      int64
	examples  []string
	instNames []string
	seq       uint64
	// AllowStrays makes deliveries of identifiers this run never posted
	// informational: on a server that was not started empty they are
	// messages from before the run.
	AllowStrays bool

	// Prefilled messages (ExpectPrefill), kept compactly: a million of them
	// cost a few bytes each instead of a map entry.
	pfTag    string
	pf       []*prefillGroup // by domain index in the identifier
	pfOut    map[int]int64   // per instance: prefilled deliveries still expected
	pfWrong  int64           // prefilled deliveries to instances that are not subscribers
	unreadNw map[int]int64   // per instance: oldest New entries the read-back skipped
	pfDue    int             // prefilled due messages per domain (numbered after the waiting ones)
}

// prefillGroup is the prefill of one domain: n messages of one event from one
// sender, each for the same subscribers. Delivery state is kept per message
// and subscriber at index msg*len(subs)+slot.
type prefillGroup struct {
	base    string // the domain's base URL (the patients' URLs start with it)
	event   string
	sender  int32
	subs    []int32
	n       int
	got     []uint16
	newAcks []uint8
	final   []uint8
}

type tracked struct {
	event   string
	patient string // MessageHeader#Patient as sent (the audit trail must name it)
	focal   string // focal resource URL without version
	verIn   string // focal version the sender claimed to update ("" = new)
	verOut  string // focal version the server issued
	seq     uint64 // order of Expect calls: for one focal resource this is the server's order, as the sender serialises them
	sender  int32
	outcome uint8
	subs    []int32 // instances that must receive it
	got     []uint16
	newAcks []uint8
	final   []uint8
	// unsure counts acknowledgements without an answer (no reply, 5xx): each may
	// not have stuck, and the server then delivers the message once more.
	unsure []uint8
	other  []int32 // deliveries to instances that were not expected (never appended for subs)
}

// MessageExpectation describes a message about to be posted.
type MessageExpectation struct {
	Event       string
	Focal       string // focal resource URL without /_history
	Patient     string // the patient the message is about
	VersionIn   string // focal version sent ("" when new)
	Sender      int
	Subscribers []int // instance indexes that must receive it (the sender excluded)
}

// NewTracker returns an empty tracker; instNames names instance indexes in reports.
func NewTracker(instNames []string) *Tracker {
	return &Tracker{msgs: make(map[string]*tracked), instNames: instNames}
}

// Expect registers a message before it is posted (a subscriber may claim it
// before the sender has read the reply).
func (t *Tracker) Expect(id string, e MessageExpectation) {
	m := &tracked{event: e.Event, patient: e.Patient, focal: e.Focal, verIn: e.VersionIn, sender: int32(e.Sender),
		subs: make([]int32, len(e.Subscribers)), got: make([]uint16, len(e.Subscribers)),
		newAcks: make([]uint8, len(e.Subscribers)), final: make([]uint8, len(e.Subscribers)),
		unsure: make([]uint8, len(e.Subscribers))}
	for i, s := range e.Subscribers {
		m.subs[i] = int32(s)
	}
	t.mu.Lock()
	t.seq++
	m.seq = t.seq
	t.msgs[id] = m
	t.mu.Unlock()
}

// ExpectPrefill registers the messages --prefill wrote into the database
// before the server started: accepted, each to be delivered once to every
// subscriber of its domain (see Prefill). Call it before any delivery.
func (t *Tracker) ExpectPrefill(p *Prefill) {
	if p == nil || p.PerDomain <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pfTag, t.pfDue = p.Tag, p.DuePerDomain
	if t.pfOut == nil {
		t.pfOut = map[int]int64{}
	}
	for _, d := range p.Domains {
		g := &prefillGroup{base: domainBaseURL(d.Domain), event: EventPatient, sender: int32(d.Sender), n: p.PerDomain}
		for _, s := range d.Subscribers {
			g.subs = append(g.subs, int32(s))
			t.pfOut[s] += int64(p.PerDomain)
		}
		k := p.PerDomain * len(g.subs)
		g.got, g.newAcks, g.final = make([]uint16, k), make([]uint8, k), make([]uint8, k)
		t.pf = append(t.pf, g)
	}
}

// prefilled finds a prefilled message by identifier (t.mu held).
func (t *Tracker) prefilled(id string) (*prefillGroup, int, bool) {
	if len(t.pf) == 0 {
		return nil, 0, false
	}
	d, n, ok := parsePrefillID(t.pfTag, id)
	if !ok || d >= len(t.pf) || n >= t.pf[d].n {
		return nil, 0, false
	}
	return t.pf[d], n, true
}

// patient returns the patient of the message with identifier id as the tool
// sent or prefilled it.
func (t *Tracker) patient(id string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.msgs[id]; m != nil {
		return m.patient, m.patient != ""
	}
	if g, n, ok := t.prefilled(id); ok {
		return prefillPatientURL(g.base, n), true
	}
	// A prefilled due message (numbered after the waiting ones).
	if d, n, ok := parsePrefillID(t.pfTag, id); ok && t.pfTag != "" && d < len(t.pf) && n < t.pf[d].n+t.pfDue {
		return prefillPatientURL(t.pf[d].base, n), true
	}
	return "", false
}

func (g *prefillGroup) slot(inst int) int {
	for i, s := range g.subs {
		if int(s) == inst {
			return i
		}
	}
	return -1
}

// outstanding is what delivery k still owes.
func (g *prefillGroup) outstanding(k int) int64 {
	return max(0, 1+int64(g.newAcks[k])-int64(g.got[k]))
}

// PrefillOutstanding counts the prefilled deliveries instance inst has not
// had yet: its prefilled entries the server should still hold New.
func (t *Tracker) PrefillOutstanding(inst int) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pfOut[inst]
}

// NotReadBack records that the read-back of instance inst skipped its n
// oldest New entries (the undelivered prefill: reading a million of them
// back page by page would take longer than the run). Check counts that many
// undelivered prefilled messages it does not find in the read-back as still
// waiting; a lost prefilled entry still shows, as a load-phase entry that
// slid into the skipped range and is then missing.
func (t *Tracker) NotReadBack(inst int, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.unreadNw == nil {
		t.unreadNw = map[int]int64{}
	}
	t.unreadNw[inst] += n
}

// Accepted records a 200 reply and the focal version the server issued.
func (t *Tracker) Accepted(id, versionOut string) { t.setOutcome(id, outAccepted, versionOut) }

// Rejected records an error reply: the message must not be delivered.
func (t *Tracker) Rejected(id string) { t.setOutcome(id, outRejected, "") }

// Unknown records a lost reply (transport error, timeout).
func (t *Tracker) Unknown(id string) { t.setOutcome(id, outUnknown, "") }

func (t *Tracker) setOutcome(id string, o uint8, v string) {
	t.mu.Lock()
	if m := t.msgs[id]; m != nil {
		m.outcome, m.verOut = o, v
	}
	t.mu.Unlock()
}

func (m *tracked) slot(inst int) int {
	for i, s := range m.subs {
		if int(s) == inst {
			return i
		}
	}
	return -1
}

// Delivered records that instance inst claimed message id. It returns the
// number of times inst has now received it (0 when the message is unknown to
// this run or inst was not a subscriber).
func (t *Tracker) Delivered(id string, inst int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.msgs[id]
	if m == nil {
		if g, n, ok := t.prefilled(id); ok {
			i := g.slot(inst)
			if i < 0 {
				if int(g.sender) == inst {
					t.self++
				} else {
					t.pfWrong++
					t.example("prefilled message %s (%s) was delivered to %s, which is not subscribed", id, g.event, t.name(inst))
				}
				return 0
			}
			k := n*len(g.subs) + i
			before := g.outstanding(k)
			g.got[k]++
			t.pfOut[inst] += g.outstanding(k) - before
			return int(g.got[k])
		}
		t.strays++
		if !t.AllowStrays {
			t.example("delivery of identifier %q to %s: never posted by this run", id, t.name(inst))
		}
		return 0
	}
	i := m.slot(inst)
	if i < 0 {
		if int(m.sender) == inst {
			t.self++
			return 0
		}
		m.other = append(m.other, int32(inst))
		return 0
	}
	m.got[i]++
	return int(m.got[i])
}

// Acked records an acknowledgement the server answered 2xx to.
func (t *Tracker) Acked(id string, inst int, status string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.msgs[id]
	if m == nil {
		if g, n, ok := t.prefilled(id); ok {
			if i := g.slot(inst); i >= 0 {
				k := n*len(g.subs) + i
				before := g.outstanding(k)
				g.final[k] = ackCode(status)
				if g.final[k] == ackNew {
					g.newAcks[k]++
				}
				t.pfOut[inst] += g.outstanding(k) - before
			}
		}
		return
	}
	if i := m.slot(inst); i >= 0 {
		c := ackCode(status)
		m.final[i] = c
		if c == ackNew {
			m.newAcks[i]++
		}
	}
}

// AckUnknown records an acknowledgement that got no answer (no reply, or 5xx):
// one more delivery of the message to inst is then no duplicate.
func (t *Tracker) AckUnknown(id string, inst int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.msgs[id]; m != nil {
		if i := m.slot(inst); i >= 0 && m.unsure[i] < 255 {
			m.unsure[i]++
		}
	}
}

// AckSuperseded records an acknowledgement the server refused because a newer
// version of the message's focal resource had replaced the queue entry.
func (t *Tracker) AckSuperseded(id string, inst int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.msgs[id]; m != nil {
		if i := m.slot(inst); i >= 0 {
			m.final[i] = ackReplaced
		}
	} else if g, n, ok := t.prefilled(id); ok {
		if i := g.slot(inst); i >= 0 {
			g.final[n*len(g.subs)+i] = ackReplaced
		}
	}
}

// Outstanding counts deliveries still expected for accepted messages; it is
// an upper bound while messages may be superseded.
func (t *Tracker) Outstanding() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, m := range t.msgs {
		if m.outcome != outAccepted {
			continue
		}
		for i := range m.subs {
			if want := 1 + int(m.newAcks[i]); int(m.got[i]) < want {
				n += int64(want - int(m.got[i]))
			}
		}
	}
	for _, o := range t.pfOut {
		n += o
	}
	return n
}

func (t *Tracker) name(inst int) string {
	if inst >= 0 && inst < len(t.instNames) {
		return t.instNames[inst]
	}
	return fmt.Sprintf("instance #%d", inst)
}

func (t *Tracker) example(format string, a ...any) {
	if len(t.examples) < 20 {
		t.examples = append(t.examples, fmt.Sprintf(format, a...))
	}
}

// Readback is what the server reports per instance: message identifier → ProcessingStatus.
type Readback map[int]map[string]string

// Consistency is the result of the end-of-run check.
type Consistency struct {
	Posted               int64 `json:"posted"`
	Accepted             int64 `json:"accepted"`
	Rejected             int64 `json:"rejected"`
	Unknown              int64 `json:"unknown_outcome"`
	ExpectedDeliveries   int64 `json:"expected_deliveries"`
	Deliveries           int64 `json:"deliveries"`
	Duplicates           int64 `json:"duplicates"`
	Missing              int64 `json:"missing"`
	Superseded           int64 `json:"superseded"`
	SupersededAfterAck   int64 `json:"superseded_after_ack"`
	RejectedButDelivered int64 `json:"rejected_but_delivered"`
	UnknownDelivered     int64 `json:"unknown_outcome_delivered"`
	WrongRecipient       int64 `json:"wrong_recipient"`
	Strays               int64 `json:"strays"`
	SelfDeliveries       int64 `json:"self_deliveries"`
	AcksChecked          int64 `json:"acks_checked"`
	AcksNotStuck         int64 `json:"acks_not_stuck"`
	// StillQueued counts deliveries the server still holds as New or Claimed
	// after the drain: not lost, but not delivered in time.
	StillQueued int64 `json:"still_queued"`
	// Prefilled counts the messages --prefill wrote before the server started
	// (included in Posted, Accepted, ExpectedDeliveries and Deliveries).
	Prefilled int64 `json:"prefilled,omitempty"`
	// PrefillDelivered counts deliveries of prefilled messages.
	PrefillDelivered int64 `json:"prefill_delivered,omitempty"`
	// PrefillWaiting counts prefilled deliveries not made yet that the server
	// still holds New or Claimed ("still waiting (prefilled, not yet
	// claimed)"): not a failure — a million cannot be claimed in one run.
	PrefillWaiting int64 `json:"prefill_still_waiting,omitempty"`
	// BehindPrefill counts deliveries of messages posted during the load that
	// the server still holds New for an instance whose prefill is not yet all
	// claimed: claims take the oldest entry, so they wait behind it. Not a
	// failure; elsewhere such entries count as StillQueued.
	BehindPrefill int64    `json:"queued_behind_prefill,omitempty"`
	ReadbackDone  bool     `json:"readback_done"`
	Examples      []string `json:"examples,omitempty"`
	Pass          bool     `json:"pass"`
}

// Check evaluates all messages. rb may be nil when the server could not be
// read back; then acknowledgements are not verified and Pass is false.
func (t *Tracker) Check(rb Readback) Consistency {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c Consistency
	// A message is superseded for a subscriber when a later message about the
	// same focal resource and event reached the server: it marks the older
	// queue entries ReplacedByNewVersion instead of delivering them (also when
	// the subscriber had claimed one but not yet acknowledged it). A later
	// message whose reply was lost counts too; with a read-back the server
	// must confirm the replacement.
	latest := make(map[string]uint64)
	for _, m := range t.msgs {
		if m.outcome != outRejected {
			k := m.event + "\x00" + m.focal
			latest[k] = max(latest[k], m.seq)
		}
	}
	superseded := func(id string, m *tracked, inst int32) bool {
		if latest[m.event+"\x00"+m.focal] <= m.seq {
			return false
		}
		if rb != nil {
			return rb[int(inst)][id] == StatusReplaced
		}
		return true
	}
	c.Strays, c.SelfDeliveries = t.strays, t.self
	for id, m := range t.msgs {
		c.Posted++
		var got int64
		for _, g := range m.got {
			got += int64(g)
		}
		c.Deliveries += got
		c.WrongRecipient += int64(len(m.other))
		if len(m.other) > 0 {
			t.example("message %s (%s) was delivered to %s, which is not subscribed", id, m.event, t.name(int(m.other[0])))
		}
		switch m.outcome {
		case outRejected:
			c.Rejected++
			if got > 0 {
				c.RejectedButDelivered++
				t.example("message %s (%s) was rejected by the server but delivered %d times", id, m.event, got)
			}
			continue
		case outUnknown, outPending:
			c.Unknown++
			if got > 0 {
				c.UnknownDelivered++
			}
			continue
		}
		c.Accepted++
		for i, inst := range m.subs {
			want := 1 + int64(m.newAcks[i])
			g := int64(m.got[i])
			c.ExpectedDeliveries += want
			switch {
			case g > want+int64(m.unsure[i]):
				c.Duplicates += g - want - int64(m.unsure[i])
				t.example("message %s (%s) delivered %d times to %s, expected %d (+%d after unanswered acknowledgements)", id, m.event, g, t.name(int(inst)), want, m.unsure[i])
			case g < want:
				srv := "no read-back"
				if rb != nil {
					srv = orAbsent(rb[int(inst)][id])
				}
				switch {
				case superseded(id, m, inst):
					c.Superseded += want - g
				case srv == StatusNew || srv == StatusClaimed:
					// Not lost: the server still holds it (counted as still queued below).
				default:
					c.Missing += want - g
					t.example("message %s (%s) delivered %d times to %s, expected %d (server status: %s)", id, m.event, g, t.name(int(inst)), want, srv)
				}
			}
			if rb == nil {
				continue
			}
			srv, seen := rb[int(inst)][id]
			if srv == StatusReplaced && superseded(id, m, inst) {
				c.SupersededAfterAck += boolInt(m.final[i] != ackNone && m.final[i] != ackReplaced)
				continue
			}
			switch m.final[i] {
			case ackSuccess, ackFailed:
				c.AcksChecked++
				want := StatusSuccess
				if m.final[i] == ackFailed {
					want = StatusFailed
				}
				if srv != want {
					c.AcksNotStuck++
					if !seen {
						srv = orAbsent(srv)
					}
					t.example("acknowledgement %s of message %s by %s did not stick: server says %s", want, id, t.name(int(inst)), srv)
				}
			default:
				switch {
				case srv != StatusNew && srv != StatusClaimed:
				case t.pfOut[int(inst)] > 0:
					c.BehindPrefill++
				default:
					c.StillQueued++
					t.example("message %s (%s) is still %s for %s after the drain", id, m.event, srv, t.name(int(inst)))
				}
			}
		}
	}
	t.checkPrefill(rb, &c)
	c.ReadbackDone = rb != nil
	c.Examples = append([]string(nil), t.examples...)
	c.Pass = c.ReadbackDone && c.Duplicates == 0 && c.Missing == 0 && c.RejectedButDelivered == 0 &&
		c.WrongRecipient == 0 && (c.Strays == 0 || t.AllowStrays) && c.AcksNotStuck == 0 && c.StillQueued == 0 && c.Accepted > 0
	return c
}

// checkPrefill applies the rules of Check to the prefilled messages (t.mu
// held). They cannot be superseded (no other message is about their
// patients); a delivery not made yet is "still waiting" when the server
// holds the entry New or Claimed, or when it lies in the range of old New
// entries the read-back skipped (NotReadBack); otherwise it is missing.
func (t *Tracker) checkPrefill(rb Readback, c *Consistency) {
	c.WrongRecipient += t.pfWrong
	unread := make(map[int]int64, len(t.unreadNw))
	for k, v := range t.unreadNw {
		unread[k] = v
	}
	for d, g := range t.pf {
		for n := range g.n {
			c.Posted++
			c.Accepted++
			c.Prefilled++
			id := ""
			for i, inst := range g.subs {
				k := n*len(g.subs) + i
				want, got := 1+int64(g.newAcks[k]), int64(g.got[k])
				c.ExpectedDeliveries += want
				c.Deliveries += got
				c.PrefillDelivered += got
				if got == want && g.final[k] == ackNone && rb == nil {
					continue
				}
				if id == "" {
					id = prefillID(t.pfTag, d, n)
				}
				srv, seen := "no read-back", false
				if rb != nil {
					srv, seen = rb[int(inst)][id]
				}
				switch {
				case got > want:
					c.Duplicates += got - want
					t.example("prefilled message %s (%s) delivered %d times to %s, expected %d", id, g.event, got, t.name(int(inst)), want)
				case got < want:
					switch {
					case rb == nil || srv == StatusNew || srv == StatusClaimed:
						c.PrefillWaiting += want - got
					case !seen && unread[int(inst)] > 0:
						unread[int(inst)]--
						c.PrefillWaiting += want - got
					default:
						c.Missing += want - got
						t.example("prefilled message %s (%s) delivered %d times to %s, expected %d (server status: %s)", id, g.event, got, t.name(int(inst)), want, orAbsent(srv))
					}
				}
				if rb == nil {
					continue
				}
				switch g.final[k] {
				case ackSuccess, ackFailed:
					c.AcksChecked++
					wantSt := StatusSuccess
					if g.final[k] == ackFailed {
						wantSt = StatusFailed
					}
					if srv != wantSt {
						c.AcksNotStuck++
						t.example("acknowledgement %s of prefilled message %s by %s did not stick: server says %s", wantSt, id, t.name(int(inst)), orAbsent(srv))
					}
				case ackReplaced:
					// Nothing replaces a prefilled message: no later message is about its patient.
					c.AcksNotStuck++
					t.example("acknowledgement of prefilled message %s by %s was refused as replaced by a newer version, but none was sent", id, t.name(int(inst)))
				default:
					if got >= want && (srv == StatusNew || srv == StatusClaimed) {
						c.StillQueued++
						t.example("prefilled message %s (%s) is still %s for %s after its delivery", id, g.event, srv, t.name(int(inst)))
					}
				}
			}
		}
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}
