package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrStaleVersion is returned by conditional updates when the row changed
// since the caller read it (optimistic locking, Support API meta.version).
var ErrStaleVersion = errors.New("stale version: the object was changed by someone else")

// ErrConflict is returned when a write would break a uniqueness rule (a
// username or identifier that is already taken).
var ErrConflict = errors.New("already exists")

// Who manages a provisioned object (see docs/admin.md, "configuration file and API").
const (
	ManagedByConfig = "config"
	ManagedByAPI    = "api"
)

// Administrator roles (SPEC.md §2.2).
const (
	RoleSystem      = "system"
	RoleDomain      = "domain"
	RoleApplication = "application"
)

// AdminUser is an administrator account of the console and the Support API.
type AdminUser struct {
	ID           int64  `db:"id"`
	Username     string `db:"username"`
	Name         string `db:"name"`
	Email        string `db:"email"`
	PasswordHash string `db:"password_hash"`
	Role         string `db:"role"`
	Disabled     bool   `db:"disabled"`
	ManagedBy    string `db:"managed_by"`
	RowVersion   int64  `db:"row_version"`
	CreatedAt    int64  `db:"created_at"`
	UpdatedAt    int64  `db:"updated_at"`
	// DomainIDs and ApplicationIDs are what a domain or application administrator administers.
	DomainIDs      []int64 `db:"-"`
	ApplicationIDs []int64 `db:"-"`
}

const adminUserCols = "id, username, name, email, password_hash, role, disabled, managed_by, row_version, created_at, updated_at"

