package supportapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// provisioning returns the resources an administrator used to edit the YAML for.
func (a *API) provisioning() []Resource {
	return append([]Resource{
		{Type: "Domain", List: a.listDomains, Get: a.getDomain, Create: a.createDomain, Patch: a.patchDomain,
			NotAllowed: map[string]string{"DELETE": "a domain holds messages and cannot be deleted"}},
		{Type: "Application", List: a.listApplications, Get: a.getApplication, Create: a.createApplication, Patch: a.patchApplication,
			NotAllowed: map[string]string{"DELETE": "deactivate its instances instead (PATCH ApplicationInstance Active=false)"}},
		{Type: "ApplicationInstance", List: a.listInstances, Get: a.getInstance, Create: a.createInstance, Patch: a.patchInstance,
			NotAllowed: map[string]string{"DELETE": "PATCH Active=false (its queue and messages are kept)"}},
		{Type: "SubscriptionsPerApplication", List: a.listSubscriptions, Get: a.getSubscription, Create: a.createSubscription,
			Delete: a.deleteSubscription, NotAllowed: map[string]string{"PATCH": "DELETE the subscription and POST the new one"}},
		{Type: "Server", List: a.listServer, Get: a.getServer},
		a.messageResource(),
		a.httpLogResource(),
		a.administratorResource(),
		a.clientResource(),
		a.authorizationResource(),
		a.activityResource(),
	}, a.deadLetterResources()...)
}

// view is a scoped snapshot of the provisioned objects, read in one transaction.
type view struct {
	scope   admin.Scope
	domains map[int64]store.Domain
	apps    map[int64]store.Application
	insts   []store.Instance
}

func (a *API) load(ctx context.Context, tx *store.Tx) (*view, error) {
	v := &view{scope: principal(ctx).Scope(), domains: map[int64]store.Domain{}, apps: map[int64]store.Application{}}
	ds, err := tx.Domains(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		v.domains[d.ID] = d
	}
	as, err := tx.Applications(ctx)
	if err != nil {
		return nil, err
	}
	for _, app := range as {
		v.apps[app.ID] = app
	}
	v.insts, err = tx.Instances(ctx)
	return v, err
}

// seesDomain: a domain's own administrators, and application administrators
// whose application has an instance there (they see its name, not its contents).
func (v *view) seesDomain(id int64) bool {
	if v.scope.HasDomain(id) {
		return true
	}
	for _, in := range v.insts {
		if in.DomainID == id && v.scope.HasApplication(in.ApplicationID) {
			return true
		}
	}
	return false
}

// seesApplication: its administrators, and domain administrators of a domain it has an instance in.
func (v *view) seesApplication(id int64) bool {
	if v.scope.HasApplication(id) {
		return true
	}
	for _, in := range v.insts {
		if in.ApplicationID == id && v.scope.HasDomain(in.DomainID) {
			return true
		}
	}
	return false
}

func (a *API) withView(ctx context.Context, fn func(tx *store.Tx, v *view) error) error {
	return a.st.View(ctx, func(tx *store.Tx) error {
		v, err := a.load(ctx, tx)
		if err != nil {
			return err
		}
		return fn(tx, v)
	})
}

func (a *API) update(ctx context.Context, fn func(tx *store.Tx, v *view) error) error {
	return a.st.Update(ctx, func(tx *store.Tx) error {
		v, err := a.load(ctx, tx)
		if err != nil {
			return err
		}
		return fn(tx, v)
	})
}

// Domain

func domainResource(d store.Domain, ms []store.DomainMessageSetting) jsonapi.Resource {
	return jsonapi.Resource{Type: "Domain", ID: strconv.FormatInt(d.ID, 10), Meta: VersionMeta(d.RowVersion),
		Attributes: map[string]any{"Name": d.Name, "DTAPPhase": d.DTAPPhase, "ManagedBy": d.ManagedBy,
			"MessageSettings": domainSettingsOut(ms), "CreatedAt": Time(d.CreatedAt), "UpdatedAt": Time(d.UpdatedAt)}}
}

