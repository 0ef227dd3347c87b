package supportapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/store"
)

// authorizationResource is Authorization (SPEC.md §8.1, §11.1): the OAuth grants of launched
// applications — one per exchanged authorization code with the token chain its refreshes made. Revoke =
// PATCH GrantStatus "Revoked": every token of the chain is refused from the next request on, in every
// process sharing the database (the Bearer check and the refresh read the token row; nothing is cached).
func (a *API) authorizationResource() Resource {
	return Resource{Type: "Authorization", Query: a.queryAuthorizations, Get: a.getAuthorization, Patch: a.patchAuthorization,
		NotAllowed: map[string]string{"POST": "grants are made by the OAuth launch (Launch, Authorize, Token)",
			"DELETE": `PATCH GrantStatus "Revoked"`}}
}

// authorizationFilters are the filters Authorization takes (eq).
var authorizationFilters = []string{"RegisteredClient", "ApplicationInstance", "Patient", "Domain"}

func authorizationOut(g store.OAuthGrant, v *view, now int64) jsonapi.Resource {
	in := instanceOf(v, g.InstanceID)
	kind := "Web"
	if g.LaunchKind == "mobile" {
		kind = "Mobile"
	}
	revoked := ""
	if g.RevokedAt.Valid {
		revoked = Time(g.RevokedAt.Int64)
	}
	id := strconv.FormatInt(g.ID(), 10)
	return jsonapi.Resource{Type: "Authorization", ID: id, Meta: VersionMeta(g.Version()),
		Attributes: map[string]any{"AuthorizationNumber": id, "RegisteredClient": g.ClientID, "ApplicationInstance": in.Username,
			"Domain": v.domains[in.DomainID].Name, "LaunchType": kind, "RedirectUrl": g.RedirectURI, "GrantedScopes": g.Scope,
			"GrantStatus": g.Status(now), "AuthorizedAt": Time(g.AuthorizedAt), "ExpiresAt": Time(g.ExpiresAt()), "RevokedAt": revoked,
			"Patient": g.Patient, "User": g.User, "Resource": g.Resource, "Tokens": g.Tokens},
		Relationships: map[string]jsonapi.Relationship{"applicationInstance": jsonapi.ToOne("ApplicationInstance", strconv.FormatInt(g.InstanceID, 10))}}
}

func instanceOf(v *view, id int64) store.Instance {
	for _, in := range v.insts {
		if in.ID == id {
			return in
		}
	}
	return store.Instance{}
}

