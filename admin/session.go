package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/store"
)

// Principal is an authenticated administrator.
type Principal struct {
	User store.AdminUser
	// Via is "session" (console cookie) or "token" (API token).
	Via string
	// CSRF is the session's anti-forgery token (sessions only).
	CSRF      string
	sessionID int64
	// Remote is the caller's address, for the audit trail.
	Remote string
}

// Scope returns what the principal administers.
func (p *Principal) Scope() Scope {
	return Scope{All: p.User.Role == RoleSystem, Role: p.User.Role,
		DomainIDs: p.User.DomainIDs, ApplicationIDs: p.User.ApplicationIDs}
}

// Scope is the part of the server an administrator may see and change.
// System administrators see everything; domain administrators their domains
// (every application instance and message in them); application
// administrators their applications, those applications' instances (in any
// domain) and the messages those instances sent or received.
type Scope struct {
	All            bool
	Role           string
	DomainIDs      []int64
	ApplicationIDs []int64
}

// HasDomain reports whether the scope administers the whole domain.
func (s Scope) HasDomain(id int64) bool { return s.All || contains(s.DomainIDs, id) }

// HasApplication reports whether the scope administers the application.
func (s Scope) HasApplication(id int64) bool { return s.All || contains(s.ApplicationIDs, id) }

// HasInstance reports whether the scope administers an instance of appID in domainID.
func (s Scope) HasInstance(domainID, appID int64) bool {
	return s.HasDomain(domainID) || s.HasApplication(appID)
}

func contains(ids []int64, id int64) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

// Cookie names: __Host- binds the cookie to this host and path / over TLS (RFC 6265bis).
const (
	sessionCookie       = "kp_session"
	secureSessionCookie = "__Host-kp_session"
	// CSRFHeader must carry the session's CSRF token on every unsafe request made with a session cookie.
	CSRFHeader = "X-CSRF-Token"
	// TokenPrefix starts every API token, so leaked tokens are recognisable (secret scanners).
	TokenPrefix = "kpat_"
)

func randomSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret is how session and token secrets are stored: random 256-bit
// values need no salt or slow hash.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (a *Accounts) secureRequest(r *http.Request) bool {
	return a.secure || server.Scheme(r) == "https" // TLS, or a trusted proxy's X-Forwarded-Proto
}

// Login checks the credentials and starts a session: it sets the session
// cookie on w and returns the principal (with its CSRF token).
func (a *Accounts) Login(w http.ResponseWriter, r *http.Request, username, password string) (*Principal, error) {
	if a.limit != nil && !a.limit.Allow(r, username) {
		return nil, ErrThrottled
	}
	ctx := audit.WithRequest(r.Context(), audit.RequestFromHTTP(r)) // source and request id for the trail
	u, err := a.checkLogin(ctx, username, password)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) && a.limit != nil {
			a.limit.Failed(r, username)
		}
		a.log.Info("admin: login refused", "username", username, "remote", remoteAddr(r))
		if errors.Is(err, ErrUnauthorized) { // a refused login is traced too (who tried, from where)
			a.audit.Read(ctx, Action{Principal: &Principal{User: store.AdminUser{Username: username}, Via: "session", Remote: remoteAddr(r)},
				Verb: "login refused"})
		}
		return nil, err
	}
	if a.limit != nil {
		a.limit.Succeeded(r, username)
	}
	now := a.clock()
	secret := randomSecret()
	sess := store.AdminSession{SecretHash: hashSecret(secret), CSRFToken: randomSecret(), UserID: u.ID,
		Remote: remoteAddr(r), CreatedAt: now.UnixMicro(), LastSeenAt: now.UnixMicro(),
		ExpiresAt: now.Add(a.cfg.SessionIdle).UnixMicro()}
	p := &Principal{User: u, Via: "session", CSRF: sess.CSRFToken, Remote: sess.Remote}
	err = a.st.Update(ctx, func(tx *store.Tx) error {
		id, err := tx.InsertAdminSession(ctx, sess)
		p.sessionID = id
		if err != nil {
			return err
		}
		return a.audit.Record(ctx, tx, Action{Principal: p, Verb: "login", Object: "AdminUser/" + fmt.Sprint(u.ID)})
	})
	if err != nil {
		return nil, err
	}
	name := sessionCookie
	if a.secureRequest(r) {
		name = secureSessionCookie
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: secret, Path: "/", HttpOnly: true, Secure: a.secureRequest(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(a.cfg.SessionMax.Seconds())})
	return p, nil
}

// Logout ends the request's session (if any) and clears the cookie.
func (a *Accounts) Logout(w http.ResponseWriter, r *http.Request) error {
	for _, name := range []string{secureSessionCookie, sessionCookie} {
		c, err := r.Cookie(name)
		if err != nil {
			continue
		}
		if err := a.st.Update(r.Context(), func(tx *store.Tx) error {
			return tx.DeleteAdminSession(r.Context(), hashSecret(c.Value))
		}); err != nil {
			return err
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", HttpOnly: true, Secure: name == secureSessionCookie,
			SameSite: http.SameSiteStrictMode, MaxAge: -1})
	}
	return nil
}

// ErrCSRF is an unsafe request with a session cookie but without the right CSRF token or from another origin.
var ErrCSRF = errors.New("admin: missing or wrong CSRF token (send the session's token in " + CSRFHeader + ")")

