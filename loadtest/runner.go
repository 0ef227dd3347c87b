package loadtest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Options configure Run.
type Options struct {
	// Scenario is the validated scenario (Defaults applied).
	Scenario *Scenario
	// Target is the base URL of the server, or several separated by commas
	// (processes of one server on one database): requests go to each in turn.
	Target string
	// Instances are the application instances to act as.
	Instances []InstanceSpec
	// Progress receives the progress line; nil disables it.
	Progress io.Writer
	// TTY makes the progress one updating line instead of periodic lines.
	TTY bool
	// StoreLabel describes the server's store in the report (e.g. "sqlite synchronous=FULL").
	StoreLabel string
	// CommitRate is the raw commit rate measured for the store, if any.
	CommitRate *CommitRate
	// ServerPID, when > 0, is sampled for resident memory and CPU time (Linux /proc).
	ServerPID int
	// ServerPIDs are all server processes (ServerPID among them), whose CPU
	// time during the load and the drain the report adds up (Report.CPU).
	ServerPIDs []int
	// Logger receives debug details; nil discards.
	Logger *slog.Logger
	// AuditDSN is the server's database (--self): after the read-back the
	// tool checks that its audit trail names the instance and patient of every
	// claim and search result (checkAudit). "" skips that.
	AuditDSN string
	// FreshServer tells that the server started empty (--self): then a
	// delivery of a message this run did not post fails the check. On other
	// servers such messages are from before the run; they are claimed,
	// acknowledged Success and counted, but do not fail it.
	FreshServer bool
	// StopLoad, when closed, ends the load phase early; the drain and the
	// read-back still run (cancel the context of Run to abort everything).
	StopLoad <-chan struct{}
	// Prefill describes messages written into the server's database before
	// it started (SelfServer.Prefill, --prefill): they are tracked like posted
	// messages, count in the queue depth, and bound the drain (see waitDrained).
	Prefill *Prefill
}

// patientState is the sender's knowledge of one patient's resources and the
// versions the server issued for them. Its mutex is held for the whole
// request, as a real portal serialises edits of one dossier.
type patientState struct {
	mu       sync.Mutex
	n        int
	gen      int // bumped when the state is reset after an unknown outcome
	url, ver string
	cpURL    string
	cpVer    string
	cpPrev   string // the version before cpVer, used to provoke 409s
	cts      []string
	ctVers   []string
	acts     []string
	rev      int
}

// carePlanInfo lets modules find the activities of a CarePlan they received.
type carePlanInfo struct {
	patient string
	acts    []string
}

type domainState struct {
	name      string
	senders   []*instance
	subs      map[string][]int // event → instance indexes subscribed
	modules   map[int]bool     // instances that report activity status
	baseURL   string           // sender's resource base
	practURL  string
	orgURL    string
	patients  []*patientState
	carePlans sync.Map // CarePlan URL → carePlanInfo
}

type runner struct {
	sc      *Scenario
	opts    Options
	cl      *client
	st      *stats
	tr      *Tracker
	insts   []*instance
	domains []*domainState
	log     *slog.Logger

	start          time.Time
	loadEnd        atomic.Int64 // unix nanos when the load phase ended (0 while running)
	writesInFlight atomic.Int64 // POSTs and acknowledgements
	lastWriteDone  atomic.Int64
	postsInFlight  atomic.Int64 // POSTs only: they add to other instances' queues
	lastPostDone   atomic.Int64
	lastDelivery   atomic.Int64
	consumers      []*atomic.Int64 // last time an empty claim started, per consumer
	consumerInst   []int           // instance index per consumer
	missed         atomic.Int64    // open-loop ticks dropped because all workers were busy
	rr             atomic.Uint64
	loadAvgStart   float64
	depth          []instDepth // per instance: messages sent to it and claimed by it
	backlogPosted  int64
	postBySecond   []*Histogram // POST latencies per timeline point (Report.AddRemovalRuns)
	access         accessLog    // what the tool claimed and read (checkAudit)
}