// domainOut renders domain id as stored in tx, with its message settings.
func domainOut(ctx context.Context, tx *store.Tx, id int64) (jsonapi.Resource, error) {
	d, err := tx.DomainByID(ctx, id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	ms, err := tx.DomainMessageSettings(ctx)
	return domainResource(d, ms[id]), err
}

func (a *API) listDomains(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		ms, err := tx.DomainMessageSettings(ctx)
		for _, d := range sortedDomains(v) {
			if v.seesDomain(d.ID) {
				out = append(out, domainResource(d, ms[d.ID]))
			}
		}
		return err
	})
	return out, err
}

func sortedDomains(v *view) []store.Domain {
	out := make([]store.Domain, 0, len(v.domains))
	for _, d := range v.domains {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (a *API) getDomain(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		if _, ok := v.domains[n]; !ok || !v.seesDomain(n) {
			return jsonapi.ErrNotFound
		}
		out, err = domainOut(ctx, tx, n)
		return err
	})
	return out, err
}

func (a *API) createDomain(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	if !principal(ctx).Scope().All {
		return jsonapi.Resource{}, Forbidden("only a system administrator creates domains")
	}
	at := NewAttrs(req, []string{"Name", "DTAPPhase", "MessageSettings"}, nil)
	var d koppeltaal.DomainConfig
	at.Get("Name", &d.Name)
	at.Get("DTAPPhase", &d.DTAPPhase)
	a.readDomainSettings(at, &d.MessageSettings)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if err := d.Validate(); err != nil {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "Name", "Invalid domain", "%v", err)
	}
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		for _, cur := range v.domains {
			if cur.Name == d.Name {
				return jsonapi.AttrError(409, "Name", "Conflict", "domain %q already exists (Domain/%d)", d.Name, cur.ID)
			}
		}
		dom, _, _, err := koppeltaal.PutDomain(ctx, tx, d, store.ManagedByAPI, 0)
		if err != nil {
			return err
		}
		if err := koppeltaal.PutDomainMessageSettings(ctx, tx, dom.ID, d.MessageSettings); err != nil {
			return err
		}
		if out, err = domainOut(ctx, tx, dom.ID); err != nil {
			return err
		}
		return a.Audit(ctx, tx, "create", fmt.Sprintf("Domain/%d", dom.ID), dom.ID, d.Name)
	})
	return out, err
}

func (a *API) patchDomain(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, []string{"DTAPPhase", "MessageSettings"}, []string{"Name", "ManagedBy", "CreatedAt", "UpdatedAt"})
	var out jsonapi.Resource
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		cur, ok := v.domains[n]
		if !ok || !v.seesDomain(n) {
			return jsonapi.ErrNotFound
		}
		if !v.scope.HasDomain(n) {
			return Forbidden("only a system administrator or an administrator of domain %q changes it", cur.Name)
		}
		if err := at.Err(); err != nil {
			return err
		}
		if cur.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("domain %q", cur.Name))
		}
		d := koppeltaal.DomainConfig{Name: cur.Name, DTAPPhase: cur.DTAPPhase}
		at.Get("DTAPPhase", &d.DTAPPhase)
		settings := a.readDomainSettings(at, &d.MessageSettings)
		if err := at.Err(); err != nil {
			return err
		}
		if err := d.Validate(); err != nil {
			return jsonapi.AttrError(400, "DTAPPhase", "Invalid domain", "%v", err)
		}
		dom, _, changed, err := koppeltaal.PutDomain(ctx, tx, d, store.ManagedByAPI, version)
		if err != nil {
			return err
		}
		if settings {
			if err := koppeltaal.PutDomainMessageSettings(ctx, tx, n, d.MessageSettings); err != nil {
				return err
			}
			if !changed { // the settings alone are a change of the domain: a stale version must fail
				if err := tx.TouchDomain(ctx, n, dom.RowVersion); err != nil {
					return err
				}
			}
		}
		if out, err = domainOut(ctx, tx, n); err != nil {
			return err
		}
		return a.Audit(ctx, tx, "update", "Domain/"+id, n, changedNames(req))
	})
	return out, err
}

// Application

