package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OAuthClient is an application's OAuth client settings (RegisteredClient).
// Lists (redirect URIs, allowed origins) are stored one per line.
type OAuthClient struct {
	ApplicationID  int64  `db:"application_id"`
	Ident          string `db:"ident"` // the client_id
	ManagedBy      string `db:"managed_by"`
	SecretHash     string `db:"secret_hash"`
	LaunchURL      string `db:"launch_url"`
	RedirectURIs   string `db:"redirect_uris"`
	PublicClient   bool   `db:"public_client"`
	RefreshTokens  bool   `db:"refresh_tokens"`
	TokenLifetime  int64  `db:"token_lifetime"` // µs
	CodeLifetime   int64  `db:"code_lifetime"`
	LaunchLifetime int64  `db:"launch_lifetime"`
	ActivationDays int    `db:"activation_days"`
	AllowedOrigins string `db:"allowed_origins"`
	RowVersion     int64  `db:"row_version"`
	UpdatedAt      int64  `db:"updated_at"`
}

const oauthClientSelect = `SELECT c.application_id, a.ident, a.managed_by, c.secret_hash, c.launch_url, c.redirect_uris,
	c.public_client, c.refresh_tokens, c.token_lifetime, c.code_lifetime, c.launch_lifetime, c.activation_days,
	c.allowed_origins, c.row_version, c.updated_at FROM oauth_clients c JOIN applications a ON a.id = c.application_id `

// OAuthClients lists every application's OAuth client settings, ordered by client_id.
func (t *Tx) OAuthClients(ctx context.Context) ([]OAuthClient, error) {
	var cs []OAuthClient
	if err := t.sel(ctx, &cs, oauthClientSelect+"ORDER BY a.ident"); err != nil {
		return nil, fmt.Errorf("list oauth clients: %w", err)
	}
	return cs, nil
}

// OAuthClientOf returns the settings of one application, or ErrNotFound.
func (t *Tx) OAuthClientOf(ctx context.Context, applicationID int64) (OAuthClient, error) {
	var c OAuthClient
	err := t.get(ctx, &c, oauthClientSelect+"WHERE c.application_id = ?", applicationID)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("oauth client of application %d: %w", applicationID, ErrNotFound)
	}
	return c, err
}

// PutOAuthClient creates or replaces c's settings. The secret hash is kept
// when keepSecret reports true for the stored one (an unchanged plain-text
// secret is not rehashed). With c.RowVersion set, an update only happens when
// the row still has that version (ErrStaleVersion otherwise).
func (t *Tx) PutOAuthClient(ctx context.Context, c OAuthClient, keepSecret func(stored string) bool) (changed bool, err error) {
	now := micros(time.Now())
	cur, err := t.OAuthClientOf(ctx, c.ApplicationID)
	if errors.Is(err, ErrNotFound) {
		_, err = t.exec(ctx, `INSERT INTO oauth_clients (application_id, secret_hash, launch_url, redirect_uris, public_client,
			refresh_tokens, token_lifetime, code_lifetime, launch_lifetime, activation_days, allowed_origins, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ApplicationID, c.SecretHash, c.LaunchURL, c.RedirectURIs, c.PublicClient,
			c.RefreshTokens, c.TokenLifetime, c.CodeLifetime, c.LaunchLifetime, c.ActivationDays, c.AllowedOrigins, now)
		if err != nil {
			return false, fmt.Errorf("create oauth client %d: %w", c.ApplicationID, err)
		}
		t.instChanged = true
		return true, nil
	} else if err != nil {
		return false, err
	}
	if c.RowVersion != 0 && c.RowVersion != cur.RowVersion {
		return false, fmt.Errorf("oauth client %q: %w", cur.Ident, ErrStaleVersion)
	}
	if keepSecret != nil && keepSecret(cur.SecretHash) {
		c.SecretHash = cur.SecretHash
	}
	if c.SecretHash == cur.SecretHash && c.LaunchURL == cur.LaunchURL && c.RedirectURIs == cur.RedirectURIs &&
		c.PublicClient == cur.PublicClient && c.RefreshTokens == cur.RefreshTokens && c.TokenLifetime == cur.TokenLifetime &&
		c.CodeLifetime == cur.CodeLifetime && c.LaunchLifetime == cur.LaunchLifetime && c.ActivationDays == cur.ActivationDays &&
		c.AllowedOrigins == cur.AllowedOrigins {
		return false, nil
	}
	res, err := t.exec(ctx, `UPDATE oauth_clients SET secret_hash = ?, launch_url = ?, redirect_uris = ?, public_client = ?,
		refresh_tokens = ?, token_lifetime = ?, code_lifetime = ?, launch_lifetime = ?, activation_days = ?, allowed_origins = ?,
		row_version = row_version + 1, updated_at = ? WHERE application_id = ? AND row_version = ?`,
		c.SecretHash, c.LaunchURL, c.RedirectURIs, c.PublicClient, c.RefreshTokens, c.TokenLifetime, c.CodeLifetime,
		c.LaunchLifetime, c.ActivationDays, c.AllowedOrigins, now, c.ApplicationID, cur.RowVersion)
	if err != nil {
		return false, fmt.Errorf("update oauth client %q: %w", cur.Ident, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, fmt.Errorf("oauth client %q: %w", cur.Ident, ErrStaleVersion)
	}
	t.instChanged = true
	return true, nil
}