// grantScope is the instances whose grants the caller sees (nil: all).
func grantScope(v *view) []int64 {
	if v.scope.All {
		return nil
	}
	ids := []int64{}
	for _, in := range v.insts {
		if v.scope.HasInstance(in.DomainID, in.ApplicationID) {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// grantFilter turns the JSON:API filters into a store filter within the caller's scope.
func grantFilter(v *view, q jsonapi.Query) (store.GrantFilter, error) {
	f := store.GrantFilter{InstanceIDs: grantScope(v), Limit: q.Size, Offset: q.Offset()}
	var errs jsonapi.Errors
	if q.Search != "" || len(q.Sort) > 0 {
		errs = append(errs, jsonapi.Error{Status: "400", Title: "Invalid query parameter",
			Detail: "Authorization takes filters, not search or sort (newest first)", Source: &jsonapi.ErrorSource{Parameter: "search"}})
	}
	keep := func(ok func(store.Instance) bool) {
		var ids []int64
		for _, in := range v.insts {
			if ok(in) && (f.InstanceIDs == nil || slices.Contains(f.InstanceIDs, in.ID)) {
				ids = append(ids, in.ID)
			}
		}
		f.InstanceIDs = append([]int64{}, ids...)
	}
	for _, fl := range q.Filters {
		param := "filter[" + fl.Attr + "]"
		if !contains(authorizationFilters, fl.Attr) || fl.Op != "eq" || len(fl.Values) != 1 {
			errs = append(errs, jsonapi.Error{Status: "400", Title: "Invalid filter", Source: &jsonapi.ErrorSource{Parameter: param},
				Detail: "Authorization filters (eq, one value): RegisteredClient, ApplicationInstance (username), Patient, Domain"})
			continue
		}
		val := fl.Values[0]
		switch fl.Attr {
		case "RegisteredClient":
			f.ClientID = val
		case "Patient":
			f.Patient = val
		case "ApplicationInstance":
			keep(func(in store.Instance) bool { return in.Username == val })
		case "Domain":
			keep(func(in store.Instance) bool { return v.domains[in.DomainID].Name == val })
		}
	}
	if len(errs) > 0 {
		return f, errs
	}
	return f, nil
}

func (a *API) queryAuthorizations(ctx context.Context, _ *http.Request, q jsonapi.Query) ([]jsonapi.Resource, int, bool, error) {
	var out []jsonapi.Resource
	var total int
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		f, err := grantFilter(v, q)
		if err != nil {
			return err
		}
		gs, n, err := tx.OAuthGrants(ctx, f)
		if err != nil {
			return err
		}
		total = n
		now := time.Now().UnixMicro()
		for _, g := range gs {
			out = append(out, authorizationOut(g, v, now))
		}
		a.auditSearch(ctx, "Authorization", len(gs), func(i int) (string, int64) { return gs[i].Patient, instanceOf(v, gs[i].InstanceID).DomainID })
		return nil
	})
	return out, total, q.Offset()+len(out) < total, err
}

// grantInScope reads grant id if the caller sees it (ErrNotFound otherwise).
func grantInScope(ctx context.Context, tx *store.Tx, v *view, id string) (store.OAuthGrant, error) {
	n, err := ParseID(id)
	if err != nil {
		return store.OAuthGrant{}, err
	}
	g, err := tx.OAuthGrant(ctx, store.ChainOfCode(n))
	if err != nil {
		return g, err
	}
	if in := instanceOf(v, g.InstanceID); !v.scope.HasInstance(in.DomainID, in.ApplicationID) {
		return g, jsonapi.ErrNotFound
	}
	return g, nil
}

func (a *API) getAuthorization(ctx context.Context, id string) (jsonapi.Resource, error) {
	var out jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		g, err := grantInScope(ctx, tx, v, id)
		if err == nil {
			out = authorizationOut(g, v, time.Now().UnixMicro())
			a.AuditRead(ctx, "Authorization/"+id, instanceOf(v, g.InstanceID).DomainID, g.ClientID, g.Patient)
		}
		return err
	})
	return out, err
}

// patchAuthorization revokes a grant: GrantStatus "Revoked" is the one change there is.
func (a *API) patchAuthorization(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, []string{"GrantStatus"}, []string{"AuthorizationNumber", "RegisteredClient", "ApplicationInstance", "Domain",
		"LaunchType", "RedirectUrl", "GrantedScopes", "AuthorizedAt", "ExpiresAt", "RevokedAt", "Patient", "User", "Resource", "Tokens"})
	var status string
	if at.Get("GrantStatus", &status); at.Has("GrantStatus") && status != store.GrantRevoked {
		at.Fail(400, "GrantStatus", `GrantStatus can only be set to "Revoked" (a grant is made by a launch, not here)`)
	}
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		g, err := grantInScope(ctx, tx, v, id)
		if err != nil {
			return err
		}
		if g.Version() != version {
			return store.ErrStaleVersion
		}
		now := time.Now().UnixMicro()
		if status == store.GrantRevoked && !g.RevokedAt.Valid {
			n, err := tx.RevokeTokenChain(ctx, g.Chain, now)
			if err != nil {
				return err
			}
			in := instanceOf(v, g.InstanceID)
			if err := a.AuditPatient(ctx, tx, "revoke", "Authorization/"+id, in.DomainID, fmt.Sprintf("%d tokens of %s", n, g.ClientID), g.Patient); err != nil {
				return err
			}
			if g, err = tx.OAuthGrant(ctx, g.Chain); err != nil {
				return err
			}
		}
		out = authorizationOut(g, v, now)
		return nil
	})
	return out, err
}
