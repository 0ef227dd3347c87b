package koppeltaal

import (
	"context"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// OAuth client settings are stored per application (store.OAuthClient), by
// Apply from the file and by the Support API's RegisteredClient, so that
// koppeltaal/oauth reads them from the database and sees changes without a restart.

// ClientRow turns an application's SSO settings into its stored row.
func ClientRow(appID int64, a ApplicationConfig, secretHash string) store.OAuthClient {
	a.SetDefaults()
	return store.OAuthClient{ApplicationID: appID, Ident: a.ID, SecretHash: secretHash, LaunchURL: a.LaunchURL,
		RedirectURIs: strings.Join(a.RedirectURIs, "\n"), PublicClient: a.PublicClient, RefreshTokens: a.RefreshTokens,
		TokenLifetime: a.TokenLifetime.Microseconds(), CodeLifetime: a.CodeLifetime.Microseconds(),
		LaunchLifetime: a.LaunchLifetime.Microseconds(), ActivationDays: a.ActivationCodeLifetimeDays,
		AllowedOrigins: strings.Join(a.AllowedOrigins, "\n")}
}

// ClientConfig is the inverse of ClientRow: the settings with the secret as OAuthSecretHash.
func ClientConfig(c store.OAuthClient) ApplicationConfig {
	a := ApplicationConfig{ID: c.Ident, OAuthSecretHash: c.SecretHash, LaunchURL: c.LaunchURL, RedirectURIs: lines(c.RedirectURIs),
		PublicClient: c.PublicClient, RefreshTokens: c.RefreshTokens, TokenLifetime: time.Duration(c.TokenLifetime) * time.Microsecond,
		CodeLifetime: time.Duration(c.CodeLifetime) * time.Microsecond, LaunchLifetime: time.Duration(c.LaunchLifetime) * time.Microsecond,
		ActivationCodeLifetimeDays: c.ActivationDays, AllowedOrigins: lines(c.AllowedOrigins)}
	a.SetDefaults()
	return a
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// PutOAuthClient stores the SSO settings of application appID (see PutDomain
// for version). Apply and the Support API both go through it.
func PutOAuthClient(ctx context.Context, tx *store.Tx, appID int64, a ApplicationConfig, secret Secret, version int64) (bool, error) {
	keep := func(stored string) bool {
		if secret.Plain == "" {
			return stored == secret.Hash
		}
		return stored != "" && CheckPassword(stored, secret.Plain)
	}
	row := ClientRow(appID, a, secret.Hash)
	row.RowVersion = version
	return tx.PutOAuthClient(ctx, row, keep)
}
