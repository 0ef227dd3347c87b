package oauth_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// recorded is one line of a clients/*.jsonl recording.
type recorded struct {
	Method        string  `json:"method"`
	Path          string  `json:"path"`
	Accept        *string `json:"accept"`
	Authorization *string `json:"authorization"`
}

var (
	launchInScope = regexp.MustCompile(`launch(%3A|:)[0-9a-f-]{36}`)
	codeParam     = regexp.MustCompile(`code=[0-9a-f-]{36}`)
)

// TestReplayRecordedOAuth replays the Launch → Authorize → Token requests the
// Python connector and the Test Game really sent (testdata/python-connector-oauth.jsonl),
// unchanged except for the launch id and code this server issued.
func TestReplayRecordedOAuth(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		passwords := map[string]string{"PA@PythonAdapterTesting": "pa-pass", "MindDistrict": "md-secret"}
		const gameCB = "http://127.0.0.1:40885/game/kickass-test/test.html"
		e := newEnvOn(t, b.Open(t), "https://game.example/play", func(c *koppeltaal.Config) {
			c.Domains = append(c.Domains, koppeltaal.DomainConfig{Name: "PythonAdapterTesting"})
			c.Applications = append(c.Applications,
				koppeltaal.ApplicationConfig{ID: "PA"},
				koppeltaal.ApplicationConfig{ID: "KTSTESTGAME", LaunchURL: gameCB, RedirectURIs: []string{gameCB}, PublicClient: true},
			)
			c.Applications[2].OAuthSecret = passwords["MindDistrict"]
			c.Applications[2].RedirectURIs = []string{"https://example.com/koppeltaalauth"}
			c.Instances = append(c.Instances,
				koppeltaal.InstanceConfig{Application: "PA", Domain: "PythonAdapterTesting", Username: "PA@PythonAdapterTesting", Password: passwords["PA@PythonAdapterTesting"]},
				koppeltaal.InstanceConfig{Application: "KTSTESTGAME", Domain: "PythonAdapterTesting", Username: "game@pat", Password: "x"},
				koppeltaal.InstanceConfig{Application: "MindDistrict", Domain: "PythonAdapterTesting", Username: "md@pat", Password: "x"},
			)
		}, notify.Options{})
		f, err := os.Open(filepath.Join("testdata", "python-connector-oauth.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var launch, code string
		steps := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec recorded
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			q := req{method: rec.Method}
			if rec.Accept != nil {
				q.accept = *rec.Accept
			}
			if rec.Authorization != nil {
				user := strings.TrimSuffix(strings.TrimPrefix(*rec.Authorization, "Basic "), ":***")
				q.basic = [2]string{user, passwords[user]}
			}
			path := launchInScope.ReplaceAllString(rec.Path, "launch%3A"+launch)
			path = codeParam.ReplaceAllString(path, "code="+code)
			q.path = path
			r := e.do(q)
			steps++
			switch {
			case strings.HasPrefix(rec.Path, "/OAuth2/Koppeltaal/Launch"):
				loc, _ := url.Parse(r.Header.Get("Location"))
				if r.Status != http.StatusFound || loc == nil || loc.Query().Get("launch") == "" {
					t.Fatalf("line %d %s: %d %s", steps, rec.Path, r.Status, r.Body)
				}
				launch = loc.Query().Get("launch")
			case strings.HasPrefix(rec.Path, "/OAuth2/Koppeltaal/Authorize"):
				loc, _ := url.Parse(r.Header.Get("Location"))
				if r.Status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
					t.Fatalf("line %d %s: %d %s %s", steps, path, r.Status, r.Header.Get("Location"), r.Body)
				}
				code = loc.Query().Get("code")
			case strings.HasPrefix(rec.Path, "/OAuth2/Koppeltaal/Token"):
				if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("line %d %s: %d %s", steps, path, r.Status, r.Body)
				}
				tok := jsonOf(t, r)
				for _, k := range []string{"access_token", "token_type", "expires_in", "scope", "domain", "patient", "user", "resource", "intent"} {
					if _, ok := tok[k]; !ok {
						t.Errorf("line %d: token reply lacks %s: %s", steps, k, r.Body)
					}
				}
				if tok["domain"] != "PythonAdapterTesting" || !strings.HasPrefix(tok["patient"].(string), "https://") {
					t.Errorf("line %d: token context %v", steps, tok)
				}
			default:
				t.Fatalf("unexpected recorded path %s", rec.Path)
			}
		}
		if steps != 12 {
			t.Fatalf("replayed %d requests, want 12", steps)
		}
	})
}
