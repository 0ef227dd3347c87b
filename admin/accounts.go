package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// AuthLimiter throttles failed logins per account and address (internal/loginlimit.Limiter is one).
type AuthLimiter interface {
	Allow(r *http.Request, account string) bool
	Failed(r *http.Request, account string)
	Succeeded(r *http.Request, account string)
}

// Options configure New.
type Options struct {
	Store  *store.Store
	Config Config
	Logger *slog.Logger
	// Limiter throttles failed logins and token uses; nil: no throttling.
	Limiter AuthLimiter
	// Auditor records administrative actions; nil: LogAuditor over Logger.
	Auditor Auditor
	// SecureCookies forces the Secure attribute on session cookies. Without it
	// cookies are Secure when the request came over TLS (or a trusted proxy says https: server.trusted_proxies).
	SecureCookies bool
}

// Accounts authenticates administrators and manages their accounts, sessions and tokens.
type Accounts struct {
	st      *store.Store
	cfg     Config
	log     *slog.Logger
	limit   AuthLimiter
	audit   Auditor
	secure  bool
	mu      sync.Mutex
	now     func() time.Time
	dummyPw func() string
}

// New returns the accounts service; it does not touch the database (see ApplyConfig).
func New(opts Options) (*Accounts, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: New needs a Store")
	}
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Auditor == nil {
		opts.Auditor = LogAuditor{Logger: opts.Logger}
	}
	a := &Accounts{st: opts.Store, cfg: cfg, log: opts.Logger, limit: opts.Limiter, audit: opts.Auditor,
		secure: opts.SecureCookies, now: time.Now}
	a.dummyPw = sync.OnceValue(func() string {
		h, _ := koppeltaal.HashPasswordCost(randomSecret(), cfg.BcryptCost)
		return h
	})
	return a, nil
}

// Store returns the store the accounts live in.
func (a *Accounts) Store() *store.Store { return a.st }

// Auditor returns where administrative actions are recorded.
func (a *Accounts) Auditor() Auditor { return a.audit }

// SetClock replaces the clock (tests: session expiry).
func (a *Accounts) SetClock(now func() time.Time) {
	a.mu.Lock()
	a.now = now
	a.mu.Unlock()
}

func (a *Accounts) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now()
}

// NewUser is an administrator to create (CLI, Support API).
type NewUser struct {
	Username, Name, Email, Password, Role string
	// PasswordHash is a bcrypt or argon2id hash made elsewhere (the file's password_hash), instead of Password.
	PasswordHash string
	// Domains (names) and Applications (ids) the administrator administers.
	Domains, Applications []string
}

// ErrInvalid wraps a refusal of bad input (the message says what is wrong).
var ErrInvalid = errors.New("invalid")

// newUserHash is the stored hash of u's password: its PasswordHash, checked, or its Password, hashed.
func (a *Accounts) newUserHash(u NewUser) (string, error) {
	if u.PasswordHash != "" {
		if u.Password != "" || !koppeltaal.IsSupportedHash(u.PasswordHash) {
			return "", fmt.Errorf("%w: password hash: want a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash instead of a password", ErrInvalid)
		}
		return u.PasswordHash, nil
	}
	if err := CheckPasswordPolicy(u.Password); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return koppeltaal.HashPasswordCost(u.Password, a.cfg.BcryptCost)
}

// CreateUser validates and creates an administrator managed by the API.
func (a *Accounts) CreateUser(ctx context.Context, tx *store.Tx, u NewUser) (store.AdminUser, error) {
	if err := checkUser(u.Username, u.Role, u.Domains, u.Applications); err != nil {
		return store.AdminUser{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	hash, err := a.newUserHash(u)
	if err != nil {
		return store.AdminUser{}, err
	}
	row := store.AdminUser{Username: u.Username, Name: u.Name, Email: u.Email, PasswordHash: hash, Role: u.Role,
		ManagedBy: store.ManagedByAPI}
	if row.DomainIDs, row.ApplicationIDs, err = resolveScopes(ctx, tx, u.Domains, u.Applications); err != nil {
		return store.AdminUser{}, err
	}
	if row.ID, err = tx.InsertAdminUser(ctx, row); err != nil {
		return store.AdminUser{}, err
	}
	return tx.AdminUserByID(ctx, row.ID)
}

// resolveScopes turns domain names and application ids into row ids; unknown ones are ErrInvalid.
func resolveScopes(ctx context.Context, tx *store.Tx, domains, apps []string) (dIDs, aIDs []int64, err error) {
	for _, name := range domains {
		d, err := tx.DomainByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: domain %q does not exist", ErrInvalid, name)
		} else if err != nil {
			return nil, nil, err
		}
		dIDs = append(dIDs, d.ID)
	}
	for _, ident := range apps {
		app, err := tx.ApplicationByIdent(ctx, ident)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: application %q does not exist", ErrInvalid, ident)
		} else if err != nil {
			return nil, nil, err
		}
		aIDs = append(aIDs, app.ID)
	}
	return dIDs, aIDs, nil
}

