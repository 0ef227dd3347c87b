package supportapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/store"
)

// ActivityDefinition (SPEC.md §3.7, §11.1): created and changed through
// activity.Registry.Seed, the configuration file's path, so every change
// publishes CreateOrUpdateActivityDefinition to the subscribers. No DELETE:
// PATCH IsActive=false or IsArchived=true.
func (a *API) activityResource() Resource {
	return Resource{Type: "ActivityDefinition", List: a.listActivities, Get: a.getActivity, Create: a.createActivity,
		Patch: a.patchActivity, NotAllowed: map[string]string{"DELETE": "PATCH IsActive=false (or IsArchived=true)"}}
}

// fromFile reports whether the configuration file declares the definition (then it is read-only here).
func (a *API) fromFile(domain, identifier string) bool {
	for _, d := range a.kt.ActivityDefinitions {
		if d.Domain == domain && d.Identifier == identifier {
			return true
		}
	}
	return false
}

func (a *API) activityOut(d activity.Definition, domain string) (jsonapi.Resource, error) {
	c, err := activity.ConfigFrom(d, domain)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	by := store.ManagedByAPI
	if a.fromFile(domain, d.Identifier) {
		by = store.ManagedByConfig
	}
	subs := []map[string]any{}
	for _, s := range c.SubActivities {
		subs = append(subs, map[string]any{"Identifier": s.Identifier, "Name": s.Name, "Description": s.Description, "IsActive": !s.Inactive})
	}
	return jsonapi.Resource{Type: "ActivityDefinition", ID: strconv.FormatInt(d.ID, 10), Meta: map[string]any{"version": d.Version},
		Attributes: map[string]any{"Identifier": d.Identifier, "Domain": domain, "Application": d.Application, "Name": c.Name,
			"Description": c.Description, "ActivityType": c.Kind, "DefaultPerformer": c.DefaultPerformer, "LaunchType": c.LaunchType,
			"IsActive": d.IsActive, "IsArchived": d.IsArchived, "IsDomainSpecific": d.IsDomainSpecific, "SubActivities": subs,
			"ManagedBy": by, "UpdatedAt": Time(d.UpdatedAt)}}, nil
}

func (a *API) needActivities() error {
	if a.acts == nil {
		return jsonapi.Errorf(http.StatusNotImplemented, "Not available", "this server runs no Koppeltaal domains")
	}
	return nil
}

// activitiesSeen lists the definitions of the domains the caller administers,
// and those naming one of its applications.
func (a *API) activitiesSeen(ctx context.Context) ([]activity.Definition, *view, error) {
	if err := a.needActivities(); err != nil {
		return nil, nil, err
	}
	var v *view
	if err := a.withView(ctx, func(_ *store.Tx, vv *view) error { v = vv; return nil }); err != nil {
		return nil, nil, err
	}
	var ids []int64
	for _, d := range sortedDomains(v) {
		if v.seesDomain(d.ID) {
			ids = append(ids, d.ID)
		}
	}
	all, err := a.acts.InDomains(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	var out []activity.Definition
	for _, d := range all {
		if v.scope.HasDomain(d.DomainID) || a.ownsApp(v, d.Application) {
			out = append(out, d)
		}
	}
	return out, v, nil
}

func (a *API) ownsApp(v *view, ident string) bool {
	for id, app := range v.apps {
		if app.Ident == ident && v.scope.HasApplication(id) {
			return true
		}
	}
	return false
}

func (a *API) listActivities(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	defs, v, err := a.activitiesSeen(ctx)
	if err != nil {
		return nil, err
	}
	var out []jsonapi.Resource
	for _, d := range defs {
		r, err := a.activityOut(d, v.domains[d.DomainID].Name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (a *API) getActivity(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	defs, v, err := a.activitiesSeen(ctx)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	for _, d := range defs {
		if d.ID == n {
			return a.activityOut(d, v.domains[d.DomainID].Name)
		}
	}
	return jsonapi.Resource{}, jsonapi.ErrNotFound
}

var activityWritable = []string{"Name", "Description", "ActivityType", "DefaultPerformer", "LaunchType", "IsActive", "IsArchived", "IsDomainSpecific",
	"SubActivities"}

// subActivityIn is one element of SubActivities as written (the file's sub_activities[]).
type subActivityIn struct {
	Identifier  string
	Name        string
	Description string
	IsActive    *bool // absent: active
}

// readSubActivities decodes SubActivities strictly (an unknown member is an error) into c; a PATCH
// replaces the whole list.
func readSubActivities(at *Attrs, c *koppeltaal.ActivityDefinitionConfig) {
	raw, ok := at.raw["SubActivities"]
	if !ok {
		return
	}
	var in []subActivityIn
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		at.Fail(400, "SubActivities", "SubActivities: %v (want [{\"Identifier\", \"Name\", \"Description\", \"IsActive\"}])", err)
		return
	}
	c.SubActivities = nil
	for _, s := range in {
		c.SubActivities = append(c.SubActivities, koppeltaal.SubActivityConfig{Identifier: s.Identifier, Name: s.Name,
			Description: s.Description, Inactive: s.IsActive != nil && !*s.IsActive})
	}
}

func readActivityAttrs(at *Attrs, c *koppeltaal.ActivityDefinitionConfig) {
	at.Get("Name", &c.Name)
	at.Get("Description", &c.Description)
	at.Get("ActivityType", &c.Kind)
	at.Get("DefaultPerformer", &c.DefaultPerformer)
	at.Get("LaunchType", &c.LaunchType)
	active, archived := !c.Inactive, c.Archived
	at.Get("IsActive", &active)
	at.Get("IsArchived", &archived)
	at.Get("IsDomainSpecific", &c.DomainSpecific)
	c.Inactive, c.Archived = !active, archived
	readSubActivities(at, c)
}

// seed validates one definition like the file's and writes it through Registry.Seed.
func (a *API) seed(ctx context.Context, c koppeltaal.ActivityDefinitionConfig, verb string, domainID int64) (activity.Definition, error) {
	cfg := koppeltaal.Config{Domains: []koppeltaal.DomainConfig{{Name: c.Domain}}, Applications: []koppeltaal.ApplicationConfig{{ID: c.Application}},
		ActivityDefinitions: []koppeltaal.ActivityDefinitionConfig{c}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return activity.Definition{}, jsonapi.Errorf(400, "Invalid activity definition", "%v", err)
	}
	if _, err := a.acts.Seed(ctx, cfg, a.fhirBase); err != nil {
		return activity.Definition{}, err
	}
	var d activity.Definition
	err := a.st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &d, "SELECT id FROM activity_definitions WHERE domain_id = ? AND identifier = ?", domainID, c.Identifier)
	})
	if err != nil {
		return d, err
	}
	if d, err = a.acts.ByID(ctx, d.ID); err != nil {
		return d, err
	}
	err = a.st.Update(ctx, func(tx *store.Tx) error {
		return a.Audit(ctx, tx, verb, fmt.Sprintf("ActivityDefinition/%d", d.ID), domainID, c.Identifier)
	})
	return d, err
}

