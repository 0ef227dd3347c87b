package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Domain is a Koppeltaal domain.
type Domain struct {
	ID          int64  `db:"id"`
	Name        string `db:"name"`
	LastVersion string `db:"last_version"`
	// DTAPPhase is development, test, acceptance or production (SPEC.md §14).
	DTAPPhase  string `db:"dtap_phase"`
	ManagedBy  string `db:"managed_by"`
	RowVersion int64  `db:"row_version"`
	CreatedAt  int64  `db:"created_at"`
	UpdatedAt  int64  `db:"updated_at"`
}

const domainCols = "id, name, last_version, dtap_phase, managed_by, row_version, created_at, updated_at"

// Application is a registered application (its Ident is the OAuth client_id).
type Application struct {
	ID         int64  `db:"id"`
	Ident      string `db:"ident"`
	Name       string `db:"name"`
	Roles      string `db:"roles"`
	ManagedBy  string `db:"managed_by"`
	RowVersion int64  `db:"row_version"`
	CreatedAt  int64  `db:"created_at"`
	UpdatedAt  int64  `db:"updated_at"`
}

const applicationCols = "id, ident, name, roles, managed_by, row_version, created_at, updated_at"

// Domains lists every domain, ordered by id.
func (t *Tx) Domains(ctx context.Context) ([]Domain, error) {
	var ds []Domain
	if err := t.sel(ctx, &ds, "SELECT "+domainCols+" FROM domains ORDER BY id"); err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return ds, nil
}

// Applications lists every application, ordered by id.
func (t *Tx) Applications(ctx context.Context) ([]Application, error) {
	var as []Application
	if err := t.sel(ctx, &as, "SELECT "+applicationCols+" FROM applications ORDER BY id"); err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	return as, nil
}

// Instance is an application instance: an application in one domain with its credentials.
type Instance struct {
	ID             int64  `db:"id"`
	DomainID       int64  `db:"domain_id"`
	DomainName     string `db:"domain_name"`
	ApplicationID  int64  `db:"application_id"`
	AppIdent       string `db:"app_ident"`
	Username       string `db:"username"`
	PasswordHash   string `db:"password_hash"`
	APIVersion     string `db:"api_version"`
	WebhookURL     string `db:"webhook_url"`
	WebhookHeaders string `db:"webhook_headers"`
	ManagedBy      string `db:"managed_by"`
	RowVersion     int64  `db:"row_version"`
	CreatedAt      int64  `db:"created_at"`
	UpdatedAt      int64  `db:"updated_at"`
}

// Disabled reports whether the instance was removed from the configuration
// (see DisableInstance): it may not authenticate in any way.
func (in Instance) Disabled() bool { return strings.HasPrefix(in.PasswordHash, DisabledHashPrefix) }

// EnsureDomain creates the domain if it does not exist and returns its id.
func (t *Tx) EnsureDomain(ctx context.Context, name string) (id int64, created bool, err error) {
	err = t.get(ctx, &id, "SELECT id FROM domains WHERE name = ?", name)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("look up domain %q: %w", name, err)
	}
	id, err = t.insertID(ctx, "INSERT INTO domains (name, created_at) VALUES (?, ?)", name, micros(time.Now()))
	if err != nil {
		return 0, false, fmt.Errorf("create domain %q: %w", name, err)
	}
	return id, true, nil
}

// PutDomain creates the domain named d.Name, or updates its DTAP phase and
// who manages it. With d.RowVersion set, an update only happens when the row
// still has that version (ErrStaleVersion otherwise). It returns the domain as stored.
func (t *Tx) PutDomain(ctx context.Context, d Domain) (out Domain, created, changed bool, err error) {
	now := micros(time.Now())
	if d.DTAPPhase == "" {
		d.DTAPPhase = DTAPProduction
	}
	if d.ManagedBy == "" {
		d.ManagedBy = ManagedByConfig
	}
	cur, err := t.DomainByName(ctx, d.Name)
	if errors.Is(err, ErrNotFound) {
		_, err = t.insertID(ctx, "INSERT INTO domains (name, dtap_phase, managed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
			d.Name, d.DTAPPhase, d.ManagedBy, now, now)
		if err != nil {
			return out, false, false, fmt.Errorf("create domain %q: %w", d.Name, err)
		}
		out, err = t.DomainByName(ctx, d.Name)
		return out, true, true, err
	} else if err != nil {
		return out, false, false, fmt.Errorf("look up domain %q: %w", d.Name, err)
	}
	if d.RowVersion != 0 && d.RowVersion != cur.RowVersion {
		return cur, false, false, fmt.Errorf("domain %q: %w", d.Name, ErrStaleVersion)
	}
	if cur.DTAPPhase == d.DTAPPhase && cur.ManagedBy == d.ManagedBy {
		return cur, false, false, nil
	}
	res, err := t.exec(ctx, `UPDATE domains SET dtap_phase = ?, managed_by = ?, row_version = row_version + 1, updated_at = ?
		WHERE id = ? AND row_version = ?`, d.DTAPPhase, d.ManagedBy, now, cur.ID, cur.RowVersion)
	if err != nil {
		return cur, false, false, fmt.Errorf("update domain %q: %w", d.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return cur, false, false, fmt.Errorf("domain %q: %w", d.Name, ErrStaleVersion)
	}
	out, err = t.DomainByName(ctx, d.Name)
	return out, false, true, err
}

// DTAP phases of a domain (SPEC.md §14 Domains.DTAPPhase).
const (
	DTAPDevelopment = "development"
	DTAPTest        = "test"
	DTAPAcceptance  = "acceptance"
	DTAPProduction  = "production"
)

// DTAPPhases lists the phases in order.
var DTAPPhases = []string{DTAPDevelopment, DTAPTest, DTAPAcceptance, DTAPProduction}

// DomainByID returns the domain or ErrNotFound.
func (t *Tx) DomainByID(ctx context.Context, id int64) (Domain, error) {
	var d Domain
	err := t.get(ctx, &d, "SELECT "+domainCols+" FROM domains WHERE id = ?", id)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("domain %d: %w", id, ErrNotFound)
	}
	return d, err
}

