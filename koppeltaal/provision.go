package koppeltaal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/koppelpoort/koppelpoort/store"
)

// ApplyResult counts what Apply changed.
type ApplyResult struct {
	DomainsCreated       int
	ApplicationsChanged  int
	InstancesChanged     int
	SubscriptionsChanged int
	InstancesDisabled    int // in the database but no longer in the configuration
}

// Apply provisions the configured domains, applications, instances and
// subscriptions in one transaction. It is idempotent: applying the same
// configuration again changes nothing (a plain-text password that still
// matches the stored hash is not rehashed); a changed password, api-version or
// subscription list takes effect. Instances missing from the configuration are
// disabled: they can no longer log in or receive messages, but their rows and
// queues stay (listing them again re-enables them).
func Apply(ctx context.Context, cfg Config, st *store.Store, logger *slog.Logger) (ApplyResult, error) {
	var res ApplyResult
	if st == nil {
		return res, errors.New("apply koppeltaal configuration: store is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	// Hash plain-text passwords before the transaction: bcrypt is slow and needs no lock.
	hashes := make([]string, len(cfg.Instances))
	for i, in := range cfg.Instances {
		if in.PasswordHash != "" {
			hashes[i] = in.PasswordHash
			continue
		}
		h, err := HashPasswordCost(in.Password, cfg.BcryptCost)
		if err != nil {
			return res, fmt.Errorf("koppeltaal.instances[%d] (username %q): %w", i, in.Username, err)
		}
		hashes[i] = h
	}
	secrets := make([]Secret, len(cfg.Applications))
	for i, a := range cfg.Applications {
		secrets[i] = Secret{Hash: a.OAuthSecretHash}
		if a.OAuthSecret != "" {
			h, err := HashPasswordCost(a.OAuthSecret, cfg.BcryptCost)
			if err != nil {
				return res, fmt.Errorf("koppeltaal.applications[%d] (id %q): oauth_secret: %w", i, a.ID, err)
			}
			secrets[i] = Secret{Hash: h, Plain: a.OAuthSecret}
		}
	}
	err := st.Update(ctx, func(tx *store.Tx) error {
		res = ApplyResult{}
		domainIDs := map[string]int64{}
		for _, d := range cfg.Domains {
			dom, created, _, err := PutDomain(ctx, tx, d, store.ManagedByConfig, 0)
			if err != nil {
				return err
			}
			domainIDs[d.Name] = dom.ID
			if created {
				res.DomainsCreated++
			}
			if err := PutDomainMessageSettings(ctx, tx, dom.ID, d.MessageSettings); err != nil {
				return err
			}
		}
		appIDs := map[string]int64{}
		for i, a := range cfg.Applications {
			id, changed, err := PutApplication(ctx, tx, a, store.ManagedByConfig, 0)
			if err != nil {
				return err
			}
			clientChanged, err := PutOAuthClient(ctx, tx, id, a, secrets[i], 0)
			if err != nil {
				return fmt.Errorf("koppeltaal.applications[%d] (id %q): %w", i, a.ID, err)
			}
			changed = changed || clientChanged
			appIDs[a.ID] = id
			if changed {
				res.ApplicationsChanged++
			}
			if err := PutApplicationMessageSettings(ctx, tx, id, a.MessageSettings); err != nil {
				return err
			}
		}
		configured := map[string]bool{}
		for i, in := range cfg.Instances {
			configured[in.Username] = true
			where := fmt.Sprintf("koppeltaal.instances[%d] (username %q)", i, in.Username)
			if prev, err := tx.InstanceByUsername(ctx, in.Username); err == nil && prev.ManagedBy == store.ManagedByAPI {
				logger.Warn("koppeltaal: an instance created through the Support API is now managed by the configuration file",
					"username", in.Username, "entry", where)
			}
			id, changed, subChanged, err := PutInstance(ctx, tx, in, Secret{Hash: hashes[i], Plain: in.Password},
				domainIDs[in.Domain], appIDs[in.Application], store.ManagedByConfig, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			_ = id
			if changed {
				res.InstancesChanged++
			}
			if subChanged {
				res.SubscriptionsChanged++
			}
		}
		all, err := tx.Instances(ctx)
		if err != nil {
			return err
		}
		for _, in := range all {
			// Instances created through the Support API are not the file's to disable.
			if configured[in.Username] || in.ManagedBy != store.ManagedByConfig {
				continue
			}
			changed, err := tx.DisableInstance(ctx, in.ID)
			if err != nil {
				return err
			}
			if changed {
				res.InstancesDisabled++
				logger.Warn("koppeltaal: instance removed from the configuration is disabled (no login, no new messages; its queue is kept)",
					"username", in.Username, "domain", in.DomainName)
			}
		}
		return nil
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply koppeltaal configuration: %w", err)
	}
	logger.Info("koppeltaal configuration applied", "domains_created", res.DomainsCreated,
		"applications_changed", res.ApplicationsChanged, "instances_changed", res.InstancesChanged,
		"subscriptions_changed", res.SubscriptionsChanged, "instances_disabled", res.InstancesDisabled)
	return res, nil
}

// PutDomain creates or updates one domain, managed by managedBy (store.ManagedByConfig
// or store.ManagedByAPI). Apply and the Support API both go through it. With
// version > 0 an update only happens if the domain still has that row version.
func PutDomain(ctx context.Context, tx *store.Tx, d DomainConfig, managedBy string, version int64) (store.Domain, bool, bool, error) {
	if err := d.Validate(); err != nil {
		return store.Domain{}, false, false, err
	}
	return tx.PutDomain(ctx, store.Domain{Name: d.Name, DTAPPhase: d.DTAPPhase, ManagedBy: managedBy, RowVersion: version})
}

// PutApplication creates or updates one application (see PutDomain).
func PutApplication(ctx context.Context, tx *store.Tx, a ApplicationConfig, managedBy string, version int64) (int64, bool, error) {
	return tx.PutApplication(ctx, store.Application{Ident: a.ID, Name: a.Name, Roles: strings.Join(a.Roles, ","),
		ManagedBy: managedBy, RowVersion: version})
}

// Secret is a password to store: a hash, and the plain text it came from when
// known (an unchanged plain-text password does not replace the stored hash).
type Secret struct {
	Hash  string
	Plain string
}

// PutInstance creates or updates one application instance of appID in
// domainID with its credentials, api-version, webhook and subscriptions
// (see PutDomain). It reports whether the instance and whether its
// subscriptions changed. Apply and the Support API both go through it.
func PutInstance(ctx context.Context, tx *store.Tx, in InstanceConfig, pw Secret, domainID, appID int64, managedBy string, version int64) (id int64, changed, subChanged bool, err error) {
	keep := func(stored string) bool {
		if pw.Plain == "" {
			return stored == pw.Hash
		}
		return CheckPassword(stored, pw.Plain)
	}
	hookURL, hookHeaders := webhookColumns(in.Webhook)
	id, changed, err = tx.PutInstance(ctx, store.Instance{
		DomainID: domainID, ApplicationID: appID, Username: in.Username, PasswordHash: pw.Hash,
		APIVersion: in.APIVersion, WebhookURL: hookURL, WebhookHeaders: hookHeaders, ManagedBy: managedBy, RowVersion: version,
	}, keep)
	if err != nil {
		return 0, false, false, err
	}
	subChanged, err = tx.SetSubscriptions(ctx, id, in.Subscriptions)
	if err != nil {
		return 0, false, false, err
	}
	if subChanged && !changed {
		if err := tx.BumpInstanceVersion(ctx, id); err != nil {
			return 0, false, false, err
		}
	}
	return id, changed, subChanged, nil
}

// webhookColumns stores a webhook as its URL and its headers as a JSON object
// (encoding/json sorts map keys, so an unchanged config compares equal).
func webhookColumns(w *WebhookConfig) (string, string) {
	if w == nil || w.URL == "" {
		return "", ""
	}
	if len(w.Headers) == 0 {
		return w.URL, ""
	}
	b, _ := json.Marshal(w.Headers)
	return w.URL, string(b)
}

// PutDomainMessageSettings replaces the message settings of a domain (Apply and the Support API).
func PutDomainMessageSettings(ctx context.Context, tx *store.Tx, domainID int64, cs []DomainMessageSettingConfig) error {
	return tx.SetDomainMessageSettings(ctx, domainID, domainMessageSettings(cs))
}

// PutApplicationMessageSettings replaces the message settings of an application (Apply and the Support API).
func PutApplicationMessageSettings(ctx context.Context, tx *store.Tx, appID int64, cs []ApplicationMessageSettingConfig) error {
	return tx.SetApplicationMessageSettings(ctx, appID, applicationMessageSettings(cs))
}

func domainMessageSettings(cs []DomainMessageSettingConfig) []store.DomainMessageSetting {
	out := make([]store.DomainMessageSetting, len(cs))
	for i, c := range cs {
		out[i] = store.DomainMessageSetting{Event: c.Event, MaxAgeDays: c.MaximumMessageAgeDays, RetainOnSuccess: c.RetainOnSuccessfulRetrieval}
	}
	return out
}

func applicationMessageSettings(cs []ApplicationMessageSettingConfig) []store.ApplicationMessageSetting {
	out := make([]store.ApplicationMessageSetting, len(cs))
	for i, c := range cs {
		out[i] = store.ApplicationMessageSetting{Event: c.Event, RetainmentRequired: c.RetainmentRequired}
	}
	return out
}