// applicationOut renders application id as stored in tx, with its message settings.
func applicationOut(ctx context.Context, tx *store.Tx, id int64) (jsonapi.Resource, error) {
	app, err := tx.ApplicationByID(ctx, id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	ms, err := tx.ApplicationMessageSettings(ctx)
	return applicationResource(app, ms[id]), err
}

func applicationResource(app store.Application, ms []store.ApplicationMessageSetting) jsonapi.Resource {
	roles := []string{}
	if app.Roles != "" {
		roles = strings.Split(app.Roles, ",")
	}
	return jsonapi.Resource{Type: "Application", ID: strconv.FormatInt(app.ID, 10), Meta: VersionMeta(app.RowVersion),
		Attributes: map[string]any{"Identifier": app.Ident, "Name": app.Name, "ApplicationRoles": roles,
			"MessageSettings": applicationSettingsOut(ms), "ManagedBy": app.ManagedBy, "CreatedAt": Time(app.CreatedAt), "UpdatedAt": Time(app.UpdatedAt)}}
}

func (a *API) listApplications(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		ms, err := tx.ApplicationMessageSettings(ctx)
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(v.apps))
		for id := range v.apps {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			if v.seesApplication(id) {
				out = append(out, applicationResource(v.apps[id], ms[id]))
			}
		}
		return nil
	})
	return out, err
}

func (a *API) getApplication(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		if _, ok := v.apps[n]; !ok || !v.seesApplication(n) {
			return jsonapi.ErrNotFound
		}
		out, err = applicationOut(ctx, tx, n)
		return err
	})
	return out, err
}

func (a *API) createApplication(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	if !principal(ctx).Scope().All {
		return jsonapi.Resource{}, Forbidden("only a system administrator registers applications")
	}
	at := NewAttrs(req, []string{"Identifier", "Name", "ApplicationRoles", "MessageSettings"}, nil)
	var cfg koppeltaal.ApplicationConfig
	at.Get("Identifier", &cfg.ID)
	at.Get("Name", &cfg.Name)
	at.Get("ApplicationRoles", &cfg.Roles)
	readApplicationSettings(at, &cfg.MessageSettings)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if err := cfg.Validate(); err != nil {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "Identifier", "Invalid application", "%v", err)
	}
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		for _, cur := range v.apps {
			if cur.Ident == cfg.ID {
				return jsonapi.AttrError(409, "Identifier", "Conflict", "application %q already exists (Application/%d)", cfg.ID, cur.ID)
			}
		}
		id, _, err := koppeltaal.PutApplication(ctx, tx, cfg, store.ManagedByAPI, 0)
		if err != nil {
			return err
		}
		if err := koppeltaal.PutApplicationMessageSettings(ctx, tx, id, cfg.MessageSettings); err != nil {
			return err
		}
		if out, err = applicationOut(ctx, tx, id); err != nil {
			return err
		}
		return a.Audit(ctx, tx, "create", fmt.Sprintf("Application/%d", id), 0, cfg.ID)
	})
	return out, err
}

func (a *API) patchApplication(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, []string{"Name", "ApplicationRoles", "MessageSettings"}, []string{"Identifier", "ManagedBy", "CreatedAt", "UpdatedAt"})
	var out jsonapi.Resource
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		cur, ok := v.apps[n]
		if !ok || !v.seesApplication(n) {
			return jsonapi.ErrNotFound
		}
		if !v.scope.HasApplication(n) {
			return Forbidden("only a system administrator or an administrator of application %q changes it", cur.Ident)
		}
		if err := at.Err(); err != nil {
			return err
		}
		if cur.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("application %q", cur.Ident))
		}
		cfg := koppeltaal.ApplicationConfig{ID: cur.Ident, Name: cur.Name}
		if cur.Roles != "" {
			cfg.Roles = strings.Split(cur.Roles, ",")
		}
		at.Get("Name", &cfg.Name)
		if at.Has("ApplicationRoles") {
			cfg.Roles = nil
			at.Get("ApplicationRoles", &cfg.Roles)
		}
		settings := readApplicationSettings(at, &cfg.MessageSettings)
		if err := at.Err(); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return jsonapi.AttrError(400, "ApplicationRoles", "Invalid application", "%v", err)
		}
		_, changed, err := koppeltaal.PutApplication(ctx, tx, cfg, store.ManagedByAPI, version)
		if err != nil {
			return err
		}
		if settings {
			if err := koppeltaal.PutApplicationMessageSettings(ctx, tx, n, cfg.MessageSettings); err != nil {
				return err
			}
			if !changed { // the settings alone are a change of the application: a stale version must fail
				if err := tx.TouchApplication(ctx, n, version); err != nil {
					return err
				}
			}
		}
		if out, err = applicationOut(ctx, tx, n); err != nil {
			return err
		}
		return a.Audit(ctx, tx, "update", "Application/"+id, 0, changedNames(req))
	})
	return out, err
}

