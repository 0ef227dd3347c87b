package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestServeFailedLoginLimits (issue 16 item 2), through a trusted proxy
// (X-Forwarded-For from 127.0.0.1): guessing from one address, or one account
// from many addresses, is throttled — and a correct password is never refused
// because of someone else's failures.
func TestServeFailedLoginLimits(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "koppelpoort.yaml")
	conf := `server:
  trusted_proxies: [127.0.0.1]
  failed_logins: {window: 1m, per_account_and_address: 5, per_account: 20, per_address: 30}
koppeltaal:
  bcrypt_cost: 4
  domains: [{name: D}]
  applications: [{id: Portal}, {id: Game}, {id: EPD}]
  instances:
    - {application: Portal, domain: D, username: portal@d, password: pw-portal}
    - {application: Game, domain: D, username: game@d, password: pw-game}
    - {application: EPD, domain: D, username: epd@d, password: pw-epd}
`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _, _, stderr := startBinary(t, dir, nil, "--config", cfg)
	call := func(from, user, pass string) int {
		t.Helper()
		r, _ := http.NewRequest("GET", base+"/FHIR/Koppeltaal/MessageHeader/_search?_summary=true", nil)
		r.Header.Set("X-Forwarded-For", from)
		r.Header.Set("Accept", "application/json")
		r.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		return resp.StatusCode
	}
	const portalHost, gameHost, epdHost = "203.0.113.10", "203.0.113.20", "203.0.113.30"
	for _, c := range [][3]string{{portalHost, "portal@d", "pw-portal"}, {gameHost, "game@d", "pw-game"}} {
		if got := call(c[0], c[1], c[2]); got != 200 {
			t.Fatalf("%s first login: %d\n%s", c[1], got, stderr)
		}
	}

	// One address guessing the portal's password: locked for that account after 5 failures.
	for i := 0; i < 5; i++ {
		if got := call("198.51.100.1", "portal@d", "guess"); got != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, got)
		}
	}
	if got := call("198.51.100.1", "portal@d", "guess"); got != http.StatusTooManyRequests {
		t.Fatalf("6th guess from the same address: %d, want 429", got)
	}
	// Credential stuffing: the game's password from 40 addresses, one try each.
	refused := 0
	for i := 0; i < 40; i++ {
		if got := call(fmt.Sprintf("198.51.101.%d", i), "game@d", "stuffed"); got == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 20 {
		t.Fatalf("only %d of 40 stuffing attempts throttled", refused)
	}
	// Password spraying from one address (a NAT the EPD shares): one guess per account, then that address is flooded.
	if got := call("198.51.102.1", "epd@d", "spray"); got != http.StatusUnauthorized {
		t.Fatalf("spraying the EPD: %d", got)
	}
	for i := 0; i < 30; i++ {
		call("198.51.102.1", fmt.Sprintf("nobody%d@d", i), "spray")
	}
	if got := call("198.51.102.1", "epd@d", "spray-again"); got != http.StatusTooManyRequests {
		t.Fatalf("a second guess at a sprayed account from the flooded address: %d, want 429", got)
	}
	// None of it refuses a correct password of another party: the portal and the game from their own
	// addresses, the EPD (never logged in before) from its own — and from the flooded address the portal and
	// the game, whose passwords this process knows to be correct.
	for _, c := range [][3]string{{portalHost, "portal@d", "pw-portal"}, {gameHost, "game@d", "pw-game"}, {epdHost, "epd@d", "pw-epd"},
		{"198.51.102.1", "portal@d", "pw-portal"}, {"198.51.102.1", "game@d", "pw-game"}, {"198.51.101.3", "game@d", "pw-game"}} {
		if got := call(c[0], c[1], c[2]); got != 200 {
			t.Fatalf("%s with the right password from %s: %d", c[1], c[0], got)
		}
	}
}
