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

// Changed reports whether Apply changed anything.
func (r ApplyResult) Changed() bool { return r != ApplyResult{} }

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
	err := st.Update(ctx, func(tx *store.Tx) error {
		res = ApplyResult{}
		domainIDs := map[string]int64{}
		for _, d := range cfg.Domains {
			id, created, err := tx.EnsureDomain(ctx, d.Name)
			if err != nil {
				return err
			}
			domainIDs[d.Name] = id
			if created {
				res.DomainsCreated++
			}
		}
		appIDs := map[string]int64{}
		for _, a := range cfg.Applications {
			id, changed, err := tx.UpsertApplication(ctx, store.Application{Ident: a.ID, Name: a.Name, Roles: strings.Join(a.Roles, ",")})
			if err != nil {
				return err
			}
			appIDs[a.ID] = id
			if changed {
				res.ApplicationsChanged++
			}
		}
		configured := map[string]bool{}
		for i, in := range cfg.Instances {
			configured[in.Username] = true
			plain := in.Password
			keep := func(stored string) bool {
				if in.PasswordHash != "" {
					return stored == in.PasswordHash
				}
				return CheckPassword(stored, plain)
			}
			hookURL, hookHeaders := webhookColumns(in.Webhook)
			id, changed, err := tx.UpsertInstance(ctx, store.Instance{
				DomainID: domainIDs[in.Domain], ApplicationID: appIDs[in.Application], Username: in.Username,
				PasswordHash: hashes[i], APIVersion: in.APIVersion, WebhookURL: hookURL, WebhookHeaders: hookHeaders,
			}, keep)
			if err != nil {
				return fmt.Errorf("koppeltaal.instances[%d] (username %q): %w", i, in.Username, err)
			}
			if changed {
				res.InstancesChanged++
			}
			subChanged, err := tx.SetSubscriptions(ctx, id, in.Subscriptions)
			if err != nil {
				return fmt.Errorf("koppeltaal.instances[%d] (username %q): %w", i, in.Username, err)
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
			if configured[in.Username] {
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