// ApplyConfig creates or updates the administrators declared in the file
// (managed by the file from then on) in one transaction. A plain-text password
// that still matches is not rehashed. Administrators removed from the file
// are disabled, like removed instances.
func (a *Accounts) ApplyConfig(ctx context.Context) error {
	hashes := make([]string, len(a.cfg.Users))
	for i, u := range a.cfg.Users {
		hashes[i] = u.PasswordHash
		if u.Password != "" {
			h, err := koppeltaal.HashPasswordCost(u.Password, a.cfg.BcryptCost)
			if err != nil {
				return fmt.Errorf("admin.users[%d]: %w", i, err)
			}
			hashes[i] = h
		}
	}
	return a.st.Update(ctx, func(tx *store.Tx) error {
		declared := map[string]bool{}
		for i, u := range a.cfg.Users {
			where := fmt.Sprintf("admin.users[%d] (username %q)", i, u.Username)
			declared[u.Username] = true
			dIDs, aIDs, err := resolveScopes(ctx, tx, u.Domains, u.Applications)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			cur, err := tx.AdminUserByUsername(ctx, u.Username)
			if errors.Is(err, store.ErrNotFound) {
				_, err = tx.InsertAdminUser(ctx, store.AdminUser{Username: u.Username, Name: u.Name, Email: u.Email,
					PasswordHash: hashes[i], Role: u.Role, ManagedBy: store.ManagedByConfig, DomainIDs: dIDs, ApplicationIDs: aIDs})
				if err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				continue
			} else if err != nil {
				return err
			}
			if cur.ManagedBy != store.ManagedByConfig {
				a.log.Warn("admin: an administrator created through the API is now managed by the configuration file",
					"username", u.Username)
			}
			next := cur
			next.Name, next.Email, next.Role, next.Disabled, next.ManagedBy = u.Name, u.Email, u.Role, false, store.ManagedByConfig
			next.DomainIDs, next.ApplicationIDs = dIDs, aIDs
			if u.PasswordHash != "" && cur.PasswordHash != u.PasswordHash ||
				u.Password != "" && !koppeltaal.CheckPassword(cur.PasswordHash, u.Password) {
				next.PasswordHash = hashes[i]
			}
			if sameUser(cur, next) {
				continue
			}
			if err := tx.UpdateAdminUser(ctx, next); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if endsAccess(cur, next) {
				if err := a.endAccess(ctx, tx, cur.ID); err != nil {
					return err
				}
			}
		}
		all, err := tx.AdminUsers(ctx)
		if err != nil {
			return err
		}
		for _, u := range all {
			if u.ManagedBy != store.ManagedByConfig || declared[u.Username] || u.Disabled {
				continue
			}
			u.Disabled = true
			if err := tx.UpdateAdminUser(ctx, u); err != nil {
				return err
			}
			if err := a.endAccess(ctx, tx, u.ID); err != nil {
				return err
			}
			a.log.Warn("admin: administrator removed from the configuration file is disabled", "username", u.Username)
		}
		return nil
	})
}

// endsAccess reports whether a change from cur to next ends the account's sessions and API tokens:
// disabling it, or changing its role or password (a token or session must not outlive the decision
// that it was given under).
func endsAccess(cur, next store.AdminUser) bool {
	return next.Disabled && !cur.Disabled || next.Role != cur.Role || next.PasswordHash != cur.PasswordHash
}

// endAccess ends every console session and revokes every API token of user id, in tx: from its commit
// on, the next request with any of them is 401 in every process sharing the database (Authenticate
// reads the session or token row and the account on each request; nothing is cached).
func (a *Accounts) endAccess(ctx context.Context, tx *store.Tx, id int64) error {
	if err := tx.DeleteAdminSessionsOf(ctx, id); err != nil {
		return fmt.Errorf("end sessions of administrator %d: %w", id, err)
	}
	_, err := tx.RevokeAdminTokensOf(ctx, id, a.clock().UnixMicro())
	return err
}