// instDepth estimates an instance's queue depth as accepted messages addressed
// to it minus messages it claimed (an over-estimate when newer versions
// replace queued entries).
type instDepth struct {
	queued, claimed atomic.Int64
	// Acknowledgements of the instance in flight and when the last one
	// ended: an acknowledgement New puts the entry back in its own queue.
	acking, lastAck atomic.Int64
}

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// Run drives the target with the scenario's mix, drains the queues, reads the
// acknowledgements back and returns the report. It fails only on setup errors;
// request errors are counted in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	sc := o.Scenario
	if sc == nil || len(o.Instances) == 0 {
		return nil, errors.New("loadtest: scenario and instances are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	conns := sc.Concurrency + len(o.Instances)*sc.ConsumersPerInstance + 16
	cl, err := newClient(o.Target, conns, sc.RequestTimeout)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	r := &runner{sc: sc, opts: o, cl: cl, st: newStats(), log: o.Logger}
	if err := r.setup(); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

func (r *runner) setup() error {
	byDomain := map[string]*domainState{}
	var names []string
	for i, spec := range r.opts.Instances {
		in := &instance{idx: i, spec: spec, auth: basicAuth(spec.Username, spec.Password), format: instanceFormat(spec, i, r.sc.Format)}
		r.insts = append(r.insts, in)
		names = append(names, spec.Username)
		d := byDomain[spec.Domain]
		if d == nil {
			host := domainHost(spec.Domain)
			d = &domainState{name: spec.Domain, subs: map[string][]int{}, modules: map[int]bool{}, baseURL: domainBaseURL(spec.Domain)}
			d.practURL = d.baseURL + "Practitioner/" + host
			d.orgURL = d.baseURL + "Organization/" + host
			for n := range r.sc.PatientsPerDomain {
				d.patients = append(d.patients, &patientState{n: n})
			}
			byDomain[spec.Domain] = d
			r.domains = append(r.domains, d)
		}
		if spec.Role == RolePractitionerPortal {
			d.senders = append(d.senders, in)
		}
		if spec.Role == RoleGame || spec.Role == RoleQuestionnaire {
			d.modules[i] = true
		}
		for _, ev := range spec.Subscriptions {
			d.subs[ev] = append(d.subs[ev], i)
		}
	}
	var withSender []*domainState
	for _, d := range r.domains {
		if len(d.senders) > 0 {
			withSender = append(withSender, d)
		}
	}
	if len(withSender) == 0 {
		return errors.New("loadtest: no domain has a practitioner-portal instance to send messages")
	}
	r.domains = withSender
	r.depth = make([]instDepth, len(r.insts))
	r.tr = NewTracker(names)
	r.tr.AllowStrays = !r.opts.FreshServer
	if p := r.opts.Prefill; p != nil && p.PerDomain > 0 {
		for _, d := range p.Domains {
			if d.Sender < 0 || d.Sender >= len(r.insts) {
				return fmt.Errorf("loadtest: prefill of %s: sender #%d is not an instance of this run", d.Domain, d.Sender)
			}
			for _, sub := range d.Subscribers {
				if sub < 0 || sub >= len(r.insts) {
					return fmt.Errorf("loadtest: prefill of %s: subscriber #%d is not an instance of this run", d.Domain, sub)
				}
				r.depth[sub].queued.Add(int64(p.PerDomain))
			}
		}
		r.tr.ExpectPrefill(p)
	}
	return nil
}

// instanceFormat is the wire format instance i uses: its own, else the
// scenario's; "mixed" alternates JSON and XML by index.
func instanceFormat(spec InstanceSpec, i int, scenarioFormat string) string {
	format := spec.Format
	if format == "" || format == "mixed" {
		format = scenarioFormat
	}
	if format == "mixed" {
		format = []string{"json", "xml"}[i%2]
	}
	return format
}

// domainHost is the domain name as a host-name label.
func domainHost(domain string) string {
	return strings.ToLower(strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			return c
		}
		return '-'
	}, domain))
}

// domainBaseURL is the resource base of the practitioner portal of domain.
func domainBaseURL(domain string) string {
	return "https://portal." + domainHost(domain) + ".loadtest.example/fhir/Koppeltaal/"
}

// subscribersFor lists the instances of d that must receive event, without the sender.
func (d *domainState) subscribersFor(event string, sender int) []int {
	var out []int
	for _, i := range d.subs[event] {
		if i != sender {
			out = append(out, i)
		}
	}
	return out
}

func (r *runner) loadRunning() bool { return r.loadEnd.Load() == 0 }

// warmup makes one authenticated read per instance before the clock starts,
// so that servers which cache password checks are measured warm.
func (r *runner) warmup(ctx context.Context) {
	for _, in := range r.insts {
		_, _ = r.cl.do(ctx, in, "GET", r.cl.base().String()+fhirBase+"/MessageHeader/_search?_summary=true&_count=1", nil)
	}
}

