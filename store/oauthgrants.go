package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// OAuth grants (the Support API's Authorization, SPEC.md §8.1): one per exchanged authorization code, with
// the tokens that exchange and the refreshes after it produced (oauth_tokens.chain = "code-<code id>").
// koppeltaal/oauth writes these tables; revoking a grant here is what its refresh-reuse detection does too.

// Grant statuses (Authorization.GrantStatus).
const (
	GrantActive  = "Active" // a token of the chain can still be used or refreshed
	GrantExpired = "Expired"
	GrantRevoked = "Revoked"
)

// OAuthGrant is one authorization and the state of its token chain.
type OAuthGrant struct {
	Chain       string `db:"chain"`
	LaunchID    int64  `db:"launch_id"`
	ClientID    string `db:"client_id"`
	InstanceID  int64  `db:"instance_id"` // the launched application's instance
	LaunchKind  string `db:"kind"`        // web | mobile
	Patient     string `db:"patient"`
	User        string `db:"user_ref"`
	Resource    string `db:"resource"`
	RedirectURI string `db:"redirect_uri"` // while the code is kept (oauth.PurgeAfter)
	Scope       string `db:"scope"`
	// AuthorizedAt is when the first token was issued.
	AuthorizedAt int64 `db:"authorized_at"`
	// Tokens is how many access tokens the chain holds (the first and one per refresh).
	Tokens           int           `db:"tokens"`
	AccessExpiresAt  int64         `db:"access_expires_at"`
	RefreshExpiresAt int64         `db:"refresh_expires_at"`
	RevokedAt        sql.NullInt64 `db:"revoked_at"`
}

// ChainOfCode is the oauth_tokens.chain of the tokens an authorization code produced.
func ChainOfCode(codeID int64) string { return "code-" + strconv.FormatInt(codeID, 10) }

// ID is the grant's id: the number of the authorization code it started from.
func (g OAuthGrant) ID() int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(g.Chain, "code-"), 10, 64)
	return n
}

// Status is the grant's GrantStatus at now (µs).
func (g OAuthGrant) Status(now int64) string {
	switch {
	case g.RevokedAt.Valid:
		return GrantRevoked
	case now < g.AccessExpiresAt || now < g.RefreshExpiresAt:
		return GrantActive
	}
	return GrantExpired
}

// ExpiresAt is when the grant stops being usable: the end of its last access or refresh token.
func (g OAuthGrant) ExpiresAt() int64 { return max(g.AccessExpiresAt, g.RefreshExpiresAt) }

// Version is the grant's optimistic-lock version: it changes with every token the chain gets and with a
// revocation, so a PATCH made on what an administrator saw fails when a refresh happened meanwhile.
func (g OAuthGrant) Version() int64 {
	v := int64(g.Tokens)
	if g.RevokedAt.Valid {
		v++
	}
	return v
}

// GrantFilter selects grants; zero fields match everything. InstanceIDs limits them to those instances
// (the caller's scope); nil means every instance, an empty non-nil slice none.
type GrantFilter struct {
	Chain       string
	ClientID    string
	InstanceIDs []int64
	Patient     string
	// Limit and Offset page the list, newest first (Limit 0: no limit).
	Limit, Offset int
}

func (f GrantFilter) where() (string, []any) {
	var conds []string
	var args []any
	if f.Chain != "" {
		conds, args = append(conds, "t.chain = ?"), append(args, f.Chain)
	}
	if f.ClientID != "" {
		conds, args = append(conds, "t.client_id = ?"), append(args, f.ClientID)
	}
	if f.Patient != "" {
		conds, args = append(conds, "t.launch_id IN (SELECT id FROM oauth_launches WHERE patient = ?)"), append(args, f.Patient)
	}
	if f.InstanceIDs != nil {
		if len(f.InstanceIDs) == 0 {
			conds = append(conds, "1 = 0")
		} else {
			q, a := inQueryInt("t.instance_id IN (?)", nil, f.InstanceIDs)
			conds, args = append(conds, q), append(args, a...)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// OAuthGrants lists the grants matching f, newest first, and how many match in all.
func (t *Tx) OAuthGrants(ctx context.Context, f GrantFilter) ([]OAuthGrant, int, error) {
	where, args := f.where()
	var total int
	if err := t.get(ctx, &total, "SELECT COUNT(DISTINCT t.chain) FROM oauth_tokens t"+where, args...); err != nil {
		return nil, 0, fmt.Errorf("count oauth grants: %w", err)
	}
	// A chain's tokens share launch, client and instance; a launch is used once, so it has one code.
	q := `SELECT g.chain, g.launch_id, g.client_id, g.instance_id, g.scope, g.authorized_at, g.tokens, g.access_expires_at,
		g.refresh_expires_at, g.revoked_at, l.kind, l.patient, l.user_ref, l.resource, COALESCE(c.redirect_uri, '') AS redirect_uri
		FROM (SELECT t.chain, MIN(t.launch_id) AS launch_id, MIN(t.client_id) AS client_id, MIN(t.instance_id) AS instance_id,
			MIN(t.scope) AS scope, MIN(t.created_at) AS authorized_at, COUNT(*) AS tokens, MAX(t.access_expires_at) AS access_expires_at,
			MAX(t.refresh_expires_at) AS refresh_expires_at, MAX(t.revoked_at) AS revoked_at, MAX(t.id) AS last_id
			FROM oauth_tokens t` + where + ` GROUP BY t.chain) g
		JOIN oauth_launches l ON l.id = g.launch_id
		LEFT JOIN oauth_codes c ON c.launch_id = g.launch_id
		ORDER BY g.last_id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d OFFSET %d", f.Limit, f.Offset)
	}
	var out []OAuthGrant
	if err := t.sel(ctx, &out, q, args...); err != nil {
		return nil, 0, fmt.Errorf("list oauth grants: %w", err)
	}
	return out, total, nil
}

// OAuthGrant returns the grant of chain, or ErrNotFound.
func (t *Tx) OAuthGrant(ctx context.Context, chain string) (OAuthGrant, error) {
	gs, _, err := t.OAuthGrants(ctx, GrantFilter{Chain: chain})
	if err != nil {
		return OAuthGrant{}, err
	}
	if len(gs) == 0 {
		return OAuthGrant{}, fmt.Errorf("oauth grant %s: %w", chain, ErrNotFound)
	}
	return gs[0], nil
}

// RevokeTokenChain revokes every token of chain at now (µs): from the next request on, in every process
// (the Bearer check and the refresh read the row), none of them is accepted. It returns how many tokens
// it revoked.
func (t *Tx) RevokeTokenChain(ctx context.Context, chain string, now int64) (int64, error) {
	res, err := t.exec(ctx, "UPDATE oauth_tokens SET revoked_at = ? WHERE chain = ? AND revoked_at IS NULL", now, chain)
	if err != nil {
		return 0, fmt.Errorf("revoke token chain %s: %w", chain, err)
	}
	return res.RowsAffected()
}
