package regress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Case is one check of the suite: data that says what it checks and where that is written, and the
// function that checks it.
type Case struct {
	// ID is stable and unique, "area/what", e.g. "mailbox/reply-source-software".
	ID string
	// Title says what a client needs, in one line; a failure report leads with it.
	Title string
	// Ref is where the behaviour is written down: CLIENTS.md (wins), SPEC.md section, or both.
	Ref string
	// Formats the case runs in; nil runs it once, format-independent (OAuth endpoints answer JSON).
	Formats []dstu1.Format
	// Needs are the optional capabilities of the target or the configuration it needs; without one
	// the case is skipped with the reason.
	Needs []Capability
	// Run drives the target through t.
	Run func(t *T)
}

// Both formats, XML first (the old server's SoapUI suite was XML; deployed connectors mostly JSON).
var both = []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON}

// Only JSON or only XML, for checks that exist in one form only.
var (
	jsonOnly = []dstu1.Format{dstu1.FormatJSON}
	xmlOnly  = []dstu1.Format{dstu1.FormatXML}
)

// Status is a case result.
type Status string

// Case results. Known is a failure the operator listed as known (Options.Known): reported, but the run
// still passes.
const (
	Pass  Status = "pass"
	Fail  Status = "fail"
	Skip  Status = "skip"
	Known Status = "known"
)

// Result is one case in one format.
type Result struct {
	ID       string    `json:"id"`
	Title    string    `json:"title"`
	Ref      string    `json:"ref"`
	Format   string    `json:"format,omitempty"`
	Status   Status    `json:"status"`
	Reason   string    `json:"reason,omitempty"` // why it was skipped
	Failures []Failure `json:"failures,omitempty"`
	// KnownAs is the reason the operator gave for listing the case as a known failure.
	KnownAs  string        `json:"known_as,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Name is the case id with its format, the unit --run selects and reports count: "mailbox/post[json]".
func (r Result) Name() string {
	if r.Format == "" {
		return r.ID
	}
	return r.ID + "[" + r.Format + "]"
}

// Failure is one unmet expectation: what was checked, what a client needs, what the target did, and the
// exchange that showed it.
type Failure struct {
	Check    string `json:"check"`
	Expected string `json:"expected,omitempty"`
	Got      string `json:"got,omitempty"`
	Request  string `json:"request,omitempty"`
	Status   int    `json:"status,omitempty"`
	Reply    string `json:"reply,omitempty"`
}

// Options select and run cases.
type Options struct {
	Config Config
	// Run selects cases whose Name matches (nil: all).
	Run *regexp.Regexp
	// Progress receives one line per case result; nil: none.
	Progress io.Writer
	// Known lists known failures (a case id, or id[format]) with the reason: when one fails it is
	// reported as Known and does not fail the run; when it passes the report says it is fixed.
	Known map[string]string
	// Cases overrides the suite's cases (tests).
	Cases []Case
}

// Run probes the target's capabilities, runs the selected cases one after another and returns the report.
// It returns an error only when the suite cannot start (bad configuration, target unreachable).
func Run(ctx context.Context, opts Options) (*Report, error) {
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("regress configuration: %w", err)
	}
	s := &suite{cfg: cfg, hc: newHTTPClient(cfg.RequestTimeout), run: runID()}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	defer s.close()
	cases := opts.Cases
	if cases == nil {
		cases = Cases()
	}
	rep := &Report{Target: cfg.Target, Domain: cfg.Domain, RunID: s.run, Started: time.Now().UTC(), Capabilities: s.capsReport()}
	units := expand(cases, opts.Run)
	for i, u := range units {
		if ctx.Err() != nil {
			break
		}
		r := s.runCase(ctx, u.c, u.f)
		if why, ok := knownAs(opts.Known, r); ok {
			r.KnownAs = why
			if r.Status == Fail {
				r.Status = Known
			}
		}
		rep.Results = append(rep.Results, r)
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "[%*d/%d] %s\n", len(fmt.Sprint(len(units))), i+1, len(units), progressLine(r))
		}
	}
	rep.Duration = time.Since(rep.Started)
	return rep, nil
}

// knownAs looks a result up in the known failures by name, then by id.
func knownAs(known map[string]string, r Result) (string, bool) {
	if why, ok := known[r.Name()]; ok {
		return why, true
	}
	why, ok := known[r.ID]
	return why, ok
}

// ParseKnown reads a known-failures list: one case id (or id[format]) per line, then optionally
// "# reason"; blank lines and lines starting with # are ignored.
func ParseKnown(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, why, _ := strings.Cut(line, "#")
		out[strings.TrimSpace(name)] = strings.TrimSpace(why)
	}
	return out
}

type unit struct {
	c Case
	f dstu1.Format
}

// expand lists every case in every format it runs in, filtered by sel.
func expand(cases []Case, sel *regexp.Regexp) []unit {
	var out []unit
	for _, c := range cases {
		formats := c.Formats
		if formats == nil {
			formats = []dstu1.Format{0}
		}
		for _, f := range formats {
			r := Result{ID: c.ID, Format: formatName(f)}
			if sel == nil || sel.MatchString(r.Name()) {
				out = append(out, unit{c, f})
			}
		}
	}
	return out
}

// List returns the Name of every selected case-and-format, with its title and reference.
func List(sel *regexp.Regexp) []Result {
	var out []Result
	for _, u := range expand(Cases(), sel) {
		out = append(out, Result{ID: u.c.ID, Title: u.c.Title, Ref: u.c.Ref, Format: formatName(u.f)})
	}
	return out
}

func formatName(f dstu1.Format) string {
	if f == 0 {
		return ""
	}
	return f.String()
}

func progressLine(r Result) string {
	line := fmt.Sprintf("%-4s %s (%s)", strings.ToUpper(string(r.Status)), r.Name(), r.Duration.Round(time.Millisecond))
	switch r.Status {
	case Skip:
		line += ": " + r.Reason
	case Fail:
		line += ": " + r.Title
	case Known:
		line += ": known failure (" + r.KnownAs + ")"
	}
	return line
}

// runID is a random suffix that makes this run's data unique on a long-lived server.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// suite is the state shared by the cases of one run.
type suite struct {
	cfg  Config
	hc   *http.Client
	run  string
	seq  int
	caps map[Capability]string // capability → "" when present, else why not
	hook *hookReceiver
}

// runCase runs one case in one format; a panic in a case is a failure, not the end of the run.
func (s *suite) runCase(ctx context.Context, c Case, f dstu1.Format) (res Result) {
	res = Result{ID: c.ID, Title: c.Title, Ref: c.Ref, Format: formatName(f), Status: Pass}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	for _, need := range c.Needs {
		if why := s.missing(need); why != "" {
			res.Status, res.Reason = Skip, why
			return res
		}
	}
	t := &T{ctx: ctx, s: s, Format: f, res: &res}
	defer t.finish()
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stopCase); !ok {
					t.record(Failure{Check: fmt.Sprintf("the case panicked: %v", p)})
				}
			}
		}()
		c.Run(t)
	}()
	return res
}

// stopCase ends a case (Fatalf, Skipf).
type stopCase struct{}

// Cases returns the whole suite, in the order it runs.
func Cases() []Case {
	return slices.Concat(
		metadataCases(),
		mailboxCases(),
		workedExampleCases(),
		queueCases(),
		searchCases(),
		activityCases(),
		ssoCases(),
		corsCases(),
		notifyCases(),
		storageCases(),
		hostileCases(),
		moduleCases(),
	)
}