func changedNames(req jsonapi.Request) string {
	names := make([]string, 0, len(req.Attributes))
	for k := range req.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// ApplicationInstance

// maskedHeaders shows which webhook headers are set, never their values (they are shared secrets).
func maskedHeaders(js string) map[string]string {
	out := map[string]string{}
	var m map[string]string
	if js != "" && json.Unmarshal([]byte(js), &m) == nil {
		for k := range m {
			out[k] = "********"
		}
	}
	return out
}

func instanceResource(in store.Instance, subs []string) jsonapi.Resource {
	if subs == nil {
		subs = []string{}
	}
	return jsonapi.Resource{Type: "ApplicationInstance", ID: strconv.FormatInt(in.ID, 10), Meta: VersionMeta(in.RowVersion),
		Attributes: map[string]any{"Username": in.Username, "Application": in.AppIdent, "Domain": in.DomainName,
			"ApiVersion": in.APIVersion, "WebhookUrl": in.WebhookURL, "WebhookHeaders": maskedHeaders(in.WebhookHeaders),
			"Subscriptions": subs, "Active": !in.Disabled(), "ManagedBy": in.ManagedBy,
			"CreatedAt": Time(in.CreatedAt), "UpdatedAt": Time(in.UpdatedAt)},
		Relationships: map[string]jsonapi.Relationship{
			"application": jsonapi.ToOne("Application", strconv.FormatInt(in.ApplicationID, 10)),
			"domain":      jsonapi.ToOne("Domain", strconv.FormatInt(in.DomainID, 10)),
		}}
}

func (a *API) listInstances(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		for _, in := range v.insts {
			if !v.scope.HasInstance(in.DomainID, in.ApplicationID) {
				continue
			}
			subs, err := tx.Subscriptions(ctx, in.ID)
			if err != nil {
				return err
			}
			out = append(out, instanceResource(in, subs))
		}
		return nil
	})
	return out, err
}

// instanceInScope finds instance n in v, or 404 when it does not exist or is not the caller's.
func instanceInScope(v *view, n int64) (store.Instance, error) {
	for _, in := range v.insts {
		if in.ID == n && v.scope.HasInstance(in.DomainID, in.ApplicationID) {
			return in, nil
		}
	}
	return store.Instance{}, jsonapi.ErrNotFound
}

func (a *API) getInstance(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		in, err := instanceInScope(v, n)
		if err != nil {
			return err
		}
		subs, err := tx.Subscriptions(ctx, in.ID)
		out = instanceResource(in, subs)
		return err
	})
	return out, err
}

// instanceWritable are the attributes POST and PATCH take (Password and
// ResetPassword are write-only: a generated password is returned once, in meta.password).
var instanceWritable = []string{"ApiVersion", "WebhookUrl", "WebhookHeaders", "Subscriptions", "Active", "Password", "PasswordHash", "ResetPassword"}

// readInstanceAttrs applies the writable attributes onto cfg; it returns the
// new plain-text password ("" when unchanged) and whether one was generated.
// PasswordHash (write-only, the file's password_hash: a bcrypt or argon2id hash
// made elsewhere) goes to cfg.PasswordHash, checked by cfg.Validate.
func (a *API) readInstanceAttrs(at *Attrs, cfg *koppeltaal.InstanceConfig, active *bool) (password string, generated bool) {
	at.Get("ApiVersion", &cfg.APIVersion)
	if at.Has("WebhookUrl") || at.Has("WebhookHeaders") {
		hook := koppeltaal.WebhookConfig{}
		if cfg.Webhook != nil {
			hook = *cfg.Webhook
		}
		at.Get("WebhookUrl", &hook.URL)
		if at.Has("WebhookHeaders") {
			hook.Headers = nil
			at.Get("WebhookHeaders", &hook.Headers)
		}
		cfg.Webhook = &hook
		if hook.URL == "" && len(hook.Headers) > 0 {
			at.Fail(400, "WebhookHeaders", "webhook headers need a WebhookUrl (they are sent with its calls)")
		}
		if hook.URL == "" {
			cfg.Webhook = nil
		}
	}
	if at.Has("Subscriptions") {
		cfg.Subscriptions = nil
		at.Get("Subscriptions", &cfg.Subscriptions)
	}
	at.Get("Active", active)
	var reset bool
	at.Get("ResetPassword", &reset)
	if at.Get("Password", &password) {
		if err := admin.CheckPasswordPolicy(password); err != nil {
			at.Fail(400, "Password", "%v", err)
		}
	}
	if at.Get("PasswordHash", &cfg.PasswordHash) && cfg.PasswordHash != "" && (password != "" || reset) {
		at.Fail(400, "PasswordHash", "set Password, PasswordHash or ResetPassword, not two of them")
	}
	if cfg.PasswordHash != "" {
		return "", false
	}
	if reset && password == "" {
		return admin.GeneratePassword(), true
	}
	return password, false
}

