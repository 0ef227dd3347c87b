package regress

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// testdata holds the recorded client requests and the SPEC.md §7.4 worked example (sources in
// testdata/README.md).
//
//go:embed testdata
var testdata embed.FS

func (t *T) fixture(name string) []byte {
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

// translator makes a recorded message this run's own: the recorded senders' bases become unique ones, the
// recorded domain the configured one, every UUID a fresh one (consistently: a UUID repeated in the
// recording is repeated here), and every version the recorded server issued the version this target
// issued for that resource (a recorded version seen for the first time stands for the current one).
type translator struct {
	bases   map[string]string // recorded base → this run's
	domain  string            // the recorded domain name
	target  string            // the configured domain name
	run     string
	current map[string]string // our resource URL → our current version
	mapped  map[string]string // our resource URL + recorded version → our version
}

func (t *T) newTranslator(domain string, bases ...string) *translator {
	tr := &translator{bases: map[string]string{}, domain: domain, target: t.s.cfg.Domain, run: t.Unique("rec"),
		current: map[string]string{}, mapped: map[string]string{}}
	for _, b := range bases {
		tr.bases[b] = "https://rec.regress.example/" + t.Unique("kt")
	}
	return tr
}

var (
	uuidRe    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	historyRe = regexp.MustCompile(`(https?://[^"\s<>]+?)/_history/([0-9T:\-.]+)`)
)

// apply translates one recorded body.
func (tr *translator) apply(body []byte) []byte {
	s := string(body)
	for from, to := range tr.bases {
		s = strings.ReplaceAll(s, from, to)
	}
	if tr.domain != "" {
		s = strings.ReplaceAll(s, "Domain#"+tr.domain, "Domain#"+tr.target)
		s = strings.ReplaceAll(s, `label="`+tr.domain+`"`, `label="`+tr.target+`"`)
		s = strings.ReplaceAll(s, `"label": "`+tr.domain+`"`, `"label": "`+tr.target+`"`)
	}
	s = uuidRe.ReplaceAllStringFunc(s, func(u string) string {
		return uuid.NewSHA1(uuid.NameSpaceURL, []byte(tr.run+u)).String()
	})
	s = historyRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := historyRe.FindStringSubmatch(m)
		u, v := sub[1], sub[2]
		if !tr.isOurs(u) {
			return m // not a resource of a translated sender (e.g. another server's MessageHeader)
		}
		key := u + "\x00" + v
		ours, ok := tr.mapped[key]
		if !ok {
			ours = tr.current[u]
			tr.mapped[key] = ours
		}
		if ours == "" {
			return u
		}
		return u + "/_history/" + ours
	})
	return []byte(s)
}

func (tr *translator) isOurs(u string) bool {
	for _, to := range tr.bases {
		if strings.HasPrefix(u, to+"/") {
			return true
		}
	}
	return false
}

// issued records the versions a Mailbox reply issued.
func (tr *translator) issued(reply *dstu1.MessageHeader) {
	for _, d := range reply.Data() {
		if u, v := dstu1.SplitHistory(d); v != "" {
			tr.current[u] = v
		}
	}
}

// base is this run's base standing for a recorded one.
func (tr *translator) base(recorded string) string { return tr.bases[recorded] }

// recordedRequest is one line of testdata/python-connector-*.jsonl.
type recordedRequest struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body"`
}

// recordedMailboxBodies are the Mailbox POST bodies of a recording, in order.
func (t *T) recordedMailboxBodies(name string) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(t.fixture(name)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r recordedRequest
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("fixture %s: %v", name, err)
		}
		if r.Method == "POST" && r.Path == fhirPrefix+"/Mailbox" {
			out = append(out, r.Body)
		}
	}
	return out
}

// expect predicts the answer to a translated message for a 1.3.5 sender (SPEC.md §7.3, CLIENTS.md): 409
// when the focal resource comes without a version the server has, or any resource with another version
// than the current one; else 200.
func (tr *translator) expect(b *dstu1.Bundle) int {
	focal, fv := dstu1.SplitHistory(first(b.MessageHeader().Data()))
	if tr.current[focal] != "" && fv == "" {
		return 409
	}
	for _, e := range b.Entries[1:] {
		u, v := dstu1.SplitHistory(e.SelfLink())
		if v != "" && tr.current[u] != "" && v != tr.current[u] {
			return 409
		}
	}
	return 200
}
