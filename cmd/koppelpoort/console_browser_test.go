package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/store"
)

// screenshotDir is where TestConsoleInBrowser saves a PNG of each page when
// KOPPELPOORT_CONSOLE_SCREENSHOTS is set (docs/console/ has the committed ones).
func screenshotDir() string { return os.Getenv("KOPPELPOORT_CONSOLE_SCREENSHOTS") }

// TestConsoleInBrowser drives the web console of `koppelpoort serve` (the
// embedded default: demo domain and administrator) in headless Chromium, as
// an administrator would: log in, find a message by patient and open it,
// register an application and create an instance and post with its new
// credentials, and run a Test Portal launch through to the module's status
// update, at desktop and at phone width.
func TestConsoleInBrowser(t *testing.T) {
	bctx := testkit.Browser(t, chromedp.WindowSize(1280, 900))
	dir := t.TempDir()
	seedDeadLetter(t, filepath.Join(dir, "koppelpoort-data", "koppelpoort.db"))
	base, _, _, stderr := startBinary(t, dir, nil)
	epd := &client.Client{BaseURL: base, Username: koppeltaal.DemoEPDUser, Password: koppeltaal.DemoEPDPassword}
	patient := "https://epd.example/fhir/Koppeltaal/Patient/browser-1"
	msg, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: patient, Resources: []client.Resource{{
		Type: "Patient", ID: "browser-1", Body: map[string]any{"name": []any{map[string]any{"text": "Bea Browser"}}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example/fhir/Koppeltaal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := epd.PostMessage(context.Background(), msg); err != nil {
		t.Fatal(err)
	}

	var jsErrors []string
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/console/")); err != nil { // first call owns the browser: no timeout
		t.Fatal(err)
	}
	_ = chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			jsErrors = append(jsErrors, msg)
		}
	})
	ctx, cancel := context.WithTimeout(bctx, 180*time.Second) // the whole walk; it takes ~30 s on a quiet machine
	defer cancel()
	w := &walk{t: t, ctx: ctx, bctx: bctx, stderr: stderr, jsErrors: &jsErrors}
	run := w.run
	var pages []consolePage // every page shot at desktop size, shown again at phone size at the end
	shot := func(name string) {
		t.Helper()
		w.shot(name)
		if name != "login" { // the login page is shown at phone size after logging out
			pages = append(pages, w.here(name))
		}
	}

	// Log in.
	run("login page", chromedp.WaitVisible(`#username`))
	shot("login")
	run("log in", chromedp.SendKeys(`#username`, admin.DemoUser), chromedp.SendKeys(`#password`, admin.DemoPassword),
		chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`//h1[text()="Dashboard"]`),
		chromedp.WaitVisible(`//td/a[text()="portal@demo"]`))
	shot("dashboard")
	if focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.tagName + " " + document.activeElement.textContent`)); err != nil || focused != "H1 Dashboard" {
		t.Fatalf("after logging in the focus is on %q, want the page heading (%v)", focused, err)
	}

	// Find the message by patient and open it.
	run("search by patient", chromedp.Click(`//nav//a[text()="Messages"]`), chromedp.WaitVisible(`input[name=Patient]`),
		chromedp.SendKeys(`input[name=Patient]`, patient), chromedp.Click(`//form//button[text()="Search"]`),
		// The caption names the filters of the answer shown: the unfiltered first page (the demo's seeded
		// messages and this one) must not be taken for the search's answer.
		chromedp.WaitVisible(`//caption[contains(., "Patient: `+patient+`")]`))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("main tbody tr td:nth-child(5)")].map((td) => td.textContent)`))
	if err != nil || len(rows) != 1 || rows[0] != patient {
		t.Fatalf("search by patient shows the messages of %q (%v), want one of %s", rows, err, patient)
	}
	shot("messages")
	run("open the message", chromedp.Click(`main tbody tr td a`), chromedp.WaitVisible(`//h2[text()="Recipients"]`),
		chromedp.WaitVisible(`//pre[contains(., "Bea Browser")]`))
	shot("message-json")
	run("XML body", chromedp.Click(`//button[text()="XML"]`), chromedp.WaitVisible(`//pre[contains(., "<feed")]`))
	shot("message-xml")

	// A dead letter: read it in full, then replay it (counted first, confirmed).
	run("dead letters", chromedp.Click(`//nav//a[text()="Dead letters"]`), chromedp.WaitVisible(`//h1[text()="Dead letters"]`),
		chromedp.WaitVisible(`//table[@id="dead-letters"]//tr[@data-id="browser-dl"]`))
	shot("dead-letters")
	run("a dead letter in full", chromedp.Click(`//tr[@data-id="browser-dl"]//a`), chromedp.WaitVisible(`//h1[.="Dead letter of browser-route"]`),
		chromedp.WaitVisible(`//pre[contains(., "bsn-not-a-number")]`))
	shot("dead-letter")
	run("replay, counted first", chromedp.Click(`//a[text()="← Dead letters"]`), chromedp.WaitVisible(`//table[@id="dead-letters"]//tr[@data-id="browser-dl"]`),
		chromedp.Click(`//button[text()="Replay all dead letters"]`),
		chromedp.WaitVisible(`//div[@role="alertdialog"]/p[starts-with(., "Replay 1 dead letter (browser-route: 1)")]`),
		chromedp.Click(`//button[text()="Yes, replay"]`), chromedp.WaitVisible(`//p[@role="status"][starts-with(., "1 dead letter replayed")]`),
		chromedp.WaitVisible(`//caption[starts-with(., "0 dead letters waiting")]`))

	// Register an application, create an instance of it, and post with the credentials the page shows once.
	run("register an application", chromedp.Click(`//nav//a[text()="Applications"]`), chromedp.WaitVisible(`//h1[text()="Applications"]`),
		chromedp.Click(`//summary[text()="Register an application"]`), chromedp.SendKeys(`input[name=ident]`, "BrowserModule"),
		chromedp.SendKeys(`input[name=name]`, "A module made in the browser"), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`//code[text()="BrowserModule"]`))
	shot("applications")
	run("create an instance", chromedp.Click(`//nav//a[text()="Instances"]`), chromedp.WaitVisible(`//h1[text()="Application instances"]`),
		chromedp.Click(`//summary[text()="New application instance"]`), chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "browser-module@demo"),
		chromedp.WaitReady(`//select[@name="application"]/option[text()="BrowserModule"]`), // the options arrive with the page's data
		chromedp.SetValue(`select[name=application]`, "BrowserModule"), chromedp.SetValue(`select[name=domain]`, koppeltaal.DemoDomain),
		chromedp.Click(`input[value=CreateOrUpdatePatient]`), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`.secret`))
	password, err := chromedp.Run(ctx, chromedp.Text(`.secret`))
	if err != nil {
		t.Fatal(err)
	}
	shot("instances")
	module := &client.Client{BaseURL: base, Username: "browser-module@demo", Password: strings.TrimSpace(password)}
	own, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: "m-1", Resources: []client.Resource{{
		Type: "Patient", ID: "m-1", Body: map[string]any{"name": []any{map[string]any{"text": "Mo Module"}}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://module.example/fhir/Koppeltaal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := module.PostMessage(context.Background(), own); err != nil {
		t.Fatalf("post with the credentials shown in the console: %v", err)
	}
	run("instance page", chromedp.Click(`//td/a[text()="browser-module@demo"]`), chromedp.WaitVisible(`//h1[text()="browser-module@demo"]`))
	shot("instance")
	// The HTTP log: the module's POST with its new credentials, found by caller and opened; the next one is
	// announced live; the administrator's own login is there under its name.
	row := func(req, status string) string {
		return `//table[@id="httplog"]//tr[td[2]/code[.="` + req + `"] and td[3]/span[.="` + status + `"]]`
	}
	run("http log", chromedp.Click(`//nav//a[text()="HTTP log"]`), chromedp.WaitVisible(`//h1[text()="HTTP log"]`),
		chromedp.WaitVisible(row("POST /FHIR/Koppeltaal/Mailbox", "200")))
	shot("httplog")
	run("http log by caller", chromedp.SendKeys(`input[name=Caller]`, "browser-module@demo"), chromedp.Click(`//form//button[text()="Search"]`),
		chromedp.WaitVisible(`//caption[starts-with(., "1 request shown")]`), chromedp.WaitVisible(row("POST /FHIR/Koppeltaal/Mailbox", "200")))
	if _, err := module.PostMessage(context.Background(), own); err != nil {
		t.Fatal(err)
	}
	run("a new request is announced", chromedp.WaitVisible(`//p[starts-with(., "1 new request")]`), chromedp.Click(`//p/a[text()="show"]`),
		chromedp.WaitVisible(`//caption[starts-with(., "2 requests shown")]`))
	run("one request", chromedp.Click(`#httplog tbody tr td a`), chromedp.WaitVisible(`//h1/code[.="POST /FHIR/Koppeltaal/Mailbox"]`),
		chromedp.WaitVisible(`//dd[text()="browser-module@demo"]`))
	shot("httplog-entry")
	run("the administrator's login", chromedp.Click(`//a[text()="← HTTP log"]`), chromedp.WaitVisible(`input[name=Caller]`),
		chromedp.SendKeys(`input[name=Caller]`, admin.DemoUser), chromedp.SendKeys(`input[name=Path]`, "/admin/session"),
		chromedp.SetValue(`select[name=Status]`, "2xx"), chromedp.Click(`//form//button[text()="Search"]`),
		chromedp.WaitVisible(`//table[@id="httplog"]//tr[td[2]/code[.="POST /admin/session"] and td[4][.="`+admin.DemoUser+` (admin)"]]`))

	// A webhook header (write-only: named, never shown) and a password of the administrator's choosing, as the
	// file's webhook.headers and password; the next POST authenticates with it.
	hookSecrets := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookSecrets <- r.Header.Get("X-Koppeltaal-Secret")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	run("instance webhook and password", chromedp.Click(`//nav//a[text()="Instances"]`), chromedp.Click(`//td/a[text()="browser-module@demo"]`),
		chromedp.WaitVisible(`//h1[text()="browser-module@demo"]`), chromedp.SendKeys(`input[name=webhook]`, hook.URL+"/hook"),
		chromedp.SendKeys(`textarea[name=headers]`, "X-Koppeltaal-Secret: hook secret 1"),
		chromedp.SendKeys(`input[name=password]`, "a password chosen in the console"), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`//small[@id="headers-help"][starts-with(., "Set now: X-Koppeltaal-Secret (values not shown)")]`))
	module.Password = "a password chosen in the console"
	if _, err := module.PostMessage(context.Background(), own); err != nil {
		t.Fatalf("post with the password set in the console: %v", err)
	}
	// A password hash made elsewhere (the file's password_hash), as when an instance moves from the file.
	hash, err := bcrypt.GenerateFromPassword([]byte("a password hashed elsewhere"), 4)
	if err != nil {
		t.Fatal(err)
	}
	run("instance password hash", chromedp.SendKeys(`input[name=passwordHash]`, string(hash)), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`//input[@name="passwordHash"][not(@value)]`))
	module.Password = "a password hashed elsewhere"
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) { // the save is announced before the wait above can tell
		if _, err := module.PostMessage(context.Background(), own); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("post with the password of the hash set in the console: %v", err)
		}
	}
	news, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: patient + "-hook", Resources: []client.Resource{{
		Type: "Patient", ID: "browser-1-hook", Body: map[string]any{"name": []any{map[string]any{"text": "Hugo Hook"}}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example/fhir/Koppeltaal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := epd.PostMessage(context.Background(), news); err != nil { // a new patient message for the module: its webhook is called
		t.Fatal(err)
	}
	select {
	case got := <-hookSecrets:
		if got != "hook secret 1" {
			t.Fatalf("the webhook was called with X-Koppeltaal-Secret %q, want the header set in the console", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook set in the console was not called within 10 s")
	}

	// Administrators: create a domain administrator (its password shown once), log in as it over HTTP,
	// disable it in the console: its session is refused from the next request on.
	run("administrators", chromedp.Click(`//nav//a[text()="Administrators"]`), chromedp.WaitVisible(`//h1[text()="Administrators"]`),
		chromedp.Click(`//summary[text()="New administrator"]`), chromedp.SendKeys(`input[name=username]`, "browser-admin"),
		chromedp.SetValue(`select[name=role]`, "domain"), chromedp.SendKeys(`input[name=scope]`, koppeltaal.DemoDomain),
		chromedp.Click(`//form//button[text()="Save"]`), chromedp.WaitVisible(`.secret`),
		chromedp.WaitVisible(`//tr[@data-username="browser-admin"]`))
	adminPassword, err := chromedp.Run(ctx, chromedp.Text(`.secret`))
	if err != nil {
		t.Fatal(err)
	}
	session := adminLogin(t, base, "browser-admin", strings.TrimSpace(adminPassword))
	if s, _ := session.do("GET", "/Domain", nil); s != 200 {
		t.Fatalf("the new administrator's session: %d", s)
	}
	shot("administrators")
	run("disable it", chromedp.Click(`//button[.="Disable browser-admin"]`),
		chromedp.WaitVisible(`//tr[@data-username="browser-admin"]//span[.="disabled"]`))
	if s, _ := session.do("GET", "/Domain", nil); s != 401 {
		t.Fatalf("the disabled administrator's session: %d, want 401", s)
	}
	// The account's name, role and scope (the file's admin.users[] entry), changed in the console.
	run("edit an administrator", chromedp.Click(`//a/code[text()="browser-admin"]`), chromedp.WaitVisible(`//h1[text()="browser-admin"]`),
		chromedp.SendKeys(`input[name=name]`, "Bram Browser"), chromedp.SetValue(`select[name=role]`, "application"),
		chromedp.SetValue(`input[name=scope]`, "BrowserModule"), chromedp.Click(`//form[@aria-label="Administrator"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//p[starts-with(., "Saved: the account's sessions")]`), chromedp.WaitVisible(`//h1[text()="Bram Browser"]`))
	// Its password as a hash made elsewhere (the file's password_hash): the account logs in with that password.
	adminHash, err := bcrypt.GenerateFromPassword([]byte("an administrator password hashed elsewhere"), 4)
	if err != nil {
		t.Fatal(err)
	}
	run("an administrator's password hash", chromedp.Click(`//nav//a[text()="Administrators"]`), chromedp.Click(`//tr[@data-username="browser-admin"]//button[.="Enable browser-admin"]`),
		chromedp.WaitVisible(`//tr[@data-username="browser-admin"]//button[.="Disable browser-admin"]`), chromedp.Click(`//a/code[text()="browser-admin"]`),
		chromedp.WaitVisible(`//h1[text()="Bram Browser"]`), chromedp.SendKeys(`input[name=passwordHash]`, string(adminHash)),
		chromedp.Click(`//form[@aria-label="Administrator"]//button[text()="Save"]`), chromedp.WaitVisible(`//p[starts-with(., "Saved: the account's sessions")]`))
	if s, _ := adminLogin(t, base, "browser-admin", "an administrator password hashed elsewhere").do("GET", "/Domain", nil); s != 200 {
		t.Fatalf("the administrator with the password hash set in the console: %d", s)
	}
	shot("administrator")
	if u := adminLogin(t, base, admin.DemoUser, admin.DemoPassword).one("/Administrator?filter[Username]=browser-admin"); attrOf(u, "Name") != "Bram Browser" ||
		attrOf(u, "Role") != "application" || fmt.Sprint(attrOf(u, "Applications")) != "[BrowserModule]" || fmt.Sprint(attrOf(u, "Domains")) != "[]" {
		t.Fatalf("the administrator as edited in the console: %v", u["attributes"])
	}

	walkDomainSettings(w, base, shot)

	// The module's OAuth client settings and an activity definition of it, made in the console.
	run("OAuth client settings", chromedp.Click(`//nav//a[text()="Applications"]`), chromedp.Click(`//a/code[text()="BrowserModule"]`),
		chromedp.WaitVisible(`//h2[text()="OAuth client (launch)"]`), chromedp.SendKeys(`input[name=launch]`, "https://module.example/launch"),
		chromedp.SendKeys(`textarea[name=redirects]`, "https://module.example/callback"),
		chromedp.Click(`//form[@aria-label="OAuth client settings"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//p[starts-with(., "Saved")]`), chromedp.Click(`//button[text()="Reset client secret"]`), chromedp.WaitVisible(`.secret`))
	walkApplicationSettings(w, base)
	run("a client secret of the administrator's choosing", chromedp.SendKeys(`input[name=secret]`, "a client secret chosen in the console"),
		chromedp.Click(`//form[@aria-label="OAuth client settings"]//button[text()="Save"]`))
	waitClientSecret(t, base, "BrowserModule", "a client secret chosen in the console")
	secretHash, err := bcrypt.GenerateFromPassword([]byte("a client secret hashed elsewhere"), 4)
	if err != nil {
		t.Fatal(err)
	}
	run("a client secret hash, lifetimes, refresh tokens, origins", chromedp.SendKeys(`input[name=secretHash]`, string(secretHash)),
		chromedp.SetValue(`input[name=token]`, "600"), chromedp.SetValue(`input[name=code]`, "30"), chromedp.SetValue(`input[name=launchLife]`, "120"),
		chromedp.SetValue(`input[name=activation]`, "3"), chromedp.Click(`input[name=refresh]`),
		chromedp.SendKeys(`textarea[name=origins]`, "https://module.example"),
		chromedp.Click(`//form[@aria-label="OAuth client settings"]//button[text()="Save"]`))
	waitClientSecret(t, base, "BrowserModule", "a client secret hashed elsewhere")
	rc := adminLogin(t, base, admin.DemoUser, admin.DemoPassword).one("/RegisteredClient?filter[ClientId]=BrowserModule")
	if got := fmt.Sprint(attrOf(rc, "TokenExpiresIn"), attrOf(rc, "AuthorizationCodeExpiresIn"), attrOf(rc, "WebLaunchRequestExpiresIn"),
		attrOf(rc, "MobileActivationCodeExpiresIn"), attrOf(rc, "UseRefreshTokens"), attrOf(rc, "AllowPublicTokenRequests"), attrOf(rc, "AllowedOrigins")); got != "600 30 120 3 true false [https://module.example]" {
		t.Fatalf("the OAuth client as saved in the console: %s", got)
	}
	shot("application")
	run("the settings are stored", chromedp.Click(`//a[text()="← Applications"]`), chromedp.Click(`//a/code[text()="BrowserModule"]`),
		chromedp.WaitVisible(`//textarea[@name="redirects"][.="https://module.example/callback"]`),
		chromedp.WaitVisible(`//input[@name="launch"][@value="https://module.example/launch"]`))
	run("activity definitions", chromedp.Click(`//nav//a[text()="Activities"]`), chromedp.WaitVisible(`//h1[text()="Activity definitions"]`),
		chromedp.Click(`//summary[text()="New activity definition"]`), chromedp.SendKeys(`input[name=ident]`, "browser-activity"),
		chromedp.SendKeys(`input[name=name]`, "An activity made in the browser"),
		chromedp.SetValue(`select[name=application]`, "BrowserModule"), chromedp.SetValue(`select[name=domain]`, koppeltaal.DemoDomain),
		chromedp.SetValue(`select[name=kind]`, "ELearning"), chromedp.Click(`input[name=domainSpecific]`), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`//tr[@data-identifier="browser-activity"][td[7][.="active, this domain only"]]`))
	shot("activities")
	run("deactivate and archive it", chromedp.Click(`//button[.="Deactivate browser-activity"]`),
		chromedp.WaitVisible(`//tr[@data-identifier="browser-activity"][td[7][.="inactive, this domain only"]]`),
		chromedp.Click(`//button[.="Archive browser-activity"]`),
		chromedp.WaitVisible(`//tr[@data-identifier="browser-activity"][td[7][.="inactive, archived, this domain only"]]`))
	if ad := adminLogin(t, base, admin.DemoUser, admin.DemoPassword).one("/ActivityDefinition?filter[Identifier]=browser-activity"); attrOf(ad, "IsArchived") != true ||
		attrOf(ad, "IsDomainSpecific") != true || attrOf(ad, "IsActive") != false {
		t.Fatalf("the activity definition as changed in the console: %v", ad["attributes"])
	}
	run("edit the activity definition", chromedp.Click(`//a/code[text()="browser-activity"]`), chromedp.WaitVisible(`//h1[.="An activity made in the browser"]`),
		chromedp.SendKeys(`input[name=description]`, "Made and changed in the browser"), chromedp.SetValue(`select[name=launch]`, "Mobile"),
		chromedp.SendKeys(`input[name="sub0.id"]`, "part-1"), chromedp.SendKeys(`input[name="sub0.name"]`, "Part one"),
		chromedp.Click(`//form[@aria-label="Activity definition"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//p[starts-with(., "Saved: published to the domain")]`), chromedp.WaitVisible(`//fieldset[@data-sub="part-1"]`))
	shot("activity")
	ad := adminLogin(t, base, admin.DemoUser, admin.DemoPassword).one("/ActivityDefinition?filter[Identifier]=browser-activity")
	if subs, _ := attrOf(ad, "SubActivities").([]any); attrOf(ad, "Description") != "Made and changed in the browser" || attrOf(ad, "LaunchType") != "Mobile" ||
		len(subs) != 1 || fmt.Sprint(subs[0]) != "map[Description: Identifier:part-1 IsActive:true Name:Part one]" {
		t.Fatalf("the activity definition as edited in the console: %v", ad["attributes"])
	}

	// Test Portal: CarePlan with the demo game's activity, web launch as the patient, the module's status update.
	run("test portal", chromedp.Click(`//nav//a[text()="Test Portal"]`), chromedp.WaitVisible(`select[name=activity]`),
		chromedp.SetValue(`select[name=portal]`, koppeltaal.DemoPortalUser), chromedp.SetValue(`select[name=activity]`, koppeltaal.DemoActivity),
		chromedp.Click(`//button[starts-with(text(), "Create patient")]`), chromedp.WaitVisible(`//h2[starts-with(text(), "CarePlan for")]`),
		chromedp.WaitVisible(`#portal-messages tr[data-event=CreateOrUpdateCarePlan]`))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(window.open = () => null, true)`)); err != nil { // the test opens the tab itself
		t.Fatal(err)
	}
	run("launch as the patient", chromedp.Click(`//button[text()="Launch as patient (new tab)"]`), chromedp.WaitVisible(`#launch-link`))
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(`#launch-link`, "href"))
	if err != nil {
		t.Fatal(err)
	}
	launchURL := href.Value
	tab, cancelTab := chromedp.NewContext(bctx)
	defer cancelTab()
	tctx, cancelT := context.WithTimeout(tab, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(tab, chromedp.Navigate(launchURL)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tctx, chromedp.WaitVisible(`#result[data-done]`)); err != nil {
		log, _ := chromedp.Run(tab, chromedp.Text(`#log`))
		t.Fatalf("the module did not finish: %v\n%s", err, log)
	}
	result, err := chromedp.Run(tctx, chromedp.Text(`#result`))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(result), &got); err != nil || got["reported"] != "Completed" || got["event"] == nil {
		t.Fatalf("module result: %s", result)
	}
	if screenshotDir() != "" {
		if png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(screenshotDir(), "module.png"), png, 0o644)
		}
	}
	run("the status update appears", chromedp.WaitVisible(`#portal-messages tr[data-event=UpdateCarePlanActivityStatus]`))
	shot("test-portal")

	// The launch made an OAuth grant: revoke it (the page asks first).
	run("authorizations", chromedp.Click(`//nav//a[text()="Authorizations"]`), chromedp.WaitVisible(`//h1[text()="Authorizations"]`),
		chromedp.WaitVisible(`//table[@id="authorizations"]//tr[td[2]/code[text()="DemoGame"]]//button[text()="Revoke"]`))
	shot("authorizations")
	run("revoke, asked first", chromedp.Click(`//table[@id="authorizations"]//tr[td[2]/code[text()="DemoGame"]]//button[text()="Revoke"]`),
		chromedp.WaitVisible(`//div[@role="alertdialog"]//button[text()="Yes, revoke"]`), chromedp.Click(`//button[text()="Yes, revoke"]`),
		chromedp.WaitVisible(`//table[@id="authorizations"]//tr[td[2]/code[text()="DemoGame"]]//span[text()="Revoked"]`))

	// Phone size (375×812): the page links fold behind "Menu", which opens and closes by keyboard too; the
	// message list is one card per message, nothing wider than the screen, and a message opens from it.
	run("phone size", chromedp.EmulateViewport(phoneWidth, 812), chromedp.WaitVisible(`#menu-toggle`),
		chromedp.WaitNotVisible(`//nav//a[text()="Messages"]`))
	run("menu by keyboard", chromedp.Focus(`#menu-toggle`), chromedp.KeyEvent("\r"), chromedp.WaitVisible(`//nav//a[text()="Messages"]`))
	w.shot("menu-phone")
	run("menu closes by Escape", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(`//nav//a[text()="Messages"]`))
	if focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`)); err != nil || focused != "menu-toggle" {
		t.Fatalf("Escape closes the menu and gives the focus back to its button; focus is on %q (%v)", focused, err)
	}
	run("messages at phone size", chromedp.Click(`#menu-toggle`), chromedp.Click(`//nav//a[text()="Messages"]`),
		chromedp.WaitVisible(`input[name=Patient]`), chromedp.WaitNotVisible(`//nav//a[text()="Messages"]`),
		chromedp.SendKeys(`input[name=Patient]`, patient), chromedp.Click(`//form//button[text()="Search"]`),
		chromedp.WaitVisible(`//caption[contains(., "Patient: `+patient+`")]`))
	fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll("#messages tbody tr")].every((tr) => tr.getBoundingClientRect().right <= innerWidth)`))
	if err != nil || !fits {
		t.Fatalf("the message list is wider than a %d px screen (%v)", phoneWidth, err)
	}
	run("open a message at phone size", chromedp.Click(`#messages tbody tr td a`), chromedp.WaitVisible(`//h2[text()="Recipients"]`))
	// Every page shot above, again at phone size: none wider than the screen, every control named.
	for _, p := range pages {
		w.phonePage(p)
	}
	run("log out at phone size", chromedp.Click(`//button[text()="Log out"]`), chromedp.WaitVisible(`#username`))
	w.phonePage(consolePage{name: "login"})
	run("back to desktop", chromedp.EmulateViewport(1280, 900), chromedp.WaitVisible(`#username`))
	if len(jsErrors) > 0 {
		t.Fatalf("JavaScript errors: %v", jsErrors)
	}

	// Logged out, the API gives nothing.
	resp, err := http.Get(base + "/jsonapi/Koppeltaal/Message")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("Support API without credentials: %d", resp.StatusCode)
	}
}