func (a *API) createInstance(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	at := NewAttrs(req, append([]string{"Username", "Application", "Domain"}, instanceWritable...), nil)
	var cfg koppeltaal.InstanceConfig
	at.Get("Username", &cfg.Username)
	at.Get("Application", &cfg.Application)
	at.Get("Domain", &cfg.Domain)
	active := true
	password, generated := a.readInstanceAttrs(at, &cfg, &active)
	if password == "" && cfg.PasswordHash == "" {
		password, generated = admin.GeneratePassword(), true
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = koppeltaal.DefaultAPIVersion
	}
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if !active {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "Active", "Invalid attribute", "a new instance is active")
	}
	if err := cfg.Validate(); err != nil {
		return jsonapi.Resource{}, jsonapi.Errorf(400, "Invalid application instance", "%v", err)
	}
	hash := cfg.PasswordHash
	if hash == "" {
		var err error
		if hash, err = koppeltaal.HashPasswordCost(password, a.kt.BcryptCost); err != nil {
			return jsonapi.Resource{}, err
		}
	}
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		dom, err := tx.DomainByName(ctx, cfg.Domain)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !v.seesDomain(dom.ID)) {
			return jsonapi.AttrError(400, "Domain", "Unknown domain", "domain %q does not exist", cfg.Domain)
		} else if err != nil {
			return err
		}
		app, err := tx.ApplicationByIdent(ctx, cfg.Application)
		if errors.Is(err, store.ErrNotFound) {
			return jsonapi.AttrError(400, "Application", "Unknown application", "application %q does not exist", cfg.Application)
		} else if err != nil {
			return err
		}
		if !v.scope.HasDomain(dom.ID) {
			return Forbidden("only a system administrator or an administrator of domain %q adds instances to it", dom.Name)
		}
		for _, in := range v.insts {
			if in.DomainID == dom.ID && in.ApplicationID == app.ID {
				return jsonapi.Errorf(409, "Conflict", "application %q already has an instance in domain %q (ApplicationInstance/%d)",
					app.Ident, dom.Name, in.ID)
			}
		}
		id, _, _, err := koppeltaal.PutInstance(ctx, tx, cfg, koppeltaal.Secret{Hash: hash}, dom.ID, app.ID, store.ManagedByAPI, 0)
		if errors.Is(err, store.ErrConflict) {
			return jsonapi.AttrError(409, "Username", "Conflict", "%v", err)
		} else if err != nil {
			return err
		}
		if out, err = a.instanceOut(ctx, tx, id); err != nil {
			return err
		}
		return a.Audit(ctx, tx, "create", fmt.Sprintf("ApplicationInstance/%d", id), dom.ID, cfg.Username)
	})
	if err == nil && generated {
		out.Meta["password"] = password
	}
	return out, err
}

