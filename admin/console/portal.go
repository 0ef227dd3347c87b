package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/store"
)

// Portal is what the Test Portal needs of the Koppeltaal server: posting
// messages as a portal instance, its activity definitions, and launches.
// Everything runs in process, through the same code as the HTTP API.
type Portal struct {
	Service    *koppeltaal.Service
	Activities *activity.Registry
	OAuth      *oauth.Server
	// PublicURL is the server's scheme://host (launch iss, FHIR base); empty: from the request.
	PublicURL string
}

// The Test Portal (SPEC.md §15.3, the old server's tool to test a module):
// in a domain that is not in production, a system or domain administrator
// creates a test patient and practitioner and a CarePlan with an activity from
// the domain's definitions, as one of the domain's portal instances, launches
// the module as the patient or the practitioner, and watches the messages that
// follow (the page polls the Support API for the patient's messages).
func (c *Console) mountPortal(r chi.Router) {
	r.Get("/portal", c.portalSetup)
	r.Post("/portal/careplan", c.portalCarePlan)
	r.Post("/portal/launch", c.portalLaunch)
}

// PortalDomain is a domain where the Test Portal may run, with what it can use there.
type PortalDomain struct {
	Name       string           `json:"name"`
	Phase      string           `json:"phase"`
	Portals    []string         `json:"portals"` // instances that can act as the portal
	Activities []PortalActivity `json:"activities"`
}

// PortalActivity is a launchable ActivityDefinition.
type PortalActivity struct {
	Identifier  string `json:"identifier"`
	Name        string `json:"name"`
	Application string `json:"application"`
	Kind        string `json:"kind"`
	LaunchType  string `json:"launch_type"`
	Performer   string `json:"performer"`
}

func (c *Console) portalError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// portalDomains lists the non-production domains the caller administers.
func (c *Console) portalDomains(ctx context.Context) ([]store.Domain, []store.Instance, error) {
	p := admin.PrincipalFrom(ctx)
	var ds []store.Domain
	var ins []store.Instance
	err := c.st.View(ctx, func(tx *store.Tx) error {
		all, insts, err := c.api.Visible(ctx, tx)
		if err != nil {
			return err
		}
		for _, d := range all {
			if d.DTAPPhase != store.DTAPProduction && p.Scope().HasDomain(d.ID) {
				ds = append(ds, d)
			}
		}
		ins = insts
		return nil
	})
	return ds, ins, err
}

func (c *Console) portalSetup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if c.portal.Service == nil {
		c.portalError(w, http.StatusNotImplemented, "the Test Portal needs the Koppeltaal server (a koppeltaal section)")
		return
	}
	ds, ins, err := c.portalDomains(ctx)
	if err != nil {
		c.portalError(w, http.StatusInternalServerError, "read domains: %v", err)
		return
	}
	out := []PortalDomain{}
	for _, d := range ds {
		pd := PortalDomain{Name: d.Name, Phase: d.DTAPPhase, Portals: []string{}, Activities: []PortalActivity{}}
		var caller *koppeltaal.Caller
		for _, in := range ins {
			if in.DomainID == d.ID && !in.Disabled() {
				pd.Portals = append(pd.Portals, in.Username)
				if caller == nil {
					caller = &koppeltaal.Caller{Instance: in}
				}
			}
		}
		if caller != nil && c.portal.Activities != nil {
			defs, err := c.portal.Activities.List(ctx, caller, false)
			if err != nil {
				c.portalError(w, http.StatusInternalServerError, "activity definitions of %s: %v", d.Name, err)
				return
			}
			for _, def := range defs {
				if def.IsActive {
					pd.Activities = append(pd.Activities, describe(def))
				}
			}
		}
		out = append(out, pd)
	}
	writeJSON(w, http.StatusOK, map[string]any{"domains": out})
}

// describe reads the name, kind, launch type and performer of a stored definition.
func describe(d activity.Definition) PortalActivity {
	pa := PortalActivity{Identifier: d.Identifier, Application: d.Application}
	if r, err := dstu1.ParseResource(d.Content, dstu1.FormatJSON); err == nil {
		pa.Name = r.Extension(activity.ExtActivityName).ExtensionValue().Str()
		pa.Kind = r.Extension(activity.ExtKind).ExtensionValue().Str("code")
		pa.LaunchType = r.Extension(activity.ExtLaunchType).ExtensionValue().Str()
		pa.Performer = r.Extension(activity.ExtDefaultPerf).ExtensionValue().Str("code")
	}
	return pa
}