// supportSession is an administrator's console session used from Go: its cookie and CSRF token.
type supportSession struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	csrf   string
}

// adminLogin logs in at base as username.
func adminLogin(t *testing.T, base, username, password string) *supportSession {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := http.Post(base+admin.SessionPath, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&sess)
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "kp_session") {
			return &supportSession{t: t, base: base, cookie: c, csrf: sess.CSRF}
		}
	}
	t.Fatalf("login as %s: %d, no session cookie", username, resp.StatusCode)
	return nil
}

// do calls the Support API with the session (body: a JSON:API document or nil) and returns the status and
// the document's data (a list as {"items": [...]}).
func (s *supportSession) do(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	b := []byte{}
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, s.base+"/jsonapi/Koppeltaal"+path, bytes.NewReader(b))
	req.AddCookie(s.cookie)
	req.Header.Set("Accept", "application/vnd.api+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/vnd.api+json")
		req.Header.Set(admin.CSRFHeader, s.csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	var data map[string]any
	if len(doc.Data) > 0 && doc.Data[0] == '[' {
		var items []map[string]any
		_ = json.Unmarshal(doc.Data, &items)
		return resp.StatusCode, map[string]any{"items": items}
	}
	_ = json.Unmarshal(doc.Data, &data)
	return resp.StatusCode, data
}

