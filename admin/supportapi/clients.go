package supportapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// RegisteredClient is an application's OAuth client settings (SPEC.md §8.1);
// id = the application's id. The secret is write-only: ClientSecret sets it,
// ResetClientSecret generates one, returned once in meta.client_secret.
func (a *API) clientResource() Resource {
	return Resource{Type: "RegisteredClient", List: a.listClients, Get: a.getClient, Create: a.createClient, Patch: a.patchClient,
		NotAllowed: map[string]string{"DELETE": "clear LaunchUrl and RedirectUris to make the application unlaunchable"}}
}

func clientOut(c store.OAuthClient, name string) jsonapi.Resource {
	cfg := koppeltaal.ClientConfig(c)
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return jsonapi.Resource{Type: "RegisteredClient", ID: strconv.FormatInt(c.ApplicationID, 10), Meta: VersionMeta(c.RowVersion),
		Attributes: map[string]any{"ClientId": c.Ident, "Name": name, "HasClientSecret": c.SecretHash != "",
			"LaunchUrl": cfg.LaunchURL, "RedirectUris": list(cfg.RedirectURIs), "AllowPublicTokenRequests": cfg.PublicClient,
			"UseRefreshTokens": cfg.RefreshTokens, "TokenExpiresIn": int(cfg.TokenLifetime / time.Second),
			"AuthorizationCodeExpiresIn": int(cfg.CodeLifetime / time.Second), "WebLaunchRequestExpiresIn": int(cfg.LaunchLifetime / time.Second),
			"MobileActivationCodeExpiresIn": cfg.ActivationCodeLifetimeDays, "AllowedOrigins": list(cfg.AllowedOrigins),
			"ManagedBy": c.ManagedBy, "UpdatedAt": Time(c.UpdatedAt)},
		Relationships: map[string]jsonapi.Relationship{"application": jsonapi.ToOne("Application", strconv.FormatInt(c.ApplicationID, 10))}}
}

func (a *API) listClients(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	var out []jsonapi.Resource
	err := a.withView(ctx, func(tx *store.Tx, v *view) error {
		cs, err := tx.OAuthClients(ctx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if v.seesApplication(c.ApplicationID) {
				out = append(out, clientOut(c, v.apps[c.ApplicationID].Name))
			}
		}
		return nil
	})
	return out, err
}

func (a *API) getClient(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var out jsonapi.Resource
	err = a.withView(ctx, func(tx *store.Tx, v *view) error {
		if !v.seesApplication(n) {
			return jsonapi.ErrNotFound
		}
		c, err := tx.OAuthClientOf(ctx, n)
		out = clientOut(c, v.apps[n].Name)
		return err
	})
	return out, err
}

var clientWritable = []string{"ClientSecret", "ClientSecretHash", "ResetClientSecret", "LaunchUrl", "RedirectUris", "AllowPublicTokenRequests",
	"UseRefreshTokens", "TokenExpiresIn", "AuthorizationCodeExpiresIn", "WebLaunchRequestExpiresIn", "MobileActivationCodeExpiresIn", "AllowedOrigins"}

// applyClientAttrs reads the writable attributes onto cfg and returns the new secret, if any, or the
// hash of one made elsewhere (ClientSecretHash, write-only: the file's oauth_secret_hash).
func applyClientAttrs(at *Attrs, cfg *koppeltaal.ApplicationConfig) (secret, secretHash string, generated bool) {
	secs := func(name string, d *time.Duration) {
		var n int
		if at.Get(name, &n) {
			*d = time.Duration(n) * time.Second
		}
	}
	at.Get("LaunchUrl", &cfg.LaunchURL)
	if at.Has("RedirectUris") {
		cfg.RedirectURIs = nil
		at.Get("RedirectUris", &cfg.RedirectURIs)
	}
	if at.Has("AllowedOrigins") {
		cfg.AllowedOrigins = nil
		at.Get("AllowedOrigins", &cfg.AllowedOrigins)
	}
	at.Get("AllowPublicTokenRequests", &cfg.PublicClient)
	at.Get("UseRefreshTokens", &cfg.RefreshTokens)
	secs("TokenExpiresIn", &cfg.TokenLifetime)
	secs("AuthorizationCodeExpiresIn", &cfg.CodeLifetime)
	secs("WebLaunchRequestExpiresIn", &cfg.LaunchLifetime)
	at.Get("MobileActivationCodeExpiresIn", &cfg.ActivationCodeLifetimeDays)
	var reset bool
	at.Get("ResetClientSecret", &reset)
	if at.Get("ClientSecret", &secret) && secret != "" {
		if err := admin.CheckPasswordPolicy(secret); err != nil {
			at.Fail(400, "ClientSecret", "%v", err)
		}
	}
	if at.Get("ClientSecretHash", &secretHash) && secretHash != "" {
		switch {
		case secret != "" || reset:
			at.Fail(400, "ClientSecretHash", "set ClientSecret, ClientSecretHash or ResetClientSecret, not two of them")
		case !koppeltaal.IsSupportedHash(secretHash):
			at.Fail(400, "ClientSecretHash", "not a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash")
		}
		return "", secretHash, false
	}
	if reset && secret == "" {
		return admin.GeneratePassword() + admin.GeneratePassword(), "", true
	}
	return secret, "", false
}