// DomainByName returns the domain or ErrNotFound.
func (t *Tx) DomainByName(ctx context.Context, name string) (Domain, error) {
	var d Domain
	err := t.get(ctx, &d, "SELECT "+domainCols+" FROM domains WHERE name = ?", name)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("domain %q: %w", name, ErrNotFound)
	}
	return d, err
}

// PutApplication creates the application a.Ident or updates its name, roles
// and who manages it (with a.RowVersion set: only if the row still has it).
func (t *Tx) PutApplication(ctx context.Context, a Application) (id int64, changed bool, err error) {
	now := micros(time.Now())
	if a.ManagedBy == "" {
		a.ManagedBy = ManagedByConfig
	}
	var cur Application
	err = t.get(ctx, &cur, "SELECT id, ident, name, roles, managed_by, row_version FROM applications WHERE ident = ?", a.Ident)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		id, err = t.insertID(ctx, "INSERT INTO applications (ident, name, roles, managed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
			a.Ident, a.Name, a.Roles, a.ManagedBy, now, now)
		if err != nil {
			return 0, false, fmt.Errorf("create application %q: %w", a.Ident, err)
		}
		t.instChanged = true
		return id, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("look up application %q: %w", a.Ident, err)
	}
	if a.RowVersion != 0 && a.RowVersion != cur.RowVersion {
		return cur.ID, false, fmt.Errorf("application %q: %w", a.Ident, ErrStaleVersion)
	}
	if cur.Name == a.Name && cur.Roles == a.Roles && cur.ManagedBy == a.ManagedBy {
		return cur.ID, false, nil
	}
	res, err := t.exec(ctx, `UPDATE applications SET name = ?, roles = ?, managed_by = ?, row_version = row_version + 1,
		updated_at = ? WHERE id = ? AND row_version = ?`, a.Name, a.Roles, a.ManagedBy, now, cur.ID, cur.RowVersion)
	if err != nil {
		return 0, false, fmt.Errorf("update application %q: %w", a.Ident, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return cur.ID, false, fmt.Errorf("application %q: %w", a.Ident, ErrStaleVersion)
	}
	t.instChanged = true
	return cur.ID, true, nil
}

// ApplicationByID returns the application or ErrNotFound.
func (t *Tx) ApplicationByID(ctx context.Context, id int64) (Application, error) {
	var a Application
	err := t.get(ctx, &a, "SELECT "+applicationCols+" FROM applications WHERE id = ?", id)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("application %d: %w", id, ErrNotFound)
	}
	return a, err
}

const instanceSelect = `SELECT i.id, i.domain_id, d.name AS domain_name, i.application_id, a.ident AS app_ident,
	i.username, i.password_hash, i.api_version, i.webhook_url, i.webhook_headers, i.managed_by, i.row_version,
	i.created_at, i.updated_at
	FROM app_instances i JOIN domains d ON d.id = i.domain_id JOIN applications a ON a.id = i.application_id `

// InstanceByUsername returns the instance with that login, or ErrNotFound.
func (t *Tx) InstanceByUsername(ctx context.Context, username string) (Instance, error) {
	var in Instance
	err := t.get(ctx, &in, instanceSelect+"WHERE i.username = ?", username)
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("instance %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return in, fmt.Errorf("look up instance %q: %w", username, err)
	}
	return in, nil
}