// one is the single resource of a filtered list.
func (s *supportSession) one(path string) map[string]any {
	s.t.Helper()
	status, data := s.do("GET", path, nil)
	items, _ := data["items"].([]map[string]any)
	if status != 200 || len(items) != 1 {
		s.t.Fatalf("GET %s: %d, %d items", path, status, len(items))
	}
	return items[0]
}

func resourceDoc(typ, id, version string, attributes map[string]any) map[string]any {
	d := map[string]any{"type": typ, "attributes": attributes}
	if id != "" {
		d["id"], d["meta"] = id, map[string]any{"version": version}
	}
	return map[string]any{"data": d}
}

func attrOf(res map[string]any, name string) any {
	a, _ := res["attributes"].(map[string]any)
	return a[name]
}

func versionOf(res map[string]any) string {
	m, _ := res["meta"].(map[string]any)
	v, _ := m["version"].(string)
	return v
}

// walkDomainSettings: a domain made in the console gets a message setting in the console — a refused
// value is marked at its field with the server's reason, a stale version is refused as in every form —
// and the next Success of a message keeps its body, without a restart; before, the Success removed it.
func walkDomainSettings(w *walk, base string, shot func(string)) {
	t := w.t
	t.Helper()
	w.run("new domain", chromedp.Click(`//nav//a[text()="Domains"]`), chromedp.WaitVisible(`//h1[text()="Domains"]`),
		chromedp.Click(`//summary[text()="New domain"]`), chromedp.SendKeys(`input[name=name]`, "Retain"),
		chromedp.SetValue(`select[name=phase]`, "test"), chromedp.Click(`//form//button[text()="Save"]`),
		chromedp.WaitVisible(`//td/a[text()="Retain"]`))
	shot("domains")
	api := adminLogin(t, base, admin.DemoUser, admin.DemoPassword)
	for _, in := range []map[string]any{{"Username": "epd@retain", "Application": "DemoEPD", "Domain": "Retain", "Password": "epd password retain"},
		{"Username": "portal@retain", "Application": "DemoPortal", "Domain": "Retain", "Password": "portal password retain",
			"Subscriptions": []string{"CreateOrUpdatePatient"}}} {
		if status, _ := api.do("POST", "/ApplicationInstance", resourceDoc("ApplicationInstance", "", "", in)); status != 201 {
			t.Fatalf("instance %s: %d", in["Username"], status)
		}
	}
	epd := &client.Client{BaseURL: base, Username: "epd@retain", Password: "epd password retain"}
	portal := &client.Client{BaseURL: base, Username: "portal@retain", Password: "portal password retain"}
	if bodyKeptAfterSuccess(t, api, epd, portal, "retain-1") {
		t.Fatal("without message settings the body stayed after the Success")
	}

	age, keep := `input[name="MaximumMessageAgeDays:CreateOrUpdatePatient"]`, `input[name="RetainOnSuccessfulRetrieval:CreateOrUpdatePatient"]`
	w.run("a refused setting", chromedp.Click(`//td/a[text()="Retain"]`), chromedp.WaitVisible(`//h1[.="Domain Retain"]`),
		chromedp.SendKeys(age, "999"), chromedp.Click(keep), chromedp.Click(`//form[@aria-label="Domain settings"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//small[@id="err-MaximumMessageAgeDays-CreateOrUpdatePatient"][contains(., "999: want 1..56")]`),
		chromedp.WaitVisible(age+`[aria-invalid="true"][aria-describedby="err-MaximumMessageAgeDays-CreateOrUpdatePatient"]`),
		chromedp.WaitVisible(`//p[@role="alert"][.="Not saved: see the marked fields."]`))
	w.run("corrected, saved by keyboard", chromedp.SetValue(age, "14"), chromedp.Focus(age), chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(`//p[starts-with(., "Saved: the next acknowledgement")]`),
		chromedp.WaitNotPresent(`#err-MaximumMessageAgeDays-CreateOrUpdatePatient`))
	shot("domain")
	dom := api.one("/Domain?filter[Name]=Retain")
	if ms, _ := attrOf(dom, "MessageSettings").([]any); len(ms) != 1 || fmt.Sprint(ms[0]) != "map[Event:CreateOrUpdatePatient MaximumMessageAgeDays:14 RetainOnSuccessfulRetrieval:true]" {
		t.Fatalf("the domain's settings as saved in the console: %v", ms)
	}
	if !bodyKeptAfterSuccess(t, api, epd, portal, "retain-2") {
		t.Fatal("RetainOnSuccessfulRetrieval set in the console: the body went with the Success")
	}

	// Someone else changes the domain after the page was read: the console's save is refused, nothing changes.
	if status, _ := api.do("PATCH", "/Domain/"+dom["id"].(string), resourceDoc("Domain", dom["id"].(string), versionOf(dom),
		map[string]any{"DTAPPhase": "development"})); status != 200 {
		t.Fatalf("change the domain behind the page: %d", status)
	}
	w.run("a stale version", chromedp.Click(keep), chromedp.Click(`//form[@aria-label="Domain settings"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//p[@role="alert"][starts-with(., "Stale version")]`))
	if ms, _ := attrOf(api.one("/Domain?filter[Name]=Retain"), "MessageSettings").([]any); len(ms) != 1 {
		t.Fatalf("a refused save changed the settings: %v", ms)
	}
}