// serverPIDs are the server processes whose CPU time the report counts.
func (r *runner) serverPIDs() []int {
	if len(r.opts.ServerPIDs) > 0 {
		return r.opts.ServerPIDs
	}
	if r.opts.ServerPID > 0 {
		return []int{r.opts.ServerPID}
	}
	return nil
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	r.warmup(ctx)
	if r.sc.Backlog > 0 {
		r.prefill(ctx)
	}
	r.loadAvgStart = loadAvg()
	r.start = time.Now()
	cpuFrom := markCPU(r.serverPIDs())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumerCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()

	// Consumers: every subscribed instance claims and acknowledges.
	var cwg sync.WaitGroup
	for _, in := range r.insts {
		if len(in.spec.Subscriptions) == 0 {
			continue
		}
		d := r.domainOf(in)
		if d == nil {
			continue
		}
		for range r.sc.ConsumersPerInstance {
			mark := &atomic.Int64{}
			r.consumers = append(r.consumers, mark)
			r.consumerInst = append(r.consumerInst, in.idx)
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				r.consume(consumerCtx, in, d, mark)
			}()
		}
	}

	// Timeline and progress.
	timeline := make([]TimePoint, 0, int(r.sc.Duration/time.Second)+64)
	var tlMu sync.Mutex
	tickDone := make(chan struct{})
	var server serverSampler
	server.pid = r.opts.ServerPID
	go func() {
		defer close(tickDone)
		r.tick(consumerCtx, &timeline, &tlMu, &server)
	}()

	// Senders for the load phase.
	loadCtx, endLoad := context.WithTimeout(ctx, r.sc.Duration)
	if r.opts.StopLoad != nil {
		go func() {
			select {
			case <-r.opts.StopLoad:
				endLoad()
			case <-loadCtx.Done():
			}
		}()
	}
	r.send(loadCtx)
	endLoad()
	r.loadEnd.Store(time.Now().UnixNano())
	loadSeconds := time.Since(r.start).Seconds()

	// Drain: consumers go on until every queue is empty or the drain timeout.
	drainStart := time.Now()
	drained, byPrefill := r.waitDrained(ctx, drainStart.Add(r.sc.DrainTimeout))
	drainSeconds := time.Since(drainStart).Seconds()
	cpuTo := markCPU(r.serverPIDs())
	stopConsumers()
	cwg.Wait()
	<-tickDone

	// Read back what the server says about every acknowledgement.
	// The peak is taken before the read-back: its 1000-entry search pages are
	// not part of the load and would inflate the server's memory.
	server.sample()
	peak := server.stats()
	rb, rbErr := r.readback(ctx)
	if rbErr != nil {
		r.st.addError("verify: readback", rbErr.Error())
	}
	cons := r.tr.Check(rb)
	var auditCheck *AuditCheck
	if r.opts.AuditDSN != "" && rbErr == nil {
		auditCheck = r.checkAudit(ctx, r.opts.AuditDSN)
	}
	if !drained {
		r.st.addError("drain: timeout", fmt.Sprintf("queues not empty after %s (outstanding deliveries ≤ %d)", r.sc.DrainTimeout, r.tr.Outstanding()))
	}
	server.sample()

	tlMu.Lock()
	defer tlMu.Unlock()
	rep := r.report(loadSeconds, drainSeconds, drained, cons, timeline, &server)
	rep.DrainEndedByPrefill = byPrefill
	rep.CPU = cpuUse(cpuFrom, cpuTo, loadSeconds+drainSeconds, rep.Posted)
	if auditCheck != nil {
		rep.Audit = auditCheck
		rep.Pass = rep.Pass && auditCheck.Pass
	}
	if rep.Server != nil && peak != nil {
		rep.Server.MaxRSSMiB = peak.MaxRSSMiB
	}
	return rep, nil
}

func (r *runner) domainOf(in *instance) *domainState {
	for _, d := range r.domains {
		if d.name == in.spec.Domain {
			return d
		}
	}
	return nil
}

// send runs the posting workers until ctx ends: closed loop (back to back) or
// open loop (a fixed schedule; ticks that find every worker busy are dropped
// and counted, so an overloaded server shows as a missed rate).
func (r *runner) send(ctx context.Context) {
	var wg sync.WaitGroup
	if r.sc.Rate <= 0 {
		for range r.sc.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					r.sendOne(ctx)
				}
			}()
		}
		wg.Wait()
		return
	}
	jobs := make(chan struct{}, r.sc.Concurrency)
	for range r.sc.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if ctx.Err() == nil { // ticks still buffered when the load phase ends are dropped
					r.sendOne(ctx)
				}
			}
		}()
	}
	start := time.Now()
	var issued int64
	t := time.NewTicker(2 * time.Millisecond)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds()*r.sc.Rate) - issued
			for ; due > 0; due-- {
				issued++
				select {
				case jobs <- struct{}{}:
				default:
					r.missed.Add(1)
				}
			}
		}
	}
	t.Stop()
	close(jobs)
	wg.Wait()
}