func (a *API) instanceOut(ctx context.Context, tx *store.Tx, id int64) (jsonapi.Resource, error) {
	in, err := tx.InstanceByID(ctx, id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	subs, err := tx.Subscriptions(ctx, id)
	return instanceResource(in, subs), err
}

func (a *API) patchInstance(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, instanceWritable, []string{"Username", "Application", "Domain", "ManagedBy", "CreatedAt", "UpdatedAt"})
	var out jsonapi.Resource
	var password string
	var generated bool
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		cur, err := instanceInScope(v, n)
		if err != nil {
			return err
		}
		if err := at.Err(); err != nil {
			return err
		}
		if cur.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("application instance %q", cur.Username))
		}
		if cur.RowVersion != version {
			return store.ErrStaleVersion
		}
		subs, err := tx.Subscriptions(ctx, n)
		if err != nil {
			return err
		}
		cfg := koppeltaal.InstanceConfig{Username: cur.Username, Application: cur.AppIdent, Domain: cur.DomainName,
			APIVersion: cur.APIVersion, Subscriptions: subs}
		if cur.WebhookURL != "" {
			cfg.Webhook = &koppeltaal.WebhookConfig{URL: cur.WebhookURL}
			_ = json.Unmarshal([]byte(cur.WebhookHeaders), &cfg.Webhook.Headers)
		}
		active := !cur.Disabled()
		password, generated = a.readInstanceAttrs(at, &cfg, &active)
		if err := at.Err(); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return jsonapi.Errorf(400, "Invalid application instance", "%v", err)
		}
		secret := koppeltaal.Secret{Hash: strings.TrimPrefix(cur.PasswordHash, store.DisabledHashPrefix)}
		if password != "" {
			if secret.Hash, err = koppeltaal.HashPasswordCost(password, a.kt.BcryptCost); err != nil {
				return err
			}
		} else if cfg.PasswordHash != "" {
			secret.Hash = cfg.PasswordHash
		}
		if !active {
			secret.Hash = cur.PasswordHash // DisableInstance below marks it
		}
		if _, _, _, err := koppeltaal.PutInstance(ctx, tx, cfg, secret, cur.DomainID, cur.ApplicationID, store.ManagedByAPI, version); err != nil {
			return err
		}
		if !active {
			if _, err := tx.DisableInstance(ctx, n); err != nil {
				return err
			}
		}
		if out, err = a.instanceOut(ctx, tx, n); err != nil {
			return err
		}
		detail := changedNames(req)
		if strings.Contains(detail, "Password") {
			detail += " (password reset)"
		}
		return a.Audit(ctx, tx, "update", "ApplicationInstance/"+id, cur.DomainID, detail)
	})
	if err == nil && generated {
		out.Meta["password"] = password
	}
	return out, err
}

// SubscriptionsPerApplication: one (instance, event) pair; id "<instance id>.<event>".

func subscriptionResource(in store.Instance, event string) jsonapi.Resource {
	return jsonapi.Resource{Type: "SubscriptionsPerApplication", ID: fmt.Sprintf("%d.%s", in.ID, event),
		Attributes: map[string]any{"MessageType": event, "ApplicationInstance": strconv.FormatInt(in.ID, 10),
			"Application": in.AppIdent, "Domain": in.DomainName, "ManagedBy": in.ManagedBy},
		Relationships: map[string]jsonapi.Relationship{
			"applicationInstance": jsonapi.ToOne("ApplicationInstance", strconv.FormatInt(in.ID, 10))}}
}

func (a *API) listSubscriptions(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		for _, in := range v.insts {
			if !v.scope.HasInstance(in.DomainID, in.ApplicationID) {
				continue
			}
			subs, err := tx.Subscriptions(ctx, in.ID)
			if err != nil {
				return err
			}
			for _, e := range subs {
				out = append(out, subscriptionResource(in, e))
			}
		}
		return nil
	})
	return out, err
}

func parseSubscriptionID(id string) (int64, string, error) {
	inst, event, ok := strings.Cut(id, ".")
	n, err := ParseID(inst)
	if !ok || err != nil || !koppeltaal.KnownEvent(event) {
		return 0, "", jsonapi.ErrNotFound
	}
	return n, event, nil
}

func (a *API) getSubscription(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, event, err := parseSubscriptionID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		in, err := instanceInScope(v, n)
		if err != nil {
			return err
		}
		subs, err := tx.Subscriptions(ctx, n)
		if err != nil {
			return err
		}
		if !contains(subs, event) {
			return jsonapi.ErrNotFound
		}
		out = subscriptionResource(in, event)
		return nil
	})
	return out, err
}

