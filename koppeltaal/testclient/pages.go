package testclient

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// LaunchPath is where the module takes web launches: the application's launch_url is <root>/launch.
const LaunchPath = "/launch"

// Handler serves the module's pages in a browser: LaunchPath (the launch URL: it reads the Conformance of
// iss and sends the browser to Authorize), the path of the RedirectURI (it redeems the code, works through
// the patient's messages and shows what it did) and / (what it is).
func (m *Module) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LaunchPath, m.launchPage)
	cb := "/callback"
	if u, err := url.Parse(m.cfg.RedirectURI); err == nil && u.Path != "" {
		cb = u.Path
	}
	mux.HandleFunc("GET "+cb, m.callbackPage)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		m.render(w, http.StatusOK, page{Title: "Koppelpoort test client", Text: "A simulated Koppeltaal module (" + m.cfg.ClientID +
			"). Start it from a portal: GET /OAuth2/Koppeltaal/Launch?client_id=" + m.cfg.ClientID + "&patient=… with the portal's credentials, then open the Location."})
	})
	return mux
}

func (m *Module) launchPage(w http.ResponseWriter, r *http.Request) {
	iss, launch := r.URL.Query().Get("iss"), r.URL.Query().Get("launch")
	if iss == "" || launch == "" {
		m.render(w, http.StatusBadRequest, page{Title: "Not launched", Text: "The launch URL needs iss and launch (Launch puts them there)."})
		return
	}
	ep, err := m.discover(r.Context(), iss)
	if err != nil {
		m.render(w, http.StatusBadGateway, page{Title: "Launch failed", Text: err.Error()})
		return
	}
	state := randomState()
	m.mu.Lock()
	m.pending[state] = iss
	m.mu.Unlock()
	http.Redirect(w, r, m.authorizeURL(ep, launch, state), http.StatusFound)
}

func (m *Module) callbackPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m.mu.Lock()
	iss, ok := m.pending[q.Get("state")]
	delete(m.pending, q.Get("state"))
	m.mu.Unlock()
	switch {
	case q.Get("error") != "":
		m.render(w, http.StatusForbidden, page{Title: "Not authorized", Text: q.Get("error") + ": " + q.Get("error_description")})
		return
	case !ok || q.Get("code") == "":
		m.render(w, http.StatusBadRequest, page{Title: "Unknown sign-in", Text: "This callback does not belong to a launch of this module."})
		return
	}
	ep, err := m.discover(r.Context(), iss)
	var s *Session
	if err == nil {
		s, err = m.session(r.Context(), iss, ep, q.Get("code"))
	}
	var done []Handled
	if err == nil {
		done, err = s.Work(r.Context())
	}
	p := page{Title: "Koppelpoort test client", Handled: done}
	if s != nil {
		p.Text = "Signed in for patient " + s.Token.Patient + " in domain " + s.Token.Domain + "."
	}
	if err != nil {
		p.Error = err.Error()
	}
	if len(done) == 0 && err == nil {
		p.Text += " Nothing was waiting for this patient."
	}
	m.render(w, http.StatusOK, p)
}

type page struct {
	Title, Text, Error string
	Handled            []Handled
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}li{margin:.3em 0}.err{color:#a00}</style></head>
<body><h1>{{.Title}}</h1><p id="text">{{.Text}}</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<ul id="handled">{{range .Handled}}<li data-ack="{{.Ack}}">{{.Event}} {{.Identifier}}: {{range .Posted}}{{.}}; {{end}}{{range .Refused}}refused: {{.}}; {{end}}acknowledged {{.Ack}}{{if .Exception}} ({{.Exception}}){{end}}</li>{{end}}</ul>
</body></html>`))

func (m *Module) render(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

// Watch works through the module's own mailbox with its instance credentials (HTTP Basic), as a
// server-side module does: it claims every message, handles it, and looks again every interval until
// ctx ends.
func (m *Module) Watch(ctx context.Context, interval time.Duration) error {
	api := &client.Client{BaseURL: strings.TrimRight(m.cfg.Server, "/"), Username: m.cfg.Username, Password: m.cfg.Password,
		Format: m.cfg.Format, HTTP: m.cfg.HTTP}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := m.drain(ctx, api, m.cfg.Domain); err != nil && ctx.Err() == nil {
			m.log.Warn("testclient: working through the mailbox failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