// sendOne posts one practitioner-portal message chosen by the mix.
func (r *runner) sendOne(ctx context.Context) {
	d := r.domains[int(r.rr.Add(1))%len(r.domains)]
	in := d.senders[rand.IntN(len(d.senders))]
	p := d.patients[rand.IntN(len(d.patients))]
	// Prefer an idle dossier; a busy one is being edited by another worker.
	for try := 0; try < 3 && !p.mu.TryLock(); try++ {
		p = d.patients[rand.IntN(len(d.patients))]
		if try == 2 {
			p.mu.Lock()
		}
	}
	defer p.mu.Unlock()
	mix := r.sc.Mix
	if rand.Float64()*(mix.Patient+mix.CarePlan) < mix.Patient {
		r.postPatient(ctx, d, in, p)
		return
	}
	r.postCarePlan(ctx, d, in, p)
}

func (r *runner) newMessage(d *domainState, in *instance, event string) *message {
	id := uuid.NewString()
	return &message{domain: d.name, event: event, identifier: id, feedID: "urn:uuid:" + uuid.NewString(),
		mhURL: d.baseURL + "MessageHeader/" + id, source: in.spec.Application, endpoint: d.baseURL}
}

func (r *runner) ensureIDs(d *domainState, p *patientState) {
	if p.url == "" {
		p.url = fmt.Sprintf("%sPatient/%d-%s", d.baseURL, p.n, shortID())
	}
	if p.cpURL == "" {
		p.cpURL = d.baseURL + "CarePlan/" + shortID()
		p.cpVer, p.cpPrev = "", ""
		p.cts, p.ctVers = nil, nil
		for i := range r.sc.CareTeams {
			p.cts = append(p.cts, fmt.Sprintf("%sCareTeam/%s-%d", d.baseURL, shortID(), i+1))
			p.ctVers = append(p.ctVers, "")
		}
		p.acts = nil
		for range r.sc.Activities {
			p.acts = append(p.acts, uuid.NewString())
		}
	}
}

func shortID() string { return strings.ReplaceAll(uuid.NewString(), "-", "")[:16] }

// reset forgets what the portal knew about a patient after a reply was lost
// or a version conflict it did not expect: a real portal would re-read the
// dossier; the load tool starts a fresh one.
func (p *patientState) reset() {
	p.url, p.ver, p.cpURL, p.cpVer, p.cpPrev = "", "", "", "", ""
	p.gen++
}

func (r *runner) postPatient(ctx context.Context, d *domainState, in *instance, p *patientState) {
	r.ensureIDs(d, p)
	p.rev++
	m := r.newMessage(d, in, EventPatient)
	m.patient = p.url
	m.focal = entry{url: p.url, version: p.ver, res: patientResource(p.n, p.rev)}
	m.others = []entry{{url: d.orgURL, res: organizationResource(d.name)}}
	vers, ok := r.post(ctx, d, in, m, OpPostPatient, false, p)
	if !ok {
		return
	}
	p.ver = vers[p.url]
}

func (r *runner) postCarePlan(ctx context.Context, d *domainState, in *instance, p *patientState) {
	r.ensureIDs(d, p)
	stale := p.cpPrev != "" && rand.Float64() < *r.sc.StaleVersionShare
	for attempt := 0; attempt < 3; attempt++ {
		p.rev++
		op := OpPostCarePlanUpdate
		if p.cpVer == "" {
			op = OpPostCarePlanNew
		}
		focalVer := p.cpVer
		if stale {
			op, focalVer = OpPostStale, p.cpPrev
		}
		m := r.carePlanMessage(d, in, p, focalVer)
		vers, ok := r.post(ctx, d, in, m, op, stale, p)
		if stale {
			stale = false
			if !ok && p.cpURL != "" {
				continue // the intended 409: retry with the version the server issued
			}
		}
		if !ok {
			return
		}
		if v := vers[p.cpURL]; v != "" {
			p.cpPrev, p.cpVer = p.cpVer, v
		} else {
			p.reset()
			return
		}
		if v := vers[p.url]; v != "" {
			p.ver = v
		}
		for i, ct := range p.cts {
			if v := vers[ct]; v != "" {
				p.ctVers[i] = v
			}
		}
		d.carePlans.Store(p.cpURL, carePlanInfo{patient: p.url, acts: p.acts})
		return
	}
}