// saveClient validates cfg and stores it through koppeltaal.PutOAuthClient (the file's path too).
func (a *API) saveClient(ctx context.Context, tx *store.Tx, appID int64, cfg koppeltaal.ApplicationConfig, secret koppeltaal.Secret, version int64) error {
	cfg.OAuthSecretHash = secret.Hash
	if err := cfg.Validate(); err != nil {
		return jsonapi.Errorf(400, "Invalid client settings", "%v", err)
	}
	if _, err := koppeltaal.PutOAuthClient(ctx, tx, appID, cfg, secret, version); err != nil {
		return err
	}
	return a.Audit(ctx, tx, "update", fmt.Sprintf("RegisteredClient/%d", appID), 0, "")
}

func (a *API) hashSecret(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return koppeltaal.HashPasswordCost(s, a.kt.BcryptCost)
}

func (a *API) createClient(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	at := NewAttrs(req, append([]string{"ClientId"}, clientWritable...), nil)
	var ident string
	at.Get("ClientId", &ident)
	cfg := koppeltaal.ApplicationConfig{ID: ident}
	secret, hash, generated := applyClientAttrs(at, &cfg)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if hash == "" {
		var err error
		if hash, err = a.hashSecret(secret); err != nil {
			return jsonapi.Resource{}, err
		}
	}
	var out jsonapi.Resource
	err := a.update(ctx, func(tx *store.Tx, v *view) error {
		app, err := tx.ApplicationByIdent(ctx, ident)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !v.seesApplication(app.ID)) {
			return jsonapi.AttrError(400, "ClientId", "Unknown application", "application %q does not exist", ident)
		} else if err != nil {
			return err
		}
		if !v.scope.HasApplication(app.ID) {
			return Forbidden("only a system administrator or an administrator of %q registers its client", ident)
		}
		if _, err := tx.OAuthClientOf(ctx, app.ID); err == nil {
			return jsonapi.Errorf(409, "Conflict", "application %q already has client settings (RegisteredClient/%d): PATCH them", ident, app.ID)
		}
		if app.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("application %q", ident))
		}
		cfg.Name = app.Name
		if err := a.saveClient(ctx, tx, app.ID, cfg, koppeltaal.Secret{Hash: hash, Plain: secret}, 0); err != nil {
			return err
		}
		c, err := tx.OAuthClientOf(ctx, app.ID)
		out = clientOut(c, app.Name)
		return err
	})
	if err == nil && generated {
		out.Meta["client_secret"] = secret
	}
	return out, err
}

func (a *API) patchClient(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	version, err := ParseVersion(req)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, clientWritable, []string{"ClientId", "Name", "HasClientSecret", "ManagedBy", "UpdatedAt"})
	var out jsonapi.Resource
	var secret string
	var generated bool
	err = a.update(ctx, func(tx *store.Tx, v *view) error {
		if !v.seesApplication(n) {
			return jsonapi.ErrNotFound
		}
		cur, err := tx.OAuthClientOf(ctx, n)
		if err != nil {
			return err
		}
		if !v.scope.HasApplication(n) {
			return Forbidden("only a system administrator or an administrator of %q changes its client", cur.Ident)
		}
		if err := at.Err(); err != nil {
			return err
		}
		if cur.ManagedBy == store.ManagedByConfig {
			return ManagedByFile(fmt.Sprintf("the client of application %q is", cur.Ident))
		}
		cfg := koppeltaal.ClientConfig(cur)
		var secretHash string
		secret, secretHash, generated = applyClientAttrs(at, &cfg)
		if err := at.Err(); err != nil {
			return err
		}
		sec := koppeltaal.Secret{Hash: cur.SecretHash}
		if secret != "" {
			if sec.Hash, err = a.hashSecret(secret); err != nil {
				return err
			}
			sec.Plain = secret
		} else if secretHash != "" {
			sec.Hash = secretHash
		}
		if err := a.saveClient(ctx, tx, n, cfg, sec, version); err != nil {
			return err
		}
		c, err := tx.OAuthClientOf(ctx, n)
		out = clientOut(c, v.apps[n].Name)
		return err
	})
	if err == nil && generated {
		out.Meta["client_secret"] = secret
	}
	return out, err
}
