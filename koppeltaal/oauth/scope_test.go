package oauth_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// bearerFor runs a launch for patient and returns an access token.
func (e *env) bearerFor(patient string) string {
	e.t.Helper()
	code := e.authorize("Game", e.game, e.launch("Game", patient))
	r, tok := e.token(code, e.game, [2]string{})
	if tok == nil {
		e.t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	return tok["access_token"].(string)
}

// TestBearerCannotReadOrAckOtherPatients: a message about patient B cannot be
// read or acknowledged with patient A's token (it looks missing), while the
// instance's Basic credentials can.
func TestBearerCannotReadOrAckOtherPatients(t *testing.T) {
	e := sqliteEnv(t)
	f := dstu1.FormatXML
	if r := e.post(portal, "", patientB, f); r.Status != http.StatusOK {
		t.Fatalf("post: %d", r.Status)
	}
	_, bun := e.claim("", [2]string{gameUser, gamePass}, "&Patient="+url.QueryEscape(patientB), f)
	if bun == nil || len(bun.Entries) == 0 {
		t.Fatal("no message of B to claim")
	}
	self := bun.Entries[0].SelfLink()
	id := strings.Split(strings.TrimPrefix(self, e.ts.URL+"/FHIR/Koppeltaal/MessageHeader/"), "/")[0]
	access := e.bearerFor(patientA)
	for _, path := range []string{"/FHIR/Koppeltaal/MessageHeader/" + id, "/FHIR/Koppeltaal/MessageHeader/_search?_id=" + id} {
		if r := e.do(req{method: "GET", path: path, bearer: access}); r.Status != http.StatusNotFound {
			t.Fatalf("read B's message with A's token via %s: %d", path, r.Status)
		}
		if r := e.do(req{method: "GET", path: path, basic: [2]string{gameUser, gamePass}}); r.Status != http.StatusOK {
			t.Fatalf("read with Basic via %s: %d", path, r.Status)
		}
	}
	mh := dstu1.AsMessageHeader(bun.Entries[0].Resource)
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
	body := mh.Resource.XML()
	if r := e.do(req{method: "PUT", path: "/FHIR/Koppeltaal/MessageHeader/" + id, bearer: access, ctype: "application/xml+fhir", body: body}); r.Status != http.StatusNotFound {
		t.Fatalf("ack of B's message with A's token: %d %s", r.Status, r.Body)
	}
	if r := e.do(req{method: "PUT", path: "/FHIR/Koppeltaal/MessageHeader/" + id, basic: [2]string{gameUser, gamePass}, ctype: "application/xml+fhir", body: body}); r.Status != http.StatusOK {
		t.Fatalf("ack with Basic: %d %s", r.Status, r.Body)
	}
	// ActivityDefinitions: readable with a token, not writable.
	if r := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/Other/_search?code=ActivityDefinition", bearer: access}); r.Status != http.StatusOK {
		t.Fatalf("list definitions with a token: %d", r.Status)
	}
}

// TestStreamWithBearer: the live stream of a Bearer caller announces only the
// token patient's messages.
func TestStreamWithBearer(t *testing.T) {
	e := sqliteEnv(t)
	access := e.bearerFor(patientA)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
	hr.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	e.post(portal, "", patientB, dstu1.FormatJSON)
	e.post(portal, "", patientA, dstu1.FormatJSON)
	for l := range lines {
		if strings.HasPrefix(l, "data: ") && strings.Contains(l, "CreateOrUpdateCarePlan") {
			if !strings.Contains(l, patientA) {
				t.Fatalf("A's stream announced %s", l)
			}
			return
		}
	}
	t.Fatal("stream ended without announcing A's message")
}

// TestPurgeAndAuthorizeThrottle: expired grants are deleted after a day; guessing launch ids is throttled.
func TestPurgeAndAuthorizeThrottle(t *testing.T) {
	e := sqliteEnv(t)
	access := e.bearerFor(patientA)
	e.launch("Game", patientA) // an unused launch
	count := func(table string) (n int64) {
		_ = e.st.View(ctx, func(tx *store.Tx) error { return tx.Get(ctx, &n, "SELECT COUNT(*) FROM "+table) })
		return n
	}
	if n, err := e.oa.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("purge of live grants deleted %d (%v)", n, err)
	}
	e.oa.SetClock(func() time.Time { return time.Now().Add(32 * 24 * time.Hour) })
	if n, err := e.oa.Purge(ctx); err != nil || n == 0 {
		t.Fatalf("purge deleted %d (%v)", n, err)
	}
	e.oa.SetClock(time.Now)
	if count("oauth_tokens")+count("oauth_codes")+count("oauth_launches") != 0 {
		t.Fatal("expired grants left behind")
	}
	if r, _ := e.claim(access, [2]string{}, "", dstu1.FormatJSON); r.Status != http.StatusUnauthorized {
		t.Fatalf("purged token: %d", r.Status)
	}
	// Activation codes (not UUIDs) are throttled per address: 100 failures in 15 minutes.
	for i := 0; i < 105; i++ {
		q := url.Values{"response_type": {"code"}, "client_id": {"Game"}, "redirect_uri": {e.game}, "scope": {fmt.Sprintf("launch:GUESS%d", i)}}
		r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
		if (i >= 100) != (r.Status == http.StatusTooManyRequests) {
			t.Fatalf("guess %d: %d", i, r.Status)
		}
	}
}

// TestBearerOfDisabledInstanceStopsWorking: an instance removed from the
// configuration loses its Bearer tokens at once, not when they expire.
func TestBearerOfDisabledInstanceStopsWorking(t *testing.T) {
	e := sqliteEnv(t)
	access := e.bearerFor(patientA)
	claim := req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", bearer: access}
	if r := e.do(claim); r.Status != http.StatusOK {
		t.Fatalf("claim with a fresh token: %d %s", r.Status, r.Body)
	}
	storetest.DisableInstance(t, e.st, gameUser)
	if r := e.do(claim); r.Status != http.StatusUnauthorized {
		t.Fatalf("claim with the token of a disabled instance: %d, want 401", r.Status)
	}
}