// Authenticate identifies the administrator behind r: an API token
// (Authorization: Bearer kpat_…) or a session cookie. Unsafe methods with a
// cookie need the CSRF header and, when the browser sends one, a same-origin
// Origin header. No credentials, or bad ones, give ErrUnauthorized.
func (a *Accounts) Authenticate(r *http.Request) (*Principal, error) {
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, tok, _ := strings.Cut(authz, " ")
		if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(strings.TrimSpace(tok), TokenPrefix) {
			return nil, ErrUnauthorized
		}
		return a.authToken(r, strings.TrimSpace(tok))
	}
	for _, name := range []string{secureSessionCookie, sessionCookie} {
		if c, err := r.Cookie(name); err == nil {
			return a.authSession(r, c.Value)
		}
	}
	return nil, ErrUnauthorized
}

func (a *Accounts) authSession(r *http.Request, secret string) (*Principal, error) {
	ctx := r.Context()
	now := a.clock()
	var sess store.AdminSession
	var u store.AdminUser
	err := a.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if sess, err = tx.AdminSessionByHash(ctx, hashSecret(secret)); err != nil {
			return err
		}
		u, err = tx.AdminUserByID(ctx, sess.UserID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled || now.UnixMicro() > sess.ExpiresAt || now.Sub(time.UnixMicro(sess.CreatedAt)) > a.cfg.SessionMax {
		return nil, ErrUnauthorized
	}
	if !safeMethod(r.Method) {
		got := r.Header.Get(CSRFHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 || !sameOrigin(r) {
			return nil, ErrCSRF
		}
	}
	// Slide the idle expiry, at most once a minute per session (a write per request would be wasteful).
	if now.Sub(time.UnixMicro(sess.LastSeenAt)) > time.Minute {
		exp := now.Add(a.cfg.SessionIdle).UnixMicro()
		if err := a.st.Update(ctx, func(tx *store.Tx) error { return tx.TouchAdminSession(ctx, sess.ID, now.UnixMicro(), exp) }); err != nil {
			return nil, err
		}
	}
	return &Principal{User: u, Via: "session", CSRF: sess.CSRFToken, sessionID: sess.ID, Remote: remoteAddr(r)}, nil
}

func (a *Accounts) authToken(r *http.Request, tok string) (*Principal, error) {
	// A token is 256 random bits: a valid one is never refused (a flood of failures from a shared address
	// must not lock out the tokens used from it); failures still count towards the address's limit.
	ctx := r.Context()
	now := a.clock()
	var k store.AdminToken
	var u store.AdminUser
	err := a.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if k, err = tx.AdminTokenByHash(ctx, hashSecret(tok)); err != nil {
			return err
		}
		u, err = tx.AdminUserByID(ctx, k.UserID)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil || u.Disabled || k.RevokedAt.Valid || now.UnixMicro() > k.ExpiresAt {
		if a.limit != nil {
			a.limit.Failed(r, "")
		}
		return nil, ErrUnauthorized
	}
	if now.Sub(time.UnixMicro(k.LastUsedAt)) > time.Minute {
		if err := a.st.Update(ctx, func(tx *store.Tx) error { return tx.TouchAdminToken(ctx, k.ID, now.UnixMicro()) }); err != nil {
			return nil, err
		}
	}
	return &Principal{User: u, Via: "token", Remote: remoteAddr(r)}, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin accepts requests without Origin (not every browser sends it on
// same-origin requests) and those whose Origin host is the request's host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		site := r.Header.Get("Sec-Fetch-Site")
		return site == "" || site == "same-origin" || site == "none"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// CheckLoginOrigin refuses a login form posted from another site (login CSRF).
func CheckLoginOrigin(r *http.Request) error {
	if !sameOrigin(r) {
		return ErrCSRF
	}
	return nil
}

// CreateToken issues an API token for p's account; the secret is returned once and stored only hashed.
// lifetime 0 is the configured default; it is capped at ten times the default.
func (a *Accounts) CreateToken(ctx context.Context, p *Principal, name string, lifetime time.Duration) (string, store.AdminToken, error) {
	if lifetime <= 0 {
		lifetime = a.cfg.TokenLifetime
	}
	if lifetime > 10*a.cfg.TokenLifetime {
		return "", store.AdminToken{}, fmt.Errorf("%w: token lifetime %s is longer than %s", ErrInvalid, lifetime, 10*a.cfg.TokenLifetime)
	}
	now := a.clock()
	secret := TokenPrefix + randomSecret()
	k := store.AdminToken{SecretHash: hashSecret(secret), UserID: p.User.ID, Name: name, CreatedAt: now.UnixMicro(),
		ExpiresAt: now.Add(lifetime).UnixMicro()}
	err := a.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if k.ID, err = tx.InsertAdminToken(ctx, k); err != nil {
			return err
		}
		return a.audit.Record(ctx, tx, Action{Principal: p, Verb: "create", Object: fmt.Sprintf("AdminToken/%d", k.ID), Detail: name})
	})
	return secret, k, err
}

// CreateTokenFor issues a token for username without a login (the `admin create-token` command on the server's machine).
func (a *Accounts) CreateTokenFor(ctx context.Context, username, name string, lifetime time.Duration) (string, store.AdminToken, error) {
	var u store.AdminUser
	err := a.st.View(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.AdminUserByUsername(ctx, username)
		return err
	})
	if err != nil {
		return "", store.AdminToken{}, err
	}
	if u.Disabled {
		return "", store.AdminToken{}, fmt.Errorf("%w: administrator %q is disabled", ErrInvalid, username)
	}
	return a.CreateToken(ctx, &Principal{User: u, Via: "command line", Remote: "local"}, name, lifetime)
}

// Run purges expired sessions every hour until ctx ends.
func (a *Accounts) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := a.st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.PurgeAdminSessions(ctx, a.clock().Add(-time.Hour).UnixMicro())
			return err
		}); err != nil && ctx.Err() == nil {
			a.log.Warn("admin: purge expired sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
