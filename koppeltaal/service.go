// Package koppeltaal is the Koppeltaal 1.3 server core: provisioning, the
// mailbox (validate, version, store, route), claim/acknowledge, search, the
// claim sweeper and the Conformance statement. It is transport-neutral: the
// HTTP binding lives in koppeltaal/api.
package koppeltaal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// Service is the Koppeltaal server core over one store.
type Service struct {
	st      *store.Store
	cfg     Config
	log     *slog.Logger
	verify  *verifyCache
	msgs    *msgCache
	heads   *msgCache // the MessageHeader entries of messages searches read (see loadMessage)
	instMu  sync.Mutex
	insts   map[string]cachedInstance // by username; see instance
	now     func() time.Time
	metrics *Metrics
	vwarn   versionWarnLog
	audit   *audit.Recorder // nil: nothing recorded
	// auditStatus is the status the caller's transport answers a refusal with (the trail records it).
	auditStatus func(Kind) int
	removers    []Remover // more data the removal job removes (AddRemover)
}

// NewService returns the core for st with cfg (defaults applied). metrics may be nil.
func NewService(st *store.Store, cfg Config, logger *slog.Logger, metrics *Metrics) (*Service, error) {
	if st == nil {
		return nil, errors.New("koppeltaal: NewService: store is nil")
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Service{st: st, cfg: cfg, log: logger, verify: newVerifyCache(),
		msgs: newMsgCache(msgCacheItems, msgCacheBytes, msgCacheEntryBytes), heads: newMsgCache(headCacheItems, headCacheItems*headCacheSize, headCacheSize), insts: map[string]cachedInstance{}, now: time.Now, metrics: metrics}, nil
}

// Bounds of the message cache (sizes count the pre-encoded entries in both
// formats plus ~4 KiB per message for its tree part): the messages being
// claimed and acknowledged under load (seconds of traffic at 1,000 messages/s),
// small next to the 300 MB memory target. The Go heap grows to about twice the
// live data, so 24 MiB here is about 50 MiB of resident memory; 64 MiB showed
// as ~130 MiB more under load.
// Messages larger than msgCacheEntryBytes in the cache (bodies above ~1.5 MB)
// are not cached (msgCache.fits).
const (
	msgCacheItems      = 8192
	msgCacheBytes      = 24 << 20
	msgCacheEntryBytes = msgCacheBytes / 8
)

// Bounds of the cache of MessageHeader entries for searches: a search renders
// only that entry of each message it returns, and re-parsing every body for
// every page of every search was a quarter of the server's CPU in a load run
// (the load tool verifies acknowledgements by search). Kept apart from the
// message cache, so that paging through old messages no one is about to claim
// does not push out the ones being claimed. Each entry is counted at
// headCacheSize (a MessageHeader tree is about 1-2 KiB).
const (
	headCacheItems = 8192
	headCacheSize  = 2048
)

// Config returns the effective configuration (defaults applied).
func (s *Service) Config() Config { return s.cfg }

// SetAuditor makes the service record every access to patient data in r (see package audit); status is the
// status the caller's transport answers a refusal of each kind with, which the trail records (nil: none).
func (s *Service) SetAuditor(r *audit.Recorder, status func(Kind) int) {
	s.audit, s.auditStatus = r, status
}

// Auditor is the recorder SetAuditor set (nil: none).
func (s *Service) Auditor() *audit.Recorder { return s.audit }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Caller is an authenticated application instance.
type Caller struct {
	store.Instance
	// Patient, when set (OAuth2 Bearer token from an SSO launch), restricts the
	// caller to that patient's messages: claim, search, read and acknowledge see
	// only them, and posting a message about another patient is refused.
	Patient string
	// TokenExpiresAt is when the Bearer token expires (zero for Basic).
	TokenExpiresAt time.Time
	// User and Client are the launch user and OAuth client of a Bearer token (for the audit trail).
	User, Client string
}

// Actor is the caller as the audit trail names it, with the request's source and id from ctx.
func (c *Caller) Actor(ctx context.Context) audit.Actor {
	a := audit.Actor{Kind: audit.KindInstance, Name: c.Username, Application: c.AppIdent, Domain: c.DomainName}
	if c.Patient != "" {
		a.Kind, a.Client, a.LaunchUser, a.TokenPatient = audit.KindBearer, c.Client, c.User, c.Patient
	}
	return a.FromRequest(ctx)
}

// audited records an action of c that wrote in tx, in tx.
func (s *Service) audited(ctx context.Context, tx *store.Tx, c *Caller, action, patient, object, detail string) error {
	return s.audit.InTx(ctx, tx, audit.Event{At: s.now(), Action: action, Actor: c.Actor(ctx), Patient: patient, Object: object, Detail: detail})
}

// record records an action of c that wrote nothing (err: its refusal, if any).
func (s *Service) record(ctx context.Context, c *Caller, action, patient, object, detail string, err error) {
	status := 0
	if err != nil && s.auditStatus != nil {
		kind := Internal
		var ke *Error
		if errors.As(err, &ke) {
			kind = ke.Kind
		} else if errors.Is(err, store.ErrUnavailable) {
			kind = Unavailable // what the caller was answered
		}
		status = s.auditStatus(kind)
	}
	s.audit.Record(ctx, audit.Event{At: s.now(), Action: action, Status: status, Actor: c.Actor(ctx), Patient: patient, Object: object, Detail: detail})
}

// patientScope applies the caller's patient restriction to a requested patient
// filter: "" means all (Basic auth), otherwise the token's patient. Asking for
// another patient is refused.
func (c *Caller) patientScope(requested string) (string, error) {
	if c.Patient == "" {
		return requested, nil
	}
	if requested != "" && requested != c.Patient {
		return "", fail(Forbidden, "security", "The Bearer token only gives access to the messages of its launch patient, not of %s.", requested)
	}
	return c.Patient, nil
}

// Error is a request the server refuses: what kind of refusal it is and the OperationOutcome issues that
// say why. It names no transport: the HTTP API answers each Kind with its status (koppeltaal/api
// HTTPStatus); an in-process sender (the gateway's local Koppeltaal output) decides on the Kind itself.
type Error struct {
	Kind   Kind
	Issues []Issue
}

// Kind is what kind of refusal an Error is. It is a string, not a number, so an HTTP status passed for
// it does not compile.
type Kind string

// The kinds of refusal.
const (
	Invalid           Kind = "invalid"            // the request is malformed or breaks a rule
	Unauthenticated   Kind = "unauthenticated"    // no valid credentials
	Forbidden         Kind = "forbidden"          // the caller may not do this (or has used up a quota)
	NotFound          Kind = "not found"          // what it names does not exist
	NotAllowed        Kind = "not allowed"        // the operation does not exist on what it names
	Conflict          Kind = "conflict"           // a version or state that has moved on, or a duplicate
	TooLarge          Kind = "too large"          // the request is larger than a limit
	UnsupportedFormat Kind = "unsupported format" // the body is in no format the server reads
	Throttled         Kind = "throttled"          // too many attempts; try again later
	Internal          Kind = "internal error"     // the server failed
	Unavailable       Kind = "unavailable"        // the database cannot serve the request now; try again
)

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity string // error (default), warning, fatal, information
	Code     string // http://hl7.org/fhir/issue-type code: invalid, conflict, security, not-found, ...
	Details  string
	Resource string // OperationOutcome#IssueResource reference, optional
	Location string // the element the issue is about (OperationOutcome.issue.location), optional
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		msgs[i] = is.Details
		if is.Resource != "" {
			msgs[i] += " (" + is.Resource + ")"
		}
	}
	return fmt.Sprintf("%s: %s", e.Kind, strings.Join(msgs, "; "))
}

