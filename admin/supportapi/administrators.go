package supportapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// administratorResource is Administrator: the accounts of the console and the Support API (one resource
// for the old server's DomainAdministrator and ApplicationAdministrator, with a Role). Only system
// administrators see and change them. Disabling an account, or changing its role or password, ends its
// console sessions and API tokens in the same transaction (admin.Accounts.UpdateUser): the next request
// with them is 401 in every process sharing the database.
func (a *API) administratorResource() Resource {
	return Resource{Type: "Administrator", List: a.listAdministrators, Get: a.getAdministrator,
		Create: a.createAdministrator, Patch: a.patchAdministrator,
		NotAllowed: map[string]string{"DELETE": "PATCH Disabled=true (the audit trail keeps naming the account)"}}
}

var (
	administratorWritable  = []string{"Name", "Email", "Role", "Domains", "Applications", "Disabled", "Password", "PasswordHash", "ResetPassword"}
	administratorImmutable = []string{"Username", "ManagedBy", "CreatedAt", "UpdatedAt"}
)

func administratorsOnly(ctx context.Context) error {
	if !principal(ctx).Scope().All {
		return Forbidden("only system administrators see and manage administrator accounts")
	}
	return nil
}

func administratorOut(u store.AdminUser, v *view) jsonapi.Resource {
	domains, apps := []string{}, []string{}
	for _, id := range u.DomainIDs {
		domains = append(domains, v.domains[id].Name)
	}
	for _, id := range u.ApplicationIDs {
		apps = append(apps, v.apps[id].Ident)
	}
	return jsonapi.Resource{Type: "Administrator", ID: strconv.FormatInt(u.ID, 10), Meta: VersionMeta(u.RowVersion),
		Attributes: map[string]any{"Username": u.Username, "Name": u.Name, "Email": u.Email, "Role": u.Role,
			"Domains": domains, "Applications": apps, "Disabled": u.Disabled, "ManagedBy": u.ManagedBy,
			"CreatedAt": Time(u.CreatedAt), "UpdatedAt": Time(u.UpdatedAt)}}
}

func (a *API) listAdministrators(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	if err := administratorsOnly(ctx); err != nil {
		return nil, err
	}
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		us, err := tx.AdminUsers(ctx)
		for _, u := range us {
			out = append(out, administratorOut(u, v))
		}
		return err
	})
	return out, err
}

func (a *API) getAdministrator(ctx context.Context, id string) (jsonapi.Resource, error) {
	if err := administratorsOnly(ctx); err != nil {
		return jsonapi.Resource{}, err
	}
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		u, err := tx.AdminUserByID(ctx, n)
		out = administratorOut(u, v)
		return err
	})
	return out, err
}

// readPassword reads Password, PasswordHash (write-only: a bcrypt or argon2id hash made elsewhere, the file's
// password_hash) or ResetPassword: the new password or hash ("" when unchanged) and whether it was generated.
func readPassword(at *Attrs) (password, hash string, generated bool) {
	var reset bool
	at.Get("Password", &password)
	at.Get("ResetPassword", &reset)
	if at.Get("PasswordHash", &hash) && hash != "" {
		switch {
		case password != "" || reset:
			at.Fail(400, "PasswordHash", "set Password, PasswordHash or ResetPassword, not two of them")
		case !koppeltaal.IsSupportedHash(hash):
			at.Fail(400, "PasswordHash", "not a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash")
		}
		return "", hash, false
	}
	if reset && password == "" {
		return admin.GeneratePassword(), "", true
	}
	if at.Has("Password") {
		if err := admin.CheckPasswordPolicy(password); err != nil {
			at.Fail(400, "Password", "%v", err)
		}
	}
	return password, "", false
}

func (a *API) createAdministrator(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	if err := administratorsOnly(ctx); err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, append([]string{"Username"}, administratorWritable...), nil)
	var u admin.NewUser
	var disabled bool
	at.Get("Username", &u.Username)
	at.Get("Name", &u.Name)
	at.Get("Email", &u.Email)
	at.Get("Role", &u.Role)
	at.Get("Domains", &u.Domains)
	at.Get("Applications", &u.Applications)
	at.Get("Disabled", &disabled)
	password, hash, generated := readPassword(at)
	if password == "" && hash == "" {
		password, generated = admin.GeneratePassword(), true
	}
	u.Password, u.PasswordHash = password, hash
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if disabled {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "Disabled", "Invalid attribute", "a new administrator is enabled")
	}
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		created, err := a.acc.CreateUser(ctx, tx, u)
		if err != nil {
			return err
		}
		out = administratorOut(created, v)
		return a.Audit(ctx, tx, "create", fmt.Sprintf("Administrator/%d", created.ID), 0, created.Username+" ("+created.Role+")")
	})
	if err == nil && generated {
		out.Meta["password"] = password
	}
	return out, err
}

func (a *API) patchAdministrator(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	if err := administratorsOnly(ctx); err != nil {
		return jsonapi.Resource{}, err
	}
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, administratorWritable, administratorImmutable)
	var ch admin.UserChange
	strAttr := func(name string) *string {
		var s string
		if at.Get(name, &s) {
			return &s
		}
		return nil
	}
	listAttr := func(name string) *[]string {
		l := []string{}
		if at.Get(name, &l) {
			return &l
		}
		return nil
	}
	ch.Name, ch.Email, ch.Role = strAttr("Name"), strAttr("Email"), strAttr("Role")
	ch.Domains, ch.Applications = listAttr("Domains"), listAttr("Applications")
	var disabled bool
	if at.Get("Disabled", &disabled) {
		ch.Disabled = &disabled
	}
	password, hash, generated := readPassword(at)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if password != "" {
		if hash, err = a.acc.HashPassword(password); err != nil {
			return jsonapi.Resource{}, err
		}
	}
	if hash != "" {
		ch.PasswordHash = &hash
	}
	var out jsonapi.Resource
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		cur, err := tx.AdminUserByID(ctx, n)
		if err != nil {
			return err
		}
		if cur.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("administrator %q", cur.Username))
		}
		u, err := a.acc.UpdateUser(ctx, tx, n, version, ch)
		if err != nil {
			return err
		}
		out = administratorOut(u, v)
		return a.Audit(ctx, tx, "update", "Administrator/"+id, 0, changedNames(req))
	})
	if err == nil && generated {
		out.Meta["password"] = password
	}
	return out, err
}