// walkApplicationSettings: the application made in the console gets a name, a role and a message setting
// in the console.
func walkApplicationSettings(w *walk, base string) {
	t := w.t
	t.Helper()
	w.run("application settings", chromedp.SetValue(`//form[@aria-label="Application settings"]//input[@name="name"]`, "Browser module"),
		chromedp.Click(`//form[@aria-label="Application settings"]//input[@value="ELearning"]`),
		chromedp.Click(`input[name="RetainmentRequired:CreateOrUpdateCarePlanActivityResult"]`),
		chromedp.Click(`//form[@aria-label="Application settings"]//button[text()="Save"]`),
		chromedp.WaitVisible(`//p[starts-with(., "Saved: the next acknowledgement")]`))
	app := adminLogin(t, base, admin.DemoUser, admin.DemoPassword).one("/Application?filter[Identifier]=BrowserModule")
	ms, _ := attrOf(app, "MessageSettings").([]any)
	if attrOf(app, "Name") != "Browser module" || fmt.Sprint(attrOf(app, "ApplicationRoles")) != "[ELearning]" || len(ms) != 1 ||
		fmt.Sprint(ms[0]) != "map[Event:CreateOrUpdateCarePlanActivityResult RetainmentRequired:true]" {
		t.Fatalf("the application as saved in the console: %v", app["attributes"])
	}
}

