package regress

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The suite itself runs against a real server in cmd/koppelpoort (TestRegressAgainstServe, both databases);
// these tests cover the framework: the case list, the configuration file and the reports.

func TestCasesAreWellFormed(t *testing.T) {
	id := regexp.MustCompile(`^[a-z]+/[a-z0-9-]+$`)
	seen := map[string]bool{}
	for _, c := range Cases() {
		if !id.MatchString(c.ID) || c.Title == "" || c.Ref == "" || c.Run == nil {
			t.Errorf("case %q: needs an id area/what, a title, a reference and a Run", c.ID)
		}
		if seen[c.ID] {
			t.Errorf("case id %s is used twice", c.ID)
		}
		seen[c.ID] = true
	}
	if n := len(List(nil)); n < 200 {
		t.Errorf("the suite has %d cases counting each format; the issue asks for well over a hundred", n)
	}
	if got := List(regexp.MustCompile(`^mailbox/stale-version-text\[json\]$`)); len(got) != 1 {
		t.Errorf("--run selects by id[format]: got %v", got)
	}
}

func TestLoadConfigIsStrictAndSubstitutesEnv(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	t.Setenv("REGRESS_TEST_PW", "s3cret")
	if err := os.WriteFile(good, []byte("domain: D\nportal: {username: p, password: \"${REGRESS_TEST_PW}\"}\nsubscribers: [{username: s, password: x}]\nclaim_timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Portal.Password != "s3cret" || c.ClaimTimeout != 2*time.Second || len(c.Subscribers) != 1 {
		t.Fatalf("decoded %+v", c)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("domain: D\nportal: {username: p}\nsubscriber: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":3:1: error:") || !strings.Contains(err.Error(), `did you mean "subscribers"`) {
		t.Fatalf("a misspelled key: %v", err)
	}
	c.Target = "http://127.0.0.1:1/FHIR/Koppeltaal"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "without a path") {
		t.Fatalf("a target with a path: %v", err)
	}
}

func TestRunNeedsAReachableKoppeltaalServer(t *testing.T) {
	_, err := Run(context.Background(), Options{Config: Config{Target: "http://127.0.0.1:1", Domain: "D",
		Portal: Account{Username: "p"}, Subscribers: []Account{{Username: "s"}}}})
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("unreachable target: %v", err)
	}
}

func TestParseKnown(t *testing.T) {
	k := ParseKnown("# comment\n\nsearch/identifier   # issue 10 defect 5\nmailbox/post-careplan[xml]\n")
	if k["search/identifier"] != "issue 10 defect 5" || len(k) != 2 {
		t.Fatalf("%v", k)
	}
	if _, ok := knownAs(k, Result{ID: "mailbox/post-careplan", Format: "xml"}); !ok {
		t.Error("id[format] entries match that format")
	}
	if _, ok := knownAs(k, Result{ID: "mailbox/post-careplan", Format: "json"}); ok {
		t.Error("id[format] entries match only that format")
	}
}

func sampleReport() *Report {
	return &Report{Target: "http://kt", Domain: "D", RunID: "r", Results: []Result{
		{ID: "a/pass", Title: "passes", Ref: "R", Format: "xml", Status: Pass, Duration: time.Millisecond},
		{ID: "a/fail", Title: "fails", Ref: "R", Format: "json", Status: Fail,
			Failures: []Failure{{Check: "the status", Expected: "200", Got: "500", Request: "GET /x", Status: 500, Reply: "oops"}}},
		{ID: "b/skip", Title: "skips", Ref: "R", Status: Skip, Reason: "no webhook"},
		{ID: "b/known", Title: "known", Ref: "R", Format: "json", Status: Known, KnownAs: "issue 10",
			Failures: []Failure{{Check: "the text"}}},
		{ID: "b/fixed", Title: "fixed", Ref: "R", Format: "xml", Status: Pass, KnownAs: "issue 10"},
	}}
}

func TestReportCountsAndSummary(t *testing.T) {
	r := sampleReport()
	all, by := r.Counts()
	if all != (Counts{Pass: 2, Fail: 1, Skip: 1, Known: 1}) || by["json"] != (Counts{Fail: 1, Known: 1}) || r.Passed() {
		t.Fatalf("counts %+v %+v passed=%v", all, by, r.Passed())
	}
	var b bytes.Buffer
	r.WriteSummary(&b)
	for _, want := range []string{"FAIL a/fail[json] — fails", "expected: 200", "request:  GET /x", "KNOWN b/known[json]",
		"SKIP 1: no webhook", "FIXED b/fixed[xml]", "2 passed, 1 failed, 1 skipped, 1 known failures"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReportJUnitAndJSON(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var ju junitSuites
	if err := xml.Unmarshal(b.Bytes(), &ju); err != nil {
		t.Fatalf("JUnit XML does not parse: %v\n%s", err, b.String())
	}
	tests, failures, skipped := 0, 0, 0
	for _, s := range ju.Suites {
		tests, failures, skipped = tests+s.Tests, failures+s.Failures, skipped+s.Skipped
	}
	if len(ju.Suites) != 3 || tests != 5 || failures != 1 || skipped != 2 {
		t.Fatalf("JUnit: %d suites, %d tests, %d failures, %d skipped\n%s", len(ju.Suites), tests, failures, skipped, b.String())
	}
	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Results) != 5 || back.Results[1].Failures[0].Got != "500" {
		t.Fatalf("JSON report: %v %+v", err, back)
	}
}