func (r *runner) carePlanMessage(d *domainState, in *instance, p *patientState, focalVer string) *message {
	m := r.newMessage(d, in, EventCarePlan)
	m.patient = p.url
	notes := ""
	acts := p.acts
	var body *el
	for {
		body = carePlanResource(p.url, d.practURL, p.cts, acts, p.rev, notes)
		if r.sc.MessageSize == 0 || len(acts) >= 500 {
			break
		}
		m.focal = entry{url: p.cpURL, version: focalVer, res: body}
		if int64(len(m.render(in.format, time.Now()))) >= int64(r.sc.MessageSize) {
			break
		}
		// Grow the plan with realistic content until the size is reached.
		notes = "Wekelijks oefenen en het dagboek bijhouden; bespreken in het volgende consult."
		acts = append(acts, uuid.NewString())
		p.acts = acts
	}
	m.focal = entry{url: p.cpURL, version: focalVer, res: body}
	m.others = append(m.others,
		entry{url: p.url, version: p.ver, res: patientResource(p.n, p.rev)},
		entry{url: d.practURL, res: practitionerResource(d.name)},
		entry{url: d.orgURL, res: organizationResource(d.name)},
	)
	for i, ct := range p.cts {
		m.others = append(m.others, entry{url: ct, version: p.ctVers[i], res: careTeamResource(fmt.Sprintf("Team %d", i+1), p.url, d.orgURL, p.rev)})
	}
	return m
}

// post sends m and returns the versions the server issued by resource URL.
// expectConflict marks a deliberately stale update: a 409 is then the right answer.
// p, when not nil, is the patient whose versions are reset after an
// unexpected conflict or a lost reply (the caller holds p.mu).
func (r *runner) post(ctx context.Context, d *domainState, in *instance, m *message, op string, expectConflict bool, p *patientState) (map[string]string, bool) {
	body := m.render(in.format, time.Now())
	r.tr.Expect(m.identifier, MessageExpectation{Event: m.event, Focal: m.focal.url, VersionIn: m.focal.version, Patient: m.patient,
		Sender: in.idx, Subscribers: d.subscribersFor(m.event, in.idx)})
	r.writesInFlight.Add(1)
	r.postsInFlight.Add(1)
	t0 := time.Now()
	// A POST in flight when the load phase ends is completed: cancelling it
	// would leave its outcome unknown.
	reply, err := r.cl.do(context.WithoutCancel(ctx), in, "POST", r.cl.base().String()+fhirBase+"/Mailbox", body)
	dt := time.Since(t0)
	r.lastWriteDone.Store(time.Now().UnixNano())
	r.lastPostDone.Store(time.Now().UnixNano())
	r.postsInFlight.Add(-1)
	r.writesInFlight.Add(-1)
	if err != nil {
		if isHTTP(err) && httpStatus(err) < 500 {
			r.tr.Rejected(m.identifier)
		} else {
			// No reply, or a 5xx (a 503 during a failover may follow a COMMIT whose reply was lost):
			// the message may or may not be stored.
			r.tr.Unknown(m.identifier)
		}
		if expectConflict && httpStatus(err) == 409 {
			r.st.ok(op, dt)
			r.st.conflicts.Add(1)
			return nil, false
		}
		r.st.fail(op, errorKind(err), dt, err.Error())
		r.st.ops[OpPostAll].hist.Record(dt)
		r.st.ops[OpPostAll].errs.Add(1)
		if st := httpStatus(err); p != nil && (st == 409 || st == 0) {
			p.reset()
		}
		return nil, false
	}
	b, err := parseBundle(reply)
	if err == nil && (len(b.headers) != 1 || b.headers[0].respCode != "ok" || b.headers[0].respID != m.identifier) {
		err = fmt.Errorf("decode Mailbox reply: want one MessageHeader with response code ok for %s, got %d headers (code %q, id %q)",
			m.identifier, len(b.headers), firstOr(b.headers, func(h headerInfo) string { return h.respCode }), firstOr(b.headers, func(h headerInfo) string { return h.respID }))
	}
	if err != nil {
		r.tr.Accepted(m.identifier, "") // 200: the server has it, whatever the reply says
		r.st.fail(op, "bad reply", dt, err.Error())
		if p != nil {
			p.reset()
		}
		return nil, false
	}
	vers := make(map[string]string, len(b.headers[0].data))
	for _, ref := range b.headers[0].data {
		u, v := splitVersion(ref)
		vers[u] = v
	}
	r.tr.Accepted(m.identifier, vers[m.focal.url])
	for _, s := range d.subscribersFor(m.event, in.idx) {
		r.depth[s].queued.Add(1)
	}
	if expectConflict {
		r.st.addError(op+": stale version accepted", fmt.Sprintf("%s with version %s got 200", m.focal.url, m.focal.version))
	}
	r.st.ok(op, dt)
	if op != OpPostBacklog { // the backlog is set-up, not load
		r.st.ok(OpPostAll, dt)
		r.st.postIv.Record(dt)
		r.st.posted.Add(1)
	}
	return vers, true
}

