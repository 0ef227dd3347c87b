package supportapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestHTTPLog: the HttpLog resource filters by time, caller, status class,
// path prefix and request id, newest first, paged by number and by id; a
// domain administrator sees only the requests of callers in its domains, an
// application administrator only those of its application's instances and
// OAuth client, and neither ever another domain's, an administrator's or an
// unauthenticated request.
func TestHTTPLog(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		row := func(sec int, kind, caller, domain, method, path string, status int) store.HTTPLogRow {
			return store.HTTPLogRow{At: base.Add(time.Duration(sec) * time.Second).UnixMicro(), Method: method, Path: path,
				CallerKind: kind, Caller: caller, Domain: domain, Status: status, DurationUS: 1500,
				RequestID: fmt.Sprintf("req-%d", sec), SourceIP: "192.0.2.1"}
		}
		rows := []store.HTTPLogRow{
			row(1, "instance", "portal@a", "A", "POST", "/FHIR/Koppeltaal/Mailbox", 200),
			row(2, "instance", "game@a", "A", "GET", "/FHIR/Koppeltaal/MessageHeader/_search", 200),
			row(3, "instance", "portal@b", "B", "POST", "/FHIR/Koppeltaal/Mailbox", 500),
			row(4, "bearer", "Game", "B", "GET", "/FHIR/Koppeltaal/CarePlan/1", 403),
			row(5, "client", "Game", "", "POST", "/OAuth2/Koppeltaal/Token", 400),
			row(6, "admin", "sys", "", "GET", "/jsonapi/Koppeltaal/Domain", 200),
			row(7, "", "", "", "GET", "/FHIR/Koppeltaal/metadata", 401),
			row(8, "instance", "epd@a", "A", "POST", "/FHIR/Koppeltaal/Mailbox", 200),
			row(9, "instance", "game@b", "B", "GET", "/FHIR/Koppeltaal/MessageHeader/_search", 200),
		}
		rows[7].RequestBody, rows[7].ResponseBody = []byte("<feed>request</feed>"), []byte("<feed>reply</feed>")
		for i := range 40 { // the paging set: portal@a, one a second
			rows = append(rows, row(100+i, "instance", "portal@a", "A", "GET", "/FHIR/Koppeltaal/MessageHeader/_search", 200))
		}
		rows = append(rows, row(50, "instance", "portal@a", "A", "GET", "/FHIR/Koppeltaal/metadata", 200)) // out of id order
		if err := e.st.InsertHTTPLog(context.Background(), rows); err != nil {
			t.Fatal(err)
		}
		list := func(who, q string) []map[string]any {
			t.Helper()
			return e.do(who, "GET", "/HttpLog?"+q, nil).mustStatus(t, 200, who+" "+q).list()
		}
		callers := func(rs []map[string]any) string {
			var out []string
			for _, r := range rs {
				out = append(out, fmt.Sprint(attr(r, "CallerKind"), ":", attr(r, "Caller")))
			}
			return strings.Join(out, " ")
		}
		if got := list("sys", "page[size]=500"); len(got) != len(rows) {
			t.Fatalf("system administrator sees %d entries, want all %d (administrators' and unauthenticated ones too)", len(got), len(rows))
		}
		dora := list("dora", "page[size]=500")
		if len(dora) != 3+41 {
			t.Fatalf("administrator of A sees %d entries, want 44: %s", len(dora), callers(dora))
		}
		for _, r := range dora {
			if attr(r, "Domain") != "A" {
				t.Fatalf("administrator of A sees %s", r)
			}
		}
		if got := callers(list("appy", "page[size]=500")); got != "instance:game@b client:Game bearer:Game instance:game@a" {
			t.Fatalf("administrator of Game sees %q, want its instances and OAuth client, newest first", got)
		}
		// Newest first: by start time, not by id (row 50 was written last).
		first := list("dora", "page[size]=2")
		if attr(first[0], "RequestId") != "req-139" || attr(first[1], "RequestId") != "req-138" {
			t.Fatalf("newest first: %v", first)
		}
		if got := list("dora", "filter[At][ge]=2026-11-30T10:00:50Z&filter[At][lt]=2026-11-30T10:01:41Z&page[size]=500"); len(got) != 2 {
			t.Fatalf("At range: %d entries, want 2 (req-50 and req-100): %v", len(got), got)
		}
		for _, c := range []struct {
			who, q string
			want   int
		}{
			{"sys", "filter[Status]=4xx", 3},
			{"sys", "filter[Status]=failed", 4},
			{"dora", "filter[Status]=failed", 0},
			{"sys", "filter[Path][startswith]=/OAuth2/", 1},
			{"sys", "filter[RequestId]=req-8", 1},
			{"sys", "filter[Caller]=portal@b", 1},
			{"dora", "filter[Caller]=portal@b", 0},
			{"dora", "filter[Caller]=sys", 0},
			{"appy", "filter[Caller]=portal@a", 0},
			{"appy", "filter[Status]=4xx", 2},
		} {
			if got := list(c.who, c.q+"&page[size]=500"); len(got) != c.want {
				t.Errorf("%s %s: %d entries, want %d: %s", c.who, c.q, len(got), c.want, callers(got))
			}
		}
		// Paging: by number (links.next) and by id ("older than the last one I saw").
		r := e.do("dora", "GET", "/HttpLog?page[size]=10", nil).mustStatus(t, 200, "page 1")
		next, _ := r.doc["links"].(map[string]any)["next"].(string)
		if !strings.Contains(next, "page[number]=2") {
			t.Fatalf("next link: %s", r.raw)
		}
		if _, total := r.doc["meta"].(map[string]any)["page"].(map[string]any)["total-records"]; total {
			t.Fatalf("total-records on an unbounded log: %s", r.raw)
		}
		page1 := r.list()
		page2 := list("dora", "page[size]=10&page[number]=2")
		older := list("dora", "page[size]=10&filter[id][lt]="+page1[9]["id"].(string))
		if len(page2) != 10 || callers(page2) != callers(older) || page2[0]["id"] != older[0]["id"] || page2[9]["id"] != older[9]["id"] {
			t.Fatalf("page 2 %v and older than page 1's last %v differ", page2, older)
		}
		last := list("dora", "page[size]=40&page[number]=2")
		if r := e.do("dora", "GET", "/HttpLog?page[size]=40&page[number]=2", nil); len(last) != 4 || r.doc["links"].(map[string]any)["next"] != nil {
			t.Fatalf("last page: %d entries, links %v", len(last), r.doc["links"])
		}
		// One entry, with the kept bodies; never one outside the scope, not even as a paging key.
		id8 := list("sys", "filter[RequestId]=req-8")[0]["id"].(string)
		one := e.do("dora", "GET", "/HttpLog/"+id8, nil).mustStatus(t, 200, "read entry").data()
		if attr(one, "RequestBody") != "<feed>request</feed>" || attr(one, "ResponseBody") != "<feed>reply</feed>" || attr(one, "DurationMs") != 1.5 {
			t.Fatalf("entry: %v", one)
		}
		idB := list("sys", "filter[RequestId]=req-3")[0]["id"].(string)
		e.do("dora", "GET", "/HttpLog/"+idB, nil).mustStatus(t, 404, "domain administrator reads another domain's entry")
		e.do("appy", "GET", "/HttpLog/"+id8, nil).mustStatus(t, 404, "application administrator reads another application's entry")
		e.do("dora", "GET", "/HttpLog?filter[id][lt]="+idB, nil).mustStatus(t, 400, "another domain's entry as paging key")
		e.do("sys", "GET", "/HttpLog/999999", nil).mustStatus(t, 404, "no such entry")
		// Bad input: precise errors.
		for _, q := range []string{"filter[Status]=6xx", "filter[Body]=x", "filter[Path]=/FHIR", "search=x", "sort=At",
			"filter[At][ge]=yesterday", "page[number]=100&page[size]=15", "filter[id][lt]=x"} {
			r := e.do("sys", "GET", "/HttpLog?"+q, nil).mustStatus(t, 400, q)
			if s, _ := r.firstError(); s != "400" {
				t.Fatalf("%s: %s", q, r.raw)
			}
		}
		e.do("sys", "POST", "/HttpLog", doc("HttpLog", "", map[string]any{"Path": "/"}, "")).mustStatus(t, 405, "POST")
		e.do("", "GET", "/HttpLog", nil).mustStatus(t, 401, "no credentials")
		e.tokens["nobody"] = "kpat_wrong"
		if r := e.do("nobody", "GET", "/HttpLog", nil).mustStatus(t, 401, "wrong token"); strings.Contains(r.raw, "portal@a") {
			t.Fatalf("401 with data: %s", r.raw)
		}
	})
}