func fail(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Issues: []Issue{{Severity: "error", Code: code, Details: fmt.Sprintf(format, args...)}}}
}

// ErrUnauthorized is returned by Authenticate for unknown users and wrong passwords alike.
var ErrUnauthorized = errors.New("koppeltaal: unknown application instance or wrong password")

// Authenticate checks HTTP Basic credentials of an application instance.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*Caller, error) {
	if username == "" {
		return nil, ErrUnauthorized
	}
	in, err := s.instance(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same kind of time as a real check so user names cannot be probed by timing.
		_ = CheckPassword(dummyHash(), password)
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate %q: %w", username, err)
	}
	if !s.verify.check(in.PasswordHash, password) {
		return nil, ErrUnauthorized
	}
	return &Caller{Instance: in}, nil
}

// AuthenticateKnown is Authenticate for a password this process has already
// verified as correct for the instance's current hash (the verify cache): no
// password check is run, and anything else is false. Failed-login limits let
// such a password in while they refuse unchecked ones.
func (s *Service) AuthenticateKnown(ctx context.Context, username, password string) (*Caller, bool) {
	in, err := s.instance(ctx, username)
	if err != nil || !s.verify.known(in.PasswordHash, password) {
		return nil, false
	}
	return &Caller{Instance: in}, true
}

type cachedInstance struct {
	in  store.Instance
	gen uint64
	at  time.Time
}

// instance returns the instance row of username, from the cache when it is
// fresh: every request authenticates, and the row only changes when the
// configuration is applied. Changes made through this process's store drop
// the cache at once (store.InstancesGeneration); the store's CacheTTL covers
// other processes on a shared PostgreSQL database.
func (s *Service) instance(ctx context.Context, username string) (store.Instance, error) {
	gen := s.st.InstancesGeneration() // read before the row, so a change in between invalidates it
	now := time.Now()
	s.instMu.Lock()
	ce, ok := s.insts[username]
	s.instMu.Unlock()
	if ok && ce.gen == gen && now.Sub(ce.at) < s.st.CacheTTL() {
		return ce.in, nil
	}
	var in store.Instance
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		in, err = tx.InstanceByUsername(ctx, username)
		return err
	})
	if err != nil {
		return in, err // unknown users are not cached: their number is not bounded
	}
	s.instMu.Lock()
	if len(s.insts) >= 10000 {
		clear(s.insts)
	}
	s.insts[username] = cachedInstance{in: in, gen: gen, at: now}
	s.instMu.Unlock()
	return in, nil
}

// dummyHash is a bcrypt hash of a random string, verified for unknown users.
var dummyHash = sync.OnceValue(func() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h, _ := HashPassword(string(b[:]))
	return h
})

func (s *Service) instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// LocalCaller is the application instance username as a sender inside this process (the gateway's local
// Koppeltaal adapters): no password, since nothing crosses a trust boundary. A disabled or unknown
// instance is an error.
func (s *Service) LocalCaller(ctx context.Context, username string) (*Caller, error) {
	in, err := s.instance(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%q is not an application instance of this Koppeltaal server", username)
	}
	if err != nil {
		return nil, fmt.Errorf("look up instance %q: %w", username, err)
	}
	if strings.HasPrefix(in.PasswordHash, store.DisabledHashPrefix) {
		return nil, fmt.Errorf("application instance %q is disabled (no longer in the configuration)", username)
	}
	return &Caller{Instance: in}, nil
}