// UserChange is a change of an administrator (Support API); nil fields stay as they are.
type UserChange struct {
	Name, Email, Role     *string
	PasswordHash          *string // from HashPassword (outside the transaction: bcrypt is slow on purpose)
	Domains, Applications *[]string
	Disabled              *bool
}

// HashPassword checks an administrator password against the policy (ErrInvalid) and hashes it.
func (a *Accounts) HashPassword(password string) (string, error) {
	if err := CheckPasswordPolicy(password); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return koppeltaal.HashPasswordCost(password, a.cfg.BcryptCost)
}

// UpdateUser applies ch to administrator id in tx if its row is still at version (else
// store.ErrStaleVersion). Bad values are ErrInvalid. Disabling the account or changing its role or
// password ends its sessions and API tokens in the same transaction (endAccess).
func (a *Accounts) UpdateUser(ctx context.Context, tx *store.Tx, id, version int64, ch UserChange) (store.AdminUser, error) {
	cur, err := tx.AdminUserByID(ctx, id)
	if err != nil {
		return cur, err
	}
	if cur.RowVersion != version {
		return cur, store.ErrStaleVersion
	}
	next := cur
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.Name, ch.Name)
	set(&next.Email, ch.Email)
	set(&next.Role, ch.Role)
	if ch.Disabled != nil {
		next.Disabled = *ch.Disabled
	}
	domains, apps, err := a.scopeNamesOf(ctx, tx, cur)
	if err != nil {
		return cur, err
	}
	if ch.Domains != nil {
		domains = *ch.Domains
	}
	if ch.Applications != nil {
		apps = *ch.Applications
	}
	if ch.Role != nil && *ch.Role != cur.Role { // a new role drops the scope of the old one unless one is given
		if ch.Domains == nil && *ch.Role != RoleDomain {
			domains = nil
		}
		if ch.Applications == nil && *ch.Role != RoleApplication {
			apps = nil
		}
	}
	if err := checkUser(next.Username, next.Role, domains, apps); err != nil {
		return cur, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if next.DomainIDs, next.ApplicationIDs, err = resolveScopes(ctx, tx, domains, apps); err != nil {
		return cur, err
	}
	set(&next.PasswordHash, ch.PasswordHash)
	if err := tx.UpdateAdminUser(ctx, next); err != nil {
		return cur, err
	}
	if endsAccess(cur, next) {
		if err := a.endAccess(ctx, tx, id); err != nil {
			return cur, err
		}
	}
	return tx.AdminUserByID(ctx, id)
}

// scopeNamesOf names the domains and applications u administers (as checkUser and resolveScopes take them).
func (a *Accounts) scopeNamesOf(ctx context.Context, tx *store.Tx, u store.AdminUser) (domains, apps []string, err error) {
	for _, id := range u.DomainIDs {
		d, err := tx.DomainByID(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		domains = append(domains, d.Name)
	}
	for _, id := range u.ApplicationIDs {
		app, err := tx.ApplicationByID(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, app.Ident)
	}
	return domains, apps, nil
}

func sameUser(a, b store.AdminUser) bool {
	return a.Name == b.Name && a.Email == b.Email && a.Role == b.Role && a.Disabled == b.Disabled &&
		a.ManagedBy == b.ManagedBy && a.PasswordHash == b.PasswordHash &&
		fmt.Sprint(a.DomainIDs) == fmt.Sprint(b.DomainIDs) && fmt.Sprint(a.ApplicationIDs) == fmt.Sprint(b.ApplicationIDs)
}

// ErrUnauthorized is every failed login or token check: unknown user, wrong
// password, disabled account, expired or revoked session or token.
var ErrUnauthorized = errors.New("admin: not authenticated")

// ErrThrottled is a login refused because of too many failures from the address.
var ErrThrottled = errors.New("admin: too many failed attempts; try again later")

// checkLogin verifies username and password; unknown users cost a hash check too.
func (a *Accounts) checkLogin(ctx context.Context, username, password string) (store.AdminUser, error) {
	var u store.AdminUser
	err := a.st.View(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.AdminUserByUsername(ctx, username)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		_ = koppeltaal.CheckPassword(a.dummyPw(), password)
		return u, ErrUnauthorized
	}
	if err != nil {
		return u, err
	}
	if !koppeltaal.CheckPassword(u.PasswordHash, password) || u.Disabled {
		return u, ErrUnauthorized
	}
	return u, nil
}