// changeSubscriptions adds or removes one event of an instance through PutInstance.
func (a *API) changeSubscriptions(ctx context.Context, n int64, event string, add bool) (jsonapi.Resource, error) {
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		in, err := instanceInScope(v, n)
		if err != nil {
			return err
		}
		if in.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("the subscriptions of application instance %q are", in.Username))
		}
		if in.Disabled() {
			return jsonapi.Errorf(409, "Inactive instance", "application instance %q is not active (PATCH Active=true first)", in.Username)
		}
		subs, err := tx.Subscriptions(ctx, n)
		if err != nil {
			return err
		}
		has := contains(subs, event)
		switch {
		case add && has:
			return jsonapi.Errorf(409, "Conflict", "application instance %q is already subscribed to %s", in.Username, event)
		case !add && !has:
			return jsonapi.ErrNotFound
		case add:
			subs = append(subs, event)
		default:
			subs = removeString(subs, event)
		}
		cfg := koppeltaal.InstanceConfig{Username: in.Username, APIVersion: in.APIVersion, Subscriptions: subs}
		hookURL, hookHeaders := in.WebhookURL, in.WebhookHeaders
		if hookURL != "" {
			cfg.Webhook = &koppeltaal.WebhookConfig{URL: hookURL}
			_ = json.Unmarshal([]byte(hookHeaders), &cfg.Webhook.Headers)
		}
		if _, _, _, err := koppeltaal.PutInstance(ctx, tx, cfg, koppeltaal.Secret{Hash: in.PasswordHash}, in.DomainID, in.ApplicationID,
			store.ManagedByAPI, in.RowVersion); err != nil {
			return err
		}
		verb := "create"
		if !add {
			verb = "delete"
		}
		out = subscriptionResource(in, event)
		return a.Audit(ctx, tx, verb, "SubscriptionsPerApplication/"+out.ID, in.DomainID, "")
	})
	return out, err
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

func (a *API) createSubscription(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	at := NewAttrs(req, []string{"MessageType", "ApplicationInstance"}, nil)
	var event, inst string
	at.Get("MessageType", &event)
	at.Get("ApplicationInstance", &inst)
	if inst == "" {
		inst = req.RelatedID("applicationInstance")
	}
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if !koppeltaal.KnownEvent(event) {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "MessageType", "Unknown message type",
			"%q is not a Koppeltaal event (want one of %s)", event, strings.Join(koppeltaal.Events, ", "))
	}
	n, err := strconv.ParseInt(inst, 10, 64)
	if err != nil {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "ApplicationInstance", "Missing instance",
			"name the instance: attribute ApplicationInstance or relationship applicationInstance (its id)")
	}
	return a.changeSubscriptions(ctx, n, event, true)
}

func (a *API) deleteSubscription(ctx context.Context, id string) error {
	n, event, err := parseSubscriptionID(id)
	if err != nil {
		return err
	}
	_, err = a.changeSubscriptions(ctx, n, event, false)
	return err
}

// Server

func (a *API) serverResource() jsonapi.Resource {
	return jsonapi.Resource{Type: "Server", ID: "1", Attributes: map[string]any{"Name": a.name, "Version": a.version,
		"Database": string(a.st.Dialect()), "StartedAt": a.started.UTC().Format("2006-01-02T15:04:05Z")}}
}

func (a *API) listServer(context.Context, *http.Request) ([]jsonapi.Resource, error) {
	return []jsonapi.Resource{a.serverResource()}, nil
}

func (a *API) getServer(_ context.Context, id string) (jsonapi.Resource, error) {
	if id != "1" {
		return jsonapi.Resource{}, jsonapi.ErrNotFound
	}
	return a.serverResource(), nil
}

// Visible returns the domains and instances the administrator in ctx may see
// (for pages outside the Support API that keep to the same scope, like the
// console's dashboard), within tx.
func (a *API) Visible(ctx context.Context, tx *store.Tx) ([]store.Domain, []store.Instance, error) {
	v, err := a.load(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	var ds []store.Domain
	for _, d := range sortedDomains(v) {
		if v.seesDomain(d.ID) {
			ds = append(ds, d)
		}
	}
	var ins []store.Instance
	for _, in := range v.insts {
		if v.scope.HasInstance(in.DomainID, in.ApplicationID) {
			ins = append(ins, in)
		}
	}
	return ds, ins, nil
}
