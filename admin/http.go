package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/store"
)

// SessionPath is where the console logs in (POST), asks who is logged in (GET) and logs out (DELETE).
const SessionPath = "/admin/session"

type principalKey struct{}

// PrincipalFrom returns the administrator Require put into the request context.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithPrincipal returns ctx carrying p (tests and in-process callers).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Require lets only authenticated administrators through; others get 401
// (no or bad credentials), 403 (CSRF) or 429 (throttled) as a JSON:API
// errors document, and never data.
func (a *Accounts) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err != nil {
			a.writeAuthError(w, err)
			return
		}
		identify(r, p)
		ctx := audit.WithRequest(WithPrincipal(r.Context(), p), audit.RequestFromHTTP(r)) // source and request id for the trail
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// identify names the administrator as the caller of r in the HTTP request log.
func identify(r *http.Request, p *Principal) {
	httplog.Identify(r.Context(), httplog.Caller{Kind: httplog.KindAdmin, Name: p.User.Username})
}

func (a *Accounts) writeAuthError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="Koppelpoort administration"`)
		jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(http.StatusUnauthorized, "Not authenticated",
			"log in (POST %s) or send an API token (Authorization: Bearer %s...)", SessionPath, TokenPrefix)})
	case errors.Is(err, ErrCSRF):
		jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(http.StatusForbidden, "CSRF check failed", "%s", err.Error())})
	case errors.Is(err, ErrThrottled):
		w.Header().Set("Retry-After", "60")
		jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(http.StatusTooManyRequests, "Too many failed attempts", "try again in a minute")})
	default:
		a.log.Error("admin: authentication failed", "err", err)
		jsonapi.WriteErrors(w, jsonapi.AsErrors(err))
	}
}

// SessionInfo is what GET/POST SessionPath answer: who is logged in and the
// CSRF token the console sends on unsafe requests.
type SessionInfo struct {
	Username     string   `json:"username"`
	Name         string   `json:"name"`
	Role         string   `json:"role"`
	Via          string   `json:"via"`
	CSRFToken    string   `json:"csrf_token,omitempty"`
	Domains      []string `json:"domains"`
	Applications []string `json:"applications"`
}

// Mount registers the session endpoints.
func (a *Accounts) Mount(r chi.Router) {
	r.Post(SessionPath, a.login)
	r.With(a.Require).Get(SessionPath, a.whoami)
	r.With(a.Require).Delete(SessionPath, a.logout)
}

func (a *Accounts) login(w http.ResponseWriter, r *http.Request) {
	if err := CheckLoginOrigin(r); err != nil {
		a.writeAuthError(w, err)
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(http.StatusBadRequest, "Invalid login", `send {"username": "...", "password": "..."}`)})
		return
	}
	p, err := a.Login(w, r, body.Username, body.Password)
	if err != nil {
		a.writeAuthError(w, err)
		return
	}
	identify(r, p)
	a.writeSession(w, r, p)
}

func (a *Accounts) whoami(w http.ResponseWriter, r *http.Request) {
	a.writeSession(w, r, PrincipalFrom(r.Context()))
}

func (a *Accounts) logout(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	if err := a.Logout(w, r); err != nil {
		a.writeAuthError(w, err)
		return
	}
	_ = a.st.Update(r.Context(), func(tx *store.Tx) error {
		return a.audit.Record(r.Context(), tx, Action{Principal: p, Verb: "logout"})
	})
	w.WriteHeader(http.StatusNoContent)
}

func (a *Accounts) writeSession(w http.ResponseWriter, r *http.Request, p *Principal) {
	info := SessionInfo{Username: p.User.Username, Name: p.User.Name, Role: p.User.Role, Via: p.Via, CSRFToken: p.CSRF,
		Domains: []string{}, Applications: []string{}}
	names, err := a.scopeNames(r.Context(), p)
	if err != nil {
		a.writeAuthError(w, err)
		return
	}
	info.Domains, info.Applications = names.domains, names.apps
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(info)
}

type scopeNames struct{ domains, apps []string }

// scopeNames names the domains and applications p administers.
func (a *Accounts) scopeNames(ctx context.Context, p *Principal) (scopeNames, error) {
	out := scopeNames{domains: []string{}, apps: []string{}}
	err := a.st.View(ctx, func(tx *store.Tx) error {
		ds, err := tx.Domains(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if contains(p.User.DomainIDs, d.ID) {
				out.domains = append(out.domains, d.Name)
			}
		}
		as, err := tx.Applications(ctx)
		if err != nil {
			return err
		}
		for _, app := range as {
			if contains(p.User.ApplicationIDs, app.ID) {
				out.apps = append(out.apps, app.Ident)
			}
		}
		return nil
	})
	return out, err
}