// waitClientSecret waits (3 s at most) until the Token endpoint takes secret as clientID's: with it a made-up
// code is invalid_grant (400); with another secret the client is refused (401).
func waitClientSecret(t *testing.T, base, clientID, secret string) {
	t.Helper()
	token := func(secret string) int {
		req, _ := http.NewRequest("POST", base+"/OAuth2/Koppeltaal/Token", strings.NewReader("grant_type=authorization_code&code=made-up"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(3 * time.Second); token(secret) != 400; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client secret set in the console is not taken by the Token endpoint (%d)", token(secret))
		}
	}
	if got := token(secret + "x"); got != 401 {
		t.Fatalf("another secret at the Token endpoint: %d, want 401", got)
	}
}

// bodyKeptAfterSuccess posts a patient as sender, has receiver claim it and acknowledge it with Success,
// and reports whether the message's body is still there (read through the Support API).
func bodyKeptAfterSuccess(t *testing.T, api *supportSession, sender, receiver *client.Client, patient string) bool {
	t.Helper()
	ctx := context.Background()
	msg, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: patient, Resources: []client.Resource{{
		Type: "Patient", ID: patient, Body: map[string]any{"name": []any{map[string]any{"text": "Rita Retain"}}}}}},
		client.BuildOptions{Domain: "Retain", ResourceBase: "https://epd.example/fhir/Koppeltaal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.PostMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	m, err := receiver.Claim(ctx, client.ClaimFilter{})
	if err != nil || m == nil {
		t.Fatalf("claim: %v", err)
	}
	if err := receiver.Ack(ctx, m, "Success", ""); err != nil {
		t.Fatal(err)
	}
	found := api.one("/Message?filter[Patient]=" + url.QueryEscape(client.PatientURL("https://epd.example/fhir/Koppeltaal", patient)))
	_, one := api.do("GET", "/Message/"+found["id"].(string), nil)
	x, _ := attrOf(one, "BodyXML").(string)
	return x != ""
}

// a11yCheck lists the visible form controls and buttons of the page that have no accessible name (no
// label around or for them, no aria-label, no text), and a page without a heading.
const a11yCheck = `(() => {
  const out = [];
  const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    const named = el.closest("label") || (el.id && document.querySelector("label[for='" + el.id + "']")) ||
      el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) out.push(el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) out.push(el.outerHTML.slice(0, 80));
  }
  if (!document.querySelector("h1")) out.push("no h1");
  return out;
})()`

// seedDeadLetter parks a dead letter of route browser-route in the SQLite store at path (before serve opens it).
func seedDeadLetter(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.PutDeadLetter(context.Background(), store.DeadLetter{ID: "browser-dl", Route: "browser-route", Stage: "rules", RecordKey: "row-7",
			Record: `{"key":"row-7","fields":{"bsn":"bsn-not-a-number"}}`, Reason: "BSN is not a number", Attempts: 1, Revision: "0123456789abcdef",
			CreatedAt: time.Now().UnixMicro()})
	}); err != nil {
		t.Fatal(err)
	}
}