// InstanceByID returns the instance with that id, or ErrNotFound.
func (t *Tx) InstanceByID(ctx context.Context, id int64) (Instance, error) {
	var in Instance
	err := t.get(ctx, &in, instanceSelect+"WHERE i.id = ?", id)
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("instance %d: %w", id, ErrNotFound)
	}
	return in, err
}

// Instances lists all instances, ordered by id.
func (t *Tx) Instances(ctx context.Context) ([]Instance, error) {
	var ins []Instance
	err := t.sel(ctx, &ins, instanceSelect+"ORDER BY i.id")
	return ins, err
}

// ErrUsernameTaken is PutInstance refusing a username another instance has.
var ErrUsernameTaken = fmt.Errorf("username is used by another application instance: %w", ErrConflict)

// PutInstance creates or updates the instance of in.ApplicationID in
// in.DomainID (its username, password hash, api-version, webhook and who
// manages it). The password hash is only replaced when keepHash reports false
// for the stored hash (so an unchanged plain-text password does not rehash).
// With in.RowVersion set, an update only happens if the row still has that
// version (ErrStaleVersion otherwise).
func (t *Tx) PutInstance(ctx context.Context, in Instance, keepHash func(stored string) bool) (id int64, changed bool, err error) {
	now := micros(time.Now())
	if in.ManagedBy == "" {
		in.ManagedBy = ManagedByConfig
	}
	var owner int64
	err = t.get(ctx, &owner, "SELECT id FROM app_instances WHERE username = ? AND NOT (domain_id = ? AND application_id = ?)",
		in.Username, in.DomainID, in.ApplicationID)
	if err == nil {
		return 0, false, fmt.Errorf("instance %q: %w", in.Username, ErrUsernameTaken)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("look up instance %q: %w", in.Username, err)
	}
	var cur Instance
	err = t.get(ctx, &cur, instanceSelect+"WHERE i.domain_id = ? AND i.application_id = ?", in.DomainID, in.ApplicationID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		id, err = t.insertID(ctx, `INSERT INTO app_instances (domain_id, application_id, username, password_hash,
			api_version, webhook_url, webhook_headers, managed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			in.DomainID, in.ApplicationID, in.Username, in.PasswordHash, in.APIVersion, in.WebhookURL, in.WebhookHeaders,
			in.ManagedBy, now, now)
		if err != nil {
			return 0, false, fmt.Errorf("create instance %q: %w", in.Username, err)
		}
		t.instChanged = true
		return id, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("look up instance %q: %w", in.Username, err)
	}
	if in.RowVersion != 0 && in.RowVersion != cur.RowVersion {
		return cur.ID, false, fmt.Errorf("instance %q: %w", in.Username, ErrStaleVersion)
	}
	hash := in.PasswordHash
	if keepHash != nil && keepHash(cur.PasswordHash) {
		hash = cur.PasswordHash
	}
	if cur.Username == in.Username && cur.PasswordHash == hash && cur.APIVersion == in.APIVersion &&
		cur.WebhookURL == in.WebhookURL && cur.WebhookHeaders == in.WebhookHeaders && cur.ManagedBy == in.ManagedBy {
		return cur.ID, false, nil
	}
	res, err := t.exec(ctx, `UPDATE app_instances SET username = ?, password_hash = ?, api_version = ?,
		webhook_url = ?, webhook_headers = ?, managed_by = ?, row_version = row_version + 1, updated_at = ?
		WHERE id = ? AND row_version = ?`,
		in.Username, hash, in.APIVersion, in.WebhookURL, in.WebhookHeaders, in.ManagedBy, now, cur.ID, cur.RowVersion)
	if err != nil {
		return 0, false, fmt.Errorf("update instance %q: %w", in.Username, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return cur.ID, false, fmt.Errorf("instance %q: %w", in.Username, ErrStaleVersion)
	}
	t.instChanged = true
	return cur.ID, true, nil
}

// BumpInstanceVersion moves an instance's row version (its subscriptions changed).
func (t *Tx) BumpInstanceVersion(ctx context.Context, id int64) error {
	_, err := t.exec(ctx, "UPDATE app_instances SET row_version = row_version + 1, updated_at = ? WHERE id = ?", micros(time.Now()), id)
	return err
}

// DisabledHashPrefix marks the password hash of a disabled instance: no
// password matches it, and re-enabling stores a fresh hash.
const DisabledHashPrefix = "!disabled:"

// DisableInstance stops an instance from authenticating (its hash gets
// DisabledHashPrefix) and from receiving messages (subscriptions removed). Its
// queue rows stay. changed is false when it was already disabled.
func (t *Tx) DisableInstance(ctx context.Context, id int64) (changed bool, err error) {
	res, err := t.exec(ctx, `UPDATE app_instances SET password_hash = ? || password_hash, updated_at = ?,
		row_version = row_version + 1 WHERE id = ? AND password_hash NOT LIKE ?`, DisabledHashPrefix, micros(time.Now()), id, DisabledHashPrefix+"%")
	if err != nil {
		return false, fmt.Errorf("disable instance %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		t.instChanged = true
	}
	if _, err := t.exec(ctx, "DELETE FROM subscriptions WHERE instance_id = ?", id); err != nil {
		return false, fmt.Errorf("disable instance %d: %w", id, err)
	}
	return n == 1, nil
}

// Subscriptions returns the events instanceID is subscribed to, sorted.
func (t *Tx) Subscriptions(ctx context.Context, instanceID int64) ([]string, error) {
	var evs []string
	err := t.sel(ctx, &evs, "SELECT event FROM subscriptions WHERE instance_id = ? ORDER BY event", instanceID)
	return evs, err
}

// SetSubscriptions replaces the subscriptions of instanceID; changed reports a difference.
func (t *Tx) SetSubscriptions(ctx context.Context, instanceID int64, events []string) (changed bool, err error) {
	cur, err := t.Subscriptions(ctx, instanceID)
	if err != nil {
		return false, fmt.Errorf("read subscriptions: %w", err)
	}
	want := append([]string(nil), events...)
	sort.Strings(want)
	want = dedup(want)
	if strings.Join(cur, "\x00") == strings.Join(want, "\x00") {
		return false, nil
	}
	t.instChanged = true
	if _, err := t.exec(ctx, "DELETE FROM subscriptions WHERE instance_id = ?", instanceID); err != nil {
		return false, fmt.Errorf("clear subscriptions: %w", err)
	}
	for _, e := range want {
		if _, err := t.exec(ctx, "INSERT INTO subscriptions (instance_id, event) VALUES (?, ?)", instanceID, e); err != nil {
			return false, fmt.Errorf("subscribe %s: %w", e, err)
		}
	}
	return true, nil
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Subscriber is an instance that receives an event, with the api-version it fetches as.
type Subscriber struct {
	InstanceID int64  `db:"id"`
	APIVersion string `db:"api_version"`
}

// Subscribers returns the instances of domainID subscribed to event, ordered by id.
// Every posted message asks this, and the answer only changes when the
// configuration is applied, so it is served from a cache that a committed
// instance or subscription change drops (see InstancesGeneration) and that
// lives at most Config.CacheTTL (changes by another process on a shared PostgreSQL).
func (t *Tx) Subscribers(ctx context.Context, domainID int64, event string) ([]Subscriber, error) {
	useCache := t.subs != nil && !t.instChanged // this transaction's own changes are not in the cache
	var gen uint64
	if useCache {
		gen = t.subs.gen.Load() // before the query: a change committed meanwhile invalidates the result
		if subs, ok := t.subs.get(domainID, event, gen); ok {
			return append([]Subscriber(nil), subs...), nil // a few entries; callers may change their copy
		}
	}
	var subs []Subscriber
	err := t.sel(ctx, &subs, `SELECT i.id, i.api_version FROM app_instances i
		JOIN subscriptions s ON s.instance_id = i.id
		WHERE i.domain_id = ? AND s.event = ? ORDER BY i.id`, domainID, event)
	if err != nil {
		return nil, fmt.Errorf("subscribers of %s: %w", event, err)
	}
	if useCache {
		t.subs.put(domainID, event, gen, subs)
	}
	return subs, nil
}

type subsKey struct {
	domainID int64
	event    string
}

type subsEntry struct {
	subs []Subscriber
	gen  uint64
	at   time.Time
}

// subsCache caches Subscribers per domain and event; gen is the Store's instance generation.
type subsCache struct {
	gen *atomic.Uint64
	ttl time.Duration
	mu  sync.Mutex
	m   map[subsKey]subsEntry
}

func (c *subsCache) get(domainID int64, event string, gen uint64) ([]Subscriber, bool) {
	c.mu.Lock()
	e, ok := c.m[subsKey{domainID, event}]
	c.mu.Unlock()
	if !ok || e.gen != gen || time.Since(e.at) >= c.ttl {
		return nil, false
	}
	return e.subs, true
}

func (c *subsCache) put(domainID int64, event string, gen uint64, subs []Subscriber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 10000 { // bounded: events are free text in messages
		clear(c.m)
	}
	c.m[subsKey{domainID, event}] = subsEntry{subs: subs, gen: gen, at: time.Now()}
}

// ApplicationByIdent returns the application with that identifier (client_id), or ErrNotFound.
func (t *Tx) ApplicationByIdent(ctx context.Context, ident string) (Application, error) {
	var a Application
	err := t.get(ctx, &a, "SELECT "+applicationCols+" FROM applications WHERE ident = ?", ident)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("application %q: %w", ident, ErrNotFound)
	}
	return a, err
}
