package regress

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Target       string            `json:"target"`
	Domain       string            `json:"domain"`
	RunID        string            `json:"run_id"`
	Started      time.Time         `json:"started"`
	Duration     time.Duration     `json:"duration_ns"`
	Capabilities map[string]string `json:"capabilities"`
	Results      []Result          `json:"results"`
}

// Counts are the results by status, in all and per format ("" = format-independent).
type Counts struct {
	Pass, Fail, Skip, Known int
}

// Total is the number of results counted.
func (c Counts) Total() int { return c.Pass + c.Fail + c.Skip + c.Known }

func (c *Counts) add(s Status) {
	switch s {
	case Pass:
		c.Pass++
	case Fail:
		c.Fail++
	case Skip:
		c.Skip++
	case Known:
		c.Known++
	}
}

// Counts returns the totals and the totals per format.
func (r *Report) Counts() (all Counts, byFormat map[string]Counts) {
	byFormat = map[string]Counts{}
	for _, res := range r.Results {
		all.add(res.Status)
		c := byFormat[res.Format]
		c.add(res.Status)
		byFormat[res.Format] = c
	}
	return all, byFormat
}

// Passed reports whether nothing failed.
func (r *Report) Passed() bool {
	all, _ := r.Counts()
	return all.Fail == 0
}

// Failed returns the failed results, known failures included.
func (r *Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == Fail || res.Status == Known {
			out = append(out, res)
		}
	}
	return out
}

// Fixed returns the results listed as known failures that passed.
func (r *Report) Fixed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.KnownAs != "" && res.Status == Pass {
			out = append(out, res)
		}
	}
	return out
}

// WriteSummary writes every failure (case, reference, check, expected, got, the exchange), the skips by
// reason and the counts.
func (r *Report) WriteSummary(w io.Writer) {
	for _, res := range r.Failed() {
		label := "FAIL"
		if res.Status == Known {
			label = "KNOWN"
		}
		fmt.Fprintf(w, "\n%s %s — %s\n     ref: %s\n", label, res.Name(), res.Title, res.Ref)
		if res.KnownAs != "" {
			fmt.Fprintf(w, "     known failure: %s\n", res.KnownAs)
		}
		for i, f := range res.Failures {
			fmt.Fprintf(w, "     check:    %s\n", f.Check)
			if f.Expected != "" {
				fmt.Fprintf(w, "     expected: %s\n", f.Expected)
			}
			if f.Got != "" {
				fmt.Fprintf(w, "     got:      %s\n", f.Got)
			}
			// Checks of one exchange share its request and reply: print them once, after the last.
			if next := i + 1; f.Request != "" && (next == len(res.Failures) || !sameExchange(f, res.Failures[next])) {
				fmt.Fprintf(w, "     request:  %s\n     reply:    HTTP %d %s\n", f.Request, f.Status, indent(shorten(f.Reply, 400)))
			}
		}
	}
	skips := map[string][]string{}
	for _, res := range r.Results {
		if res.Status == Skip {
			skips[res.Reason] = append(skips[res.Reason], res.Name())
		}
	}
	reasons := make([]string, 0, len(skips))
	for k := range skips {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, why := range reasons {
		fmt.Fprintf(w, "\nSKIP %d: %s\n     %s\n", len(skips[why]), why, strings.Join(skips[why], ", "))
	}
	for _, res := range r.Fixed() {
		fmt.Fprintf(w, "\nFIXED %s passes although it is listed as a known failure (%s): take it off the list\n", res.Name(), res.KnownAs)
	}
	all, by := r.Counts()
	fmt.Fprintf(w, "\nregress %s (domain %s, run %s): %d cases in %s — %s\n",
		r.Target, r.Domain, r.RunID, all.Total(), r.Duration.Round(time.Millisecond), all)
	for _, f := range []string{"xml", "json", ""} {
		if c, ok := by[f]; ok {
			name := f
			if name == "" {
				name = "format-independent"
			}
			fmt.Fprintf(w, "  %-19s %s\n", name+":", c)
		}
	}
}

// String is "n passed, n failed, n skipped" (and the known failures when there are).
func (c Counts) String() string {
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", c.Pass, c.Fail, c.Skip)
	if c.Known > 0 {
		s += fmt.Sprintf(", %d known failures", c.Known)
	}
	return s
}

func sameExchange(a, b Failure) bool {
	return a.Request == b.Request && a.Status == b.Status && a.Reply == b.Reply
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + " …"
	}
	return s
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n               ") }

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// JUnit XML (the de-facto schema CI systems read: testsuites/testsuite/testcase with failure and skipped).
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
	dur      time.Duration
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one testsuite per format, a testcase per case.
func (r *Report) WriteJUnit(w io.Writer) error {
	byFormat := map[string]*junitSuite{}
	var order []string
	for _, res := range r.Results {
		name := "regress"
		if res.Format != "" {
			name += "." + res.Format
		}
		s := byFormat[name]
		if s == nil {
			s = &junitSuite{Name: name}
			byFormat[name] = s
			order = append(order, name)
		}
		area, _, _ := strings.Cut(res.ID, "/")
		jc := junitCase{Name: res.Name() + " — " + res.Title, ClassName: "regress." + area, Time: seconds(res.Duration)}
		switch res.Status {
		case Fail:
			jc.Failure = &junitMessage{Message: res.Failures[0].Check, Text: failureText(res)}
			s.Failures++
		case Known: // listed by the operator: reported, not a failure of the run
			jc.Skipped = &junitMessage{Message: "known failure: " + res.KnownAs, Text: failureText(res)}
			s.Skipped++
		case Skip:
			jc.Skipped = &junitMessage{Message: res.Reason}
			s.Skipped++
		}
		s.Tests++
		s.dur += res.Duration
		s.Cases = append(s.Cases, jc)
	}
	out := junitSuites{}
	for _, name := range order {
		s := byFormat[name]
		s.Time = seconds(s.dur)
		out.Suites = append(out.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func failureText(res Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ref: %s\n", res.Ref)
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "check: %s\nexpected: %s\ngot: %s\nrequest: %s\nreply: HTTP %d %s\n\n", f.Check, f.Expected, f.Got, f.Request, f.Status, f.Reply)
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