func firstOr(h []headerInfo, f func(headerInfo) string) string {
	if len(h) == 0 {
		return ""
	}
	return f(h[0])
}

// consume is one claim loop of a subscribed instance.
func (r *runner) consume(ctx context.Context, in *instance, d *domainState, emptyMark *atomic.Int64) {
	claimURL := r.cl.base().String() + fhirBase + "/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim"
	for ctx.Err() == nil {
		t0 := time.Now()
		// Never abandon a claim in flight: the server would keep the message Claimed.
		reply, err := r.cl.do(context.WithoutCancel(ctx), in, "GET", claimURL, nil)
		dt := time.Since(t0)
		var b bundleInfo
		if err == nil {
			b, err = parseBundle(reply)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.st.fail(OpClaim, errorKind(err), dt, err.Error())
			sleep(ctx, r.sc.PollInterval)
			continue
		}
		if len(b.headers) == 0 {
			if b.entries > 0 {
				r.st.fail(OpClaim, "bad reply", dt, "claim reply has entries but no MessageHeader")
			} else {
				r.st.ok(OpClaimEmpty, dt)
				emptyMark.Store(t0.UnixNano())
			}
			sleep(ctx, r.sc.PollInterval)
			continue
		}
		r.st.ok(OpClaim, dt)
		depth := r.depth[in.idx].queued.Load() - r.depth[in.idx].claimed.Add(1) + 1
		r.st.claimAtDepth(depth, dt)
		r.st.claimIv.Record(dt)
		r.st.delivered.Add(1)
		r.lastDelivery.Store(time.Now().UnixNano())
		h := b.headers[0]
		n := r.tr.Delivered(h.identifier, in.idx)
		if r.opts.AuditDSN != "" {
			r.access.claimed(in.idx, h)
		}
		if h.status != "" && h.status != StatusClaimed {
			r.st.addError("claim: status not Claimed", fmt.Sprintf("message %s came back with ProcessingStatus %s", h.identifier, h.status))
		}
		if h.event == EventCarePlan && d.modules[in.idx] && rand.Float64() < *r.sc.StatusShare && len(h.data) > 0 {
			r.postStatus(ctx, d, in, h)
		}
		r.ack(ctx, in, h, n)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// postStatus reports progress on one activity of a CarePlan a module received.
func (r *runner) postStatus(ctx context.Context, d *domainState, in *instance, h headerInfo) {
	cpURL, _ := splitVersion(h.data[0])
	v, ok := d.carePlans.Load(cpURL)
	if !ok {
		return
	}
	info := v.(carePlanInfo)
	act := info.acts[rand.IntN(len(info.acts))]
	status := []string{"InProgress", "Completed"}[rand.IntN(2)]
	pct := 50
	if status == "Completed" {
		pct = 100
	}
	m := r.newMessage(d, in, EventActivityStatus)
	m.baseFor(in)
	m.patient = info.patient
	m.focal = entry{url: m.endpoint + "Other/CarePlanActivityStatus:" + shortID(), res: activityStatusResource(act, status, pct)}
	r.post(ctx, d, in, m, OpPostStatus, false, nil)
}

// baseFor gives module messages the module's own resource base.
func (m *message) baseFor(in *instance) {
	app := url.PathEscape(in.spec.Application)
	if app == "" {
		app = "module"
	}
	m.endpoint = "https://" + strings.ToLower(app) + ".loadtest.example/fhir/Koppeltaal/"
	m.mhURL = m.endpoint + "MessageHeader/" + m.identifier
}

// ack sets the ProcessingStatus of a claimed message: Success, or a share of
// Failed (with exception text) and New (first delivery only, so it comes back).
func (r *runner) ack(ctx context.Context, in *instance, h headerInfo, delivery int) {
	status, exc := StatusSuccess, ""
	x := rand.Float64()
	switch {
	case delivery == 1 && x < *r.sc.AckNewShare:
		status = StatusNew
	case x < *r.sc.AckNewShare+*r.sc.AckFailedShare:
		status, exc = StatusFailed, "loadtest: simulated processing failure (activity definition unknown to this module)"
	}
	body, err := ackBody(h.raw, status, exc, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		r.st.fail(OpAck, "bad reply", 0, err.Error())
		return
	}
	link := h.selfLink
	if link == "" {
		link = h.entryID
	}
	r.writesInFlight.Add(1)
	r.depth[in.idx].acking.Add(1)
	t0 := time.Now()
	// An acknowledgement is sent even while shutting down: a half-done claim
	// would otherwise be reported as a miss.
	_, err = r.cl.do(context.WithoutCancel(ctx), in, "PUT", r.cl.urlFor(link), body)
	dt := time.Since(t0)
	r.lastWriteDone.Store(time.Now().UnixNano())
	r.depth[in.idx].lastAck.Store(time.Now().UnixNano())
	r.depth[in.idx].acking.Add(-1)
	r.writesInFlight.Add(-1)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status == 409 && strings.Contains(he.body, StatusReplaced) {
			// A newer version of the focal resource replaced the entry while we held the claim.
			r.tr.AckSuperseded(h.identifier, in.idx)
			r.st.ok(OpAckReplaced, dt)
			return
		}
		if !isHTTP(err) || httpStatus(err) >= 500 {
			// It may not have stuck: the server then delivers the message again after the claim timeout.
			r.tr.AckUnknown(h.identifier, in.idx)
		}
		r.st.fail(OpAck, errorKind(err), dt, err.Error())
		return
	}
	r.tr.Acked(h.identifier, in.idx, status)
	r.st.ok(OpAck, dt)
	r.st.acked.Add(1)
}

// waitDrained waits until all queues are empty: no write in flight and every
// consumer has seen an empty claim that started after the last write (plus a
// grace for servers that fan out asynchronously), or until deadline.
//
// With a prefill, an instance whose prefilled messages are not all claimed
// yet cannot have an empty queue, and whatever was posted to it during the
// load waits behind them (claims take the oldest entry). Such an instance
// does not hold up the drain once it is prefill-bound: it still has more
// prefilled deliveries outstanding than twice its claim rate so far could
// make before the deadline — at once when a million are waiting, at the
// deadline whatever is left. Its consumers go on claiming until the drain
// ends, and their acknowledgements (which only touch its own queue) do not
// count as writes the others must wait for. byPrefill reports that the
// drain ended with such an instance.
func (r *runner) waitDrained(ctx context.Context, deadline time.Time) (drained, byPrefill bool) {
	grace := 10 * r.sc.PollInterval
	if grace < 500*time.Millisecond {
		grace = 500 * time.Millisecond
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	bound := make([]bool, len(r.insts))
	for {
		anyBound := false
		for i := range r.insts {
			bound[i] = r.prefillBound(i, deadline)
			anyBound = anyBound || bound[i]
		}
		inFlight := r.postsInFlight.Load() > 0
		last := r.lastPostDone.Load()
		for i := range r.insts {
			if !bound[i] {
				inFlight = inFlight || r.depth[i].acking.Load() > 0
				last = max(last, r.depth[i].lastAck.Load())
			}
		}
		if !inFlight {
			quiet := true
			for i, c := range r.consumers {
				if !bound[r.consumerInst[i]] && c.Load() <= last+int64(grace) {
					quiet = false
					break
				}
			}
			if quiet && (r.tr.Outstanding() == 0 || time.Since(time.Unix(0, last)) > 3*time.Second) {
				return true, anyBound
			}
		}
		if time.Now().After(deadline) {
			return false, false
		}
		select {
		case <-ctx.Done():
			return false, false
		case <-t.C:
		}
	}
}

// prefillBound tells whether instance inst still has so many prefilled
// deliveries outstanding that it cannot make them before deadline at twice
// the claim rate it has had since the start.
func (r *runner) prefillBound(inst int, deadline time.Time) bool {
	out := r.tr.PrefillOutstanding(inst)
	if out == 0 {
		return false
	}
	left := time.Until(deadline).Seconds()
	if left <= 0 {
		return true
	}
	rate := float64(r.depth[inst].claimed.Load()) / time.Since(r.start).Seconds()
	return float64(out) > 2*rate*left
}

// readback asks the server, per subscribed instance, which messages it holds
// in each ProcessingStatus.
func (r *runner) readback(ctx context.Context) (Readback, error) {
	rb := Readback{}
	for _, in := range r.insts {
		if len(in.spec.Subscriptions) == 0 {
			continue
		}
		m := map[string]string{}
		rb[in.idx] = m
		for _, status := range []string{StatusSuccess, StatusFailed, StatusNew, StatusClaimed, StatusReplaced, "MaximumRetriesExceeded"} {
			// include-expired: a message every subscriber acknowledged has lost its body
			// (SPEC.md §10.2) and is left out of searches without it.
			next := r.cl.base().String() + fhirBase + "/MessageHeader/_search?_summary=true&include-expired=yes&_count=" + strconv.Itoa(readbackPage) + "&ProcessingStatus=" + status
			if skip := r.readbackSkip(in.idx, status); skip > 0 {
				// The oldest New entries are the undelivered prefill: start behind
				// most of it (see Tracker.NotReadBack). The oldest Success entries
				// are the prefilled due messages, which no check needs.
				next += "&page=" + strconv.Itoa(skip+1)
				if status == StatusNew {
					r.tr.NotReadBack(in.idx, int64(skip)*readbackPage)
				}
			}
			for page := 0; next != "" && page < 100000; page++ {
				t0 := time.Now()
				reply, err := r.cl.do(ctx, in, "GET", next, nil)
				dt := time.Since(t0)
				var b bundleInfo
				if err == nil {
					b, err = parseBundle(reply)
				}
				if err != nil {
					r.st.fail(OpReadback, errorKind(err), dt, err.Error())
					return nil, fmt.Errorf("read back %s messages of %s: %w", status, in.name(), err)
				}
				r.st.ok(OpReadback, dt)
				for _, h := range b.headers {
					if r.opts.AuditDSN != "" {
						r.access.read(in.idx, h)
					}
					s := h.status
					if s == "" {
						s = status
					}
					m[h.identifier] = s
				}
				if b.next == "" || len(b.headers) == 0 {
					break
				}
				next = r.cl.urlFor(b.next)
			}
		}
	}
	return rb, nil
}

// readbackPage is the page size of the read-back (Koppelpoort's largest).
const readbackPage = 1000

// readbackSkip is the number of pages of instance inst's entries in status
// the read-back skips: of its New entries those that hold nothing but its
// undelivered prefill, of its Success entries those that hold nothing but
// the prefilled due messages (the oldest rows), less one page of margin.
// Paging through a million entries by offset would take far longer than the run.
func (r *runner) readbackSkip(inst int, status string) int {
	p := r.opts.Prefill
	if p == nil {
		return 0
	}
	var oldest int64
	switch status {
	case StatusNew:
		oldest = r.tr.PrefillOutstanding(inst)
	case StatusSuccess:
		for _, d := range p.Domains {
			if slices.Contains(d.Subscribers, inst) {
				oldest += int64(p.DuePerDomain)
			}
		}
	}
	return int(max(0, oldest-readbackPage) / readbackPage)
}

// prefill posts Backlog new-patient messages per domain before any consumer
// runs, so that the load starts on deep queues (claim latency by queue depth).
func (r *runner) prefill(ctx context.Context) {
	type job struct {
		d *domainState
		n int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range r.sc.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				in := j.d.senders[j.n%len(j.d.senders)]
				p := &patientState{n: r.sc.PatientsPerDomain + j.n} // patients outside the load's population
				r.ensureIDs(j.d, p)
				p.rev++
				m := r.newMessage(j.d, in, EventPatient)
				m.patient = p.url
				m.focal = entry{url: p.url, res: patientResource(p.n, p.rev)}
				if _, ok := r.post(ctx, j.d, in, m, OpPostBacklog, false, nil); ok {
					done.Add(1)
				}
			}
		}()
	}
	total := r.sc.Backlog * len(r.domains)
	stop := make(chan struct{})
	if r.opts.Progress != nil {
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					fmt.Fprintf(r.opts.Progress, "backlog: %d of %d messages posted\n", done.Load(), total)
				}
			}
		}()
	}
loop:
	for n := range r.sc.Backlog {
		for _, d := range r.domains {
			select {
			case jobs <- job{d, n}:
			case <-ctx.Done():
				break loop
			}
		}
	}
	close(jobs)
	wg.Wait()
	close(stop)
	r.backlogPosted = done.Load()
}