func (a *API) createActivity(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	if err := a.needActivities(); err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, append([]string{"Identifier", "Domain", "Application"}, activityWritable...), nil)
	var c koppeltaal.ActivityDefinitionConfig
	at.Get("Identifier", &c.Identifier)
	at.Get("Domain", &c.Domain)
	at.Get("Application", &c.Application)
	readActivityAttrs(at, &c)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	var dom store.Domain
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		var err error
		dom, err = tx.DomainByName(ctx, c.Domain)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !v.seesDomain(dom.ID)) {
			return jsonapi.AttrError(400, "Domain", "Unknown domain", "domain %q does not exist", c.Domain)
		} else if err != nil {
			return err
		}
		if !v.scope.HasDomain(dom.ID) && !a.ownsApp(v, c.Application) {
			return Forbidden("only the domain's administrators or the application's create its activity definitions")
		}
		if _, err := tx.ApplicationByIdent(ctx, c.Application); err != nil {
			return jsonapi.AttrError(400, "Application", "Unknown application", "application %q does not exist", c.Application)
		}
		var n int
		if err := tx.Get(ctx, &n, "SELECT COUNT(*) FROM activity_definitions WHERE domain_id = ? AND identifier = ?", dom.ID, c.Identifier); err != nil {
			return err
		}
		if n > 0 {
			return jsonapi.AttrError(409, "Identifier", "Conflict", "domain %q already has an activity definition %q", c.Domain, c.Identifier)
		}
		return nil
	})
	if err != nil {
		return jsonapi.Resource{}, err
	}
	d, err := a.seed(ctx, c, "create", dom.ID)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	return a.activityOut(d, dom.Name)
}

func (a *API) patchActivity(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	defs, v, err := a.activitiesSeen(ctx)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	for _, d := range defs {
		if d.ID != n {
			continue
		}
		dom := v.domains[d.DomainID]
		if a.fromFile(dom.Name, d.Identifier) {
			return jsonapi.Resource{}, ManagedByFile(fmt.Sprintf("activity definition %q", d.Identifier))
		}
		if req.VersionString() != d.Version {
			return jsonapi.Resource{}, store.ErrStaleVersion
		}
		at := NewAttrs(req, activityWritable, []string{"Identifier", "Domain", "Application", "ManagedBy", "UpdatedAt"})
		c, err := activity.ConfigFrom(d, dom.Name)
		if err != nil {
			return jsonapi.Resource{}, err
		}
		readActivityAttrs(at, &c)
		if err := at.Err(); err != nil {
			return jsonapi.Resource{}, err
		}
		nd, err := a.seed(ctx, c, "update", d.DomainID)
		if err != nil {
			return jsonapi.Resource{}, err
		}
		return a.activityOut(nd, dom.Name)
	}
	return jsonapi.Resource{}, jsonapi.ErrNotFound
}