// portalCaller authenticates nothing: it finds the named instance of a
// Test-Portal domain the administrator may use, and acts as it.
func (c *Console) portalCaller(ctx context.Context, domain, username string) (*koppeltaal.Caller, error) {
	ds, ins, err := c.portalDomains(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.Name != domain {
			continue
		}
		for _, in := range ins {
			if in.DomainID == d.ID && in.Username == username && !in.Disabled() {
				return &koppeltaal.Caller{Instance: in}, nil
			}
		}
		return nil, fmt.Errorf("%q is not an active application instance of domain %q", username, domain)
	}
	return nil, fmt.Errorf("domain %q is not a test domain you administer (the Test Portal runs outside production only)", domain)
}

func readJSON(r *http.Request, dst any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

func (c *Console) root(r *http.Request) string {
	if c.portal.PublicURL != "" {
		return strings.TrimSuffix(c.portal.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// CarePlanRequest asks the Test Portal for a test patient, practitioner and CarePlan.
type CarePlanRequest struct {
	Domain       string `json:"domain"`
	Portal       string `json:"portal"` // the instance that posts
	PatientName  string `json:"patient_name"`
	Practitioner string `json:"practitioner_name"`
	Activity     string `json:"activity"` // ActivityDefinition identifier
}

// CarePlanResult is what was posted.
type CarePlanResult struct {
	Patient      string   `json:"patient"`
	Practitioner string   `json:"practitioner"`
	CarePlan     string   `json:"careplan"`
	ActivityID   string   `json:"activity_id"` // the CarePlan activity identifier a launch names
	Application  string   `json:"application"`
	LaunchType   string   `json:"launch_type"`
	Messages     []string `json:"messages"` // MessageHeader identifiers
}

func (c *Console) portalCarePlan(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req CarePlanRequest
	if err := readJSON(r, &req); err != nil {
		c.portalError(w, http.StatusBadRequest, "send domain, portal, patient_name, practitioner_name and activity: %v", err)
		return
	}
	caller, err := c.portalCaller(ctx, req.Domain, req.Portal)
	if err != nil {
		c.portalError(w, http.StatusForbidden, "%v", err)
		return
	}
	var def *PortalActivity
	if defs, err := c.portal.Activities.List(ctx, caller, false); err == nil {
		for _, d := range defs {
			if d.Identifier == req.Activity && d.IsActive {
				pa := describe(d)
				def = &pa
			}
		}
	}
	if def == nil {
		c.portalError(w, http.StatusBadRequest, "activity %q is not an active activity definition of domain %q", req.Activity, req.Domain)
		return
	}
	if strings.TrimSpace(req.PatientName) == "" {
		req.PatientName = "Test Patient"
	}
	if strings.TrimSpace(req.Practitioner) == "" {
		req.Practitioner = "Test Practitioner"
	}
	root := c.root(r)
	base := root + "/testportal/" + req.Domain + "/fhir/Koppeltaal" // the portal's resource base
	tag := strings.Split(uuid.NewString(), "-")[0]
	patID, pracID, cpID := "tp-patient-"+tag, "tp-practitioner-"+tag, "tp-careplan-"+tag
	res := CarePlanResult{Patient: client.ResourceURL(base, "Patient", patID), Practitioner: client.ResourceURL(base, "Practitioner", pracID),
		CarePlan: client.ResourceURL(base, "CarePlan", cpID), Application: def.Application, LaunchType: def.LaunchType}
	res.ActivityID = res.CarePlan + "#act-1"
	name := func(text string) []any { return []any{map[string]any{"use": "official", "text": text}} }
	ref := func(u string) map[string]any { return map[string]any{"reference": u} }
	kt := func(path string) string { return dstu1.KoppeltaalBase + path }
	performer := res.Patient
	if def.Performer == "Practitioner" {
		performer = res.Practitioner
	}
	careplan := map[string]any{
		"status": "active", "patient": ref(res.Patient),
		"participant": []any{map[string]any{"role": map[string]any{"coding": []any{map[string]any{"system": kt("CarePlanParticipantRole"), "code": "Requester", "display": "Requester"}}},
			"member": ref(res.Practitioner)}},
		"activity": []any{map[string]any{"id": "act-1",
			"extension": []any{
				map[string]any{"url": kt("CarePlan#ActivityIdentifier"), "valueString": res.ActivityID},
				map[string]any{"url": kt("CarePlan#ActivityDefinition"), "valueString": def.Identifier},
				map[string]any{"url": kt("CarePlan#ActivityKind"), "valueCoding": map[string]any{"system": kt("ActivityKind"), "code": def.Kind, "display": def.Kind}},
				map[string]any{"url": kt("CarePlan#StartDate"), "valueDateTime": time.Now().UTC().Format(time.RFC3339)},
				map[string]any{"url": kt("CarePlan#ActivityStatus"), "valueCoding": map[string]any{"system": kt("CarePlanActivityStatus"), "code": "Available", "display": "Available"}},
			},
			"prohibited": false, "simple": map[string]any{"category": "procedure", "performer": []any{ref(performer)}}}},
	}
	msgs := []client.Message{
		{Event: "CreateOrUpdatePatient", Patient: res.Patient, Resources: []client.Resource{{Type: "Patient", ID: patID,
			Body: map[string]any{"name": name(req.PatientName), "active": true}}}},
		{Event: "CreateOrUpdatePractitioner", Resources: []client.Resource{{Type: "Practitioner", ID: pracID,
			Body: map[string]any{"name": name(req.Practitioner)[0]}}}},
		{Event: "CreateOrUpdateCarePlan", Patient: res.Patient, Resources: []client.Resource{{Type: "CarePlan", ID: cpID, Body: careplan}}},
	}
	for _, m := range msgs {
		b, err := client.BuildMessage(m, client.BuildOptions{Domain: req.Domain, ResourceBase: base, SourceName: "Koppelpoort Test Portal",
			SourceSoftware: "Koppelpoort console"})
		if err != nil {
			c.portalError(w, http.StatusInternalServerError, "build %s: %v", m.Event, err)
			return
		}
		if _, err := c.portal.Service.Post(ctx, caller, koppeltaal.EncodeBundle(b, dstu1.FormatJSON), dstu1.FormatJSON, root+api.Prefix); err != nil {
			var ke *koppeltaal.Error
			if errors.As(err, &ke) {
				c.portalError(w, api.HTTPStatus(ke.Kind), "%s refused: %v", m.Event, ke)
				return
			}
			c.portalError(w, http.StatusInternalServerError, "post %s: %v", m.Event, err)
			return
		}
		res.Messages = append(res.Messages, b.MessageHeader().Identifier())
	}
	c.audit(ctx, "create", "TestPortal/"+req.Domain, caller.DomainID, "CarePlan "+res.CarePlan, res.Patient)
	writeJSON(w, http.StatusOK, res)
}

// LaunchRequest asks the Test Portal to launch a module.
type LaunchRequest struct {
	Domain      string `json:"domain"`
	Portal      string `json:"portal"`
	Application string `json:"application"`
	Patient     string `json:"patient"`
	User        string `json:"user"` // the patient or the practitioner
	Activity    string `json:"activity_id"`
	Kind        string `json:"kind"` // web or mobile
}

func (c *Console) portalLaunch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req LaunchRequest
	if err := readJSON(r, &req); err != nil {
		c.portalError(w, http.StatusBadRequest, "send domain, portal, application, patient, user, activity_id and kind: %v", err)
		return
	}
	caller, err := c.portalCaller(ctx, req.Domain, req.Portal)
	if err != nil {
		c.portalError(w, http.StatusForbidden, "%v", err)
		return
	}
	kind := oauth.KindWeb
	if req.Kind == "mobile" {
		kind = oauth.KindMobile
	}
	res, err := c.portal.OAuth.StartLaunch(ctx, caller, oauth.LaunchRequest{Kind: kind, ClientID: req.Application,
		Patient: req.Patient, User: req.User, Resource: req.Activity}, c.root(r))
	var le *oauth.LaunchError
	if errors.As(err, &le) {
		c.portalError(w, le.Status, "%s", le.Description)
		return
	}
	if err != nil {
		c.portalError(w, http.StatusInternalServerError, "launch: %v", err)
		return
	}
	c.audit(ctx, "launch", "TestPortal/"+req.Domain, caller.DomainID, req.Application+" as "+req.User, req.Patient)
	writeJSON(w, http.StatusOK, map[string]any{"location": res.Location, "activation_code": res.ActivationCode, "expires_in_days": res.ExpiresInDays})
}

// audit records a Test Portal action about patient (the messages it posted carry their own records).
func (c *Console) audit(ctx context.Context, verb, object string, domainID int64, detail, patient string) {
	if err := c.st.Update(ctx, func(tx *store.Tx) error {
		return c.api.AuditPatient(ctx, tx, verb, object, domainID, detail, patient)
	}); err != nil {
		c.log.Warn("console: audit", "err", err)
	}
}