// walk is one browser walk through the console: its steps fail the test with the page, the JavaScript
// errors and the server's log.
type walk struct {
	t        *testing.T
	ctx      context.Context // the whole walk's deadline
	bctx     context.Context // the browser (no deadline: for the failure report)
	stderr   fmt.Stringer
	jsErrors *[]string
}

func (w *walk) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second) // a step that cannot finish fails on its own
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(w.bctx, chromedp.Text("body"))
		w.t.Fatalf("%s: %v\nJS errors: %v\npage:\n%s\nserver log:\n%s", what, err, *w.jsErrors, body, w.stderr)
	}
}

// shot checks the page for what keyboard and screen-reader users need (every field, select and button
// named; the page's heading) and, with KOPPELPOORT_CONSOLE_SCREENSHOTS, saves a full-page screenshot.
func (w *walk) shot(name string) {
	w.t.Helper()
	unnamed, err := chromedp.Run(w.ctx, chromedp.Evaluate[[]string](a11yCheck))
	if err != nil || len(unnamed) > 0 {
		w.t.Fatalf("page %s: controls without an accessible name: %v (%v)", name, unnamed, err)
	}
	if screenshotDir() == "" {
		return
	}
	w.run("settle "+name, chromedp.Sleep(400*time.Millisecond))
	png, err := chromedp.Run(w.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir(), name+".png"), png, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// phoneWidth is the width of the phone-sized screen every page is shown at (an iPhone SE, the narrowest in use).
const phoneWidth = 375

// consolePage is a page of the console as the walk saw it: its address (the hash) and its heading, so it
// can be shown again; name is its screenshot's.
type consolePage struct{ name, hash, heading string }

// here is the page the browser shows now.
func (w *walk) here(name string) consolePage {
	w.t.Helper()
	p, err := chromedp.Run(w.ctx, chromedp.Evaluate[[]string](`[location.hash, document.querySelector("main h1").textContent]`))
	if err != nil || len(p) != 2 {
		w.t.Fatalf("page %s: %v %v", name, p, err)
	}
	if p[0] == "" {
		p[0] = "#/" // the dashboard, where the login leaves the browser
	}
	return consolePage{name: name, hash: p[0], heading: p[1]}
}

// phonePage shows p again (at the phone size set), with its forms opened, and fails when the page is wider
// than the screen or a control has no name; its screenshot is <name>-phone.png. Without a hash it is the
// page shown now.
func (w *walk) phonePage(p consolePage) {
	w.t.Helper()
	if p.hash != "" {
		w.run("phone: "+p.name, chromedp.Evaluate[chromedp.Void](`location.hash = `+strconv.Quote(p.hash)),
			chromedp.WaitVisible(`//main//h1[.=`+xpathString(p.heading)+`]`), chromedp.WaitNotPresent(`main [aria-busy="true"]`))
	}
	if p.name == "message-xml" {
		w.run("phone: XML body", chromedp.Click(`//button[text()="XML"]`), chromedp.WaitVisible(`//pre[contains(., "<feed")]`))
	}
	wide, err := chromedp.Run(w.ctx, chromedp.Evaluate[[]string](`(() => {
		document.querySelectorAll("main details").forEach((d) => { d.open = true; });
		if (document.documentElement.scrollWidth <= innerWidth) return [];
		return [String(document.documentElement.scrollWidth), ...[...document.querySelectorAll("body *")]
			.filter((el) => el.getBoundingClientRect().right > innerWidth + 1).slice(0, 5).map((el) => el.outerHTML.slice(0, 100))];
	})()`))
	if err != nil || len(wide) > 0 {
		w.t.Fatalf("page %s at %d px: wider than the screen (scrollWidth and the widest elements: %v) %v", p.name, phoneWidth, wide, err)
	}
	w.shot(p.name + "-phone")
}

// xpathString quotes s as an XPath string literal.
func xpathString(s string) string {
	if !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "concat(\"" + strings.ReplaceAll(s, `"`, `", '"', "`) + "\")"
}