// InsertAdminUser creates an administrator with its scopes; a taken username is ErrConflict.
func (t *Tx) InsertAdminUser(ctx context.Context, u AdminUser) (int64, error) {
	var n int
	if err := t.get(ctx, &n, "SELECT COUNT(*) FROM admin_users WHERE username = ?", u.Username); err != nil {
		return 0, fmt.Errorf("look up administrator %q: %w", u.Username, err)
	}
	if n > 0 {
		return 0, fmt.Errorf("administrator %q: %w", u.Username, ErrConflict)
	}
	now := micros(time.Now())
	if u.ManagedBy == "" {
		u.ManagedBy = ManagedByAPI
	}
	id, err := t.insertID(ctx, `INSERT INTO admin_users (username, name, email, password_hash, role, disabled, managed_by,
		row_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		u.Username, u.Name, u.Email, u.PasswordHash, u.Role, u.Disabled, u.ManagedBy, now, now)
	if err != nil {
		return 0, fmt.Errorf("create administrator %q: %w", u.Username, err)
	}
	if err := t.setAdminScopes(ctx, id, u.DomainIDs, u.ApplicationIDs); err != nil {
		return 0, err
	}
	return id, nil
}

// UpdateAdminUser writes u (all fields and scopes) if its row version is still
// u.RowVersion, and bumps the version; otherwise ErrStaleVersion.
func (t *Tx) UpdateAdminUser(ctx context.Context, u AdminUser) error {
	res, err := t.exec(ctx, `UPDATE admin_users SET name = ?, email = ?, password_hash = ?, role = ?, disabled = ?,
		managed_by = ?, row_version = row_version + 1, updated_at = ? WHERE id = ? AND row_version = ?`,
		u.Name, u.Email, u.PasswordHash, u.Role, u.Disabled, u.ManagedBy, micros(time.Now()), u.ID, u.RowVersion)
	if err != nil {
		return fmt.Errorf("update administrator %q: %w", u.Username, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("administrator %q: %w", u.Username, ErrStaleVersion)
	}
	return t.setAdminScopes(ctx, u.ID, u.DomainIDs, u.ApplicationIDs)
}

func (t *Tx) setAdminScopes(ctx context.Context, userID int64, domains, apps []int64) error {
	if _, err := t.exec(ctx, "DELETE FROM admin_user_domains WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("administrator %d domains: %w", userID, err)
	}
	if _, err := t.exec(ctx, "DELETE FROM admin_user_applications WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("administrator %d applications: %w", userID, err)
	}
	for _, d := range dedupIDs(domains) {
		if _, err := t.exec(ctx, "INSERT INTO admin_user_domains (user_id, domain_id) VALUES (?, ?)", userID, d); err != nil {
			return fmt.Errorf("administrator %d domain %d: %w", userID, d, err)
		}
	}
	for _, a := range dedupIDs(apps) {
		if _, err := t.exec(ctx, "INSERT INTO admin_user_applications (user_id, application_id) VALUES (?, ?)", userID, a); err != nil {
			return fmt.Errorf("administrator %d application %d: %w", userID, a, err)
		}
	}
	return nil
}

func dedupIDs(ids []int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// AdminUserByUsername returns the administrator with its scopes, or ErrNotFound.
func (t *Tx) AdminUserByUsername(ctx context.Context, username string) (AdminUser, error) {
	return t.adminUser(ctx, "username = ?", username)
}

// AdminUserByID returns the administrator with its scopes, or ErrNotFound.
func (t *Tx) AdminUserByID(ctx context.Context, id int64) (AdminUser, error) {
	return t.adminUser(ctx, "id = ?", id)
}

func (t *Tx) adminUser(ctx context.Context, cond string, arg any) (AdminUser, error) {
	var u AdminUser
	err := t.get(ctx, &u, "SELECT "+adminUserCols+" FROM admin_users WHERE "+cond, arg)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("administrator %v: %w", arg, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("look up administrator %v: %w", arg, err)
	}
	return u, t.loadAdminScopes(ctx, &u)
}

func (t *Tx) loadAdminScopes(ctx context.Context, u *AdminUser) error {
	if err := t.sel(ctx, &u.DomainIDs, "SELECT domain_id FROM admin_user_domains WHERE user_id = ? ORDER BY domain_id", u.ID); err != nil {
		return fmt.Errorf("administrator %q domains: %w", u.Username, err)
	}
	if err := t.sel(ctx, &u.ApplicationIDs, "SELECT application_id FROM admin_user_applications WHERE user_id = ? ORDER BY application_id", u.ID); err != nil {
		return fmt.Errorf("administrator %q applications: %w", u.Username, err)
	}
	return nil
}

// AdminUsers lists every administrator with its scopes, ordered by id.
func (t *Tx) AdminUsers(ctx context.Context) ([]AdminUser, error) {
	var us []AdminUser
	if err := t.sel(ctx, &us, "SELECT "+adminUserCols+" FROM admin_users ORDER BY id"); err != nil {
		return nil, fmt.Errorf("list administrators: %w", err)
	}
	for i := range us {
		if err := t.loadAdminScopes(ctx, &us[i]); err != nil {
			return nil, err
		}
	}
	return us, nil
}

// AdminSession is a console login.
type AdminSession struct {
	ID         int64  `db:"id"`
	SecretHash string `db:"secret_hash"`
	CSRFToken  string `db:"csrf_token"`
	UserID     int64  `db:"user_id"`
	Remote     string `db:"remote"`
	CreatedAt  int64  `db:"created_at"`
	LastSeenAt int64  `db:"last_seen_at"`
	ExpiresAt  int64  `db:"expires_at"`
}

// InsertAdminSession stores a new session.
func (t *Tx) InsertAdminSession(ctx context.Context, s AdminSession) (int64, error) {
	id, err := t.insertID(ctx, `INSERT INTO admin_sessions (secret_hash, csrf_token, user_id, remote, created_at,
		last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.SecretHash, s.CSRFToken, s.UserID, s.Remote, s.CreatedAt, s.LastSeenAt, s.ExpiresAt)
	if err != nil {
		return 0, fmt.Errorf("create session: %w", err)
	}
	return id, nil
}

// AdminSessionByHash returns the session with that secret hash, or ErrNotFound.
func (t *Tx) AdminSessionByHash(ctx context.Context, hash string) (AdminSession, error) {
	var s AdminSession
	err := t.get(ctx, &s, `SELECT id, secret_hash, csrf_token, user_id, remote, created_at, last_seen_at, expires_at
		FROM admin_sessions WHERE secret_hash = ?`, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("session: %w", ErrNotFound)
	}
	return s, err
}

// TouchAdminSession records activity on a session and moves its expiry.
func (t *Tx) TouchAdminSession(ctx context.Context, id, now, expires int64) error {
	_, err := t.exec(ctx, "UPDATE admin_sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?", now, expires, id)
	return err
}

// DeleteAdminSession ends a session (logout).
func (t *Tx) DeleteAdminSession(ctx context.Context, hash string) error {
	_, err := t.exec(ctx, "DELETE FROM admin_sessions WHERE secret_hash = ?", hash)
	return err
}

// DeleteAdminSessionsOf ends every session of a user (password change, disabled account).
func (t *Tx) DeleteAdminSessionsOf(ctx context.Context, userID int64) error {
	_, err := t.exec(ctx, "DELETE FROM admin_sessions WHERE user_id = ?", userID)
	return err
}

// PurgeAdminSessions deletes sessions that expired before now; it returns how many.
func (t *Tx) PurgeAdminSessions(ctx context.Context, now int64) (int64, error) {
	res, err := t.exec(ctx, "DELETE FROM admin_sessions WHERE expires_at < ?", now)
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return res.RowsAffected()
}

// AdminToken is an API token of an administrator.
type AdminToken struct {
	ID         int64         `db:"id"`
	SecretHash string        `db:"secret_hash"`
	UserID     int64         `db:"user_id"`
	Name       string        `db:"name"`
	CreatedAt  int64         `db:"created_at"`
	ExpiresAt  int64         `db:"expires_at"`
	LastUsedAt int64         `db:"last_used_at"`
	RevokedAt  sql.NullInt64 `db:"revoked_at"`
}

const adminTokenCols = "id, secret_hash, user_id, name, created_at, expires_at, last_used_at, revoked_at"

// InsertAdminToken stores a new token.
func (t *Tx) InsertAdminToken(ctx context.Context, k AdminToken) (int64, error) {
	id, err := t.insertID(ctx, `INSERT INTO admin_tokens (secret_hash, user_id, name, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, k.SecretHash, k.UserID, k.Name, k.CreatedAt, k.ExpiresAt)
	if err != nil {
		return 0, fmt.Errorf("create token: %w", err)
	}
	return id, nil
}

// AdminTokenByHash returns the token with that secret hash, or ErrNotFound.
func (t *Tx) AdminTokenByHash(ctx context.Context, hash string) (AdminToken, error) {
	var k AdminToken
	err := t.get(ctx, &k, "SELECT "+adminTokenCols+" FROM admin_tokens WHERE secret_hash = ?", hash)
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("token: %w", ErrNotFound)
	}
	return k, err
}

// AdminTokens lists a user's tokens, newest first.
func (t *Tx) AdminTokens(ctx context.Context, userID int64) ([]AdminToken, error) {
	var ks []AdminToken
	err := t.sel(ctx, &ks, "SELECT "+adminTokenCols+" FROM admin_tokens WHERE user_id = ? ORDER BY id DESC", userID)
	return ks, err
}

// TouchAdminToken records that a token was used.
func (t *Tx) TouchAdminToken(ctx context.Context, id, now int64) error {
	_, err := t.exec(ctx, "UPDATE admin_tokens SET last_used_at = ? WHERE id = ?", now, id)
	return err
}

// RevokeAdminTokensOf revokes every token of a user that is not revoked yet (disabled account, role or
// password changed); it returns how many.
func (t *Tx) RevokeAdminTokensOf(ctx context.Context, userID, now int64) (int64, error) {
	res, err := t.exec(ctx, "UPDATE admin_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", now, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of administrator %d: %w", userID, err)
	}
	return res.RowsAffected()
}

// RevokeAdminToken revokes token id of userID; ErrNotFound when the user has no such token.
func (t *Tx) RevokeAdminToken(ctx context.Context, userID, id, now int64) error {
	res, err := t.exec(ctx, "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL", now, id, userID)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	return nil
}
