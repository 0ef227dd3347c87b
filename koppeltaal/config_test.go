package koppeltaal_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

func TestValidateNamesTheOffendingEntry(t *testing.T) {
	base := func() koppeltaal.Config { return koppeltaal.DemoConfig() }
	cases := []struct {
		name string
		edit func(c *koppeltaal.Config)
		want string
	}{
		{"unknown application", func(c *koppeltaal.Config) { c.Instances[1].Application = "Nope" },
			`koppeltaal.instances[1] (username "game@demo"): application "Nope" is not declared`},
		{"unknown domain", func(c *koppeltaal.Config) { c.Instances[0].Domain = "Elders" },
			`koppeltaal.instances[0] (username "portal@demo"): domain "Elders" is not declared`},
		{"bad api version", func(c *koppeltaal.Config) { c.Instances[2].APIVersion = "1.3.4" },
			`koppeltaal.instances[2] (username "epd@demo"): api_version "1.3.4"`},
		{"unknown event", func(c *koppeltaal.Config) { c.Instances[2].Subscriptions = []string{"CreateOrUpdateCareplan"} },
			`unknown subscription "CreateOrUpdateCareplan"`},
		{"no password", func(c *koppeltaal.Config) { c.Instances[0].Password = "" }, `set password or password_hash`},
		{"bad hash", func(c *koppeltaal.Config) { c.Instances[0].Password = ""; c.Instances[0].PasswordHash = "md5:abc" },
			`password_hash is not a bcrypt`},
		{"duplicate username", func(c *koppeltaal.Config) { c.Instances[1].Username = "portal@demo" },
			`koppeltaal.instances[1] (username "portal@demo"): username is used by two instances`},
		{"duplicate domain", func(c *koppeltaal.Config) { c.Domains = append(c.Domains, c.Domains[0]) },
			`koppeltaal.domains[1]: domain "Demo" is declared twice`},
		{"unknown role", func(c *koppeltaal.Config) { c.Applications[1].Roles = []string{"Gamer"} },
			`koppeltaal.applications[1] (id "DemoGame"): unknown role "Gamer"`},
		{"bad public url", func(c *koppeltaal.Config) { c.PublicURL = "kt.example.org" }, `koppeltaal.public_url`},
		{"bad bcrypt cost", func(c *koppeltaal.Config) { c.BcryptCost = 3 }, `koppeltaal.bcrypt_cost 3`},
		{"bodies in flight below the body limit", func(c *koppeltaal.Config) { c.MaxBodyBytes = 1 << 20; c.MaxBodyBytesInFlight = 1 << 19 },
			`koppeltaal.max_body_bytes_in_flight 524288: want at least max_body_bytes (1048576)`},
		{"bodies in flight below the default body limit", func(c *koppeltaal.Config) { c.MaxBodyBytesInFlight = 1 << 20 },
			`koppeltaal.max_body_bytes_in_flight 1048576: want at least max_body_bytes (10485760)`},
		{"negative bodies in flight", func(c *koppeltaal.Config) { c.MaxBodyBytesInFlight = -1 }, `koppeltaal.max_body_bytes_in_flight -1`},
		{"message setting too old", func(c *koppeltaal.Config) {
			c.Domains[0].MessageSettings = []koppeltaal.DomainMessageSettingConfig{{Event: "CreateOrUpdatePatient", MaximumMessageAgeDays: 999}}
		}, `koppeltaal.domains[0] (name "Demo").message_settings[0].maximum_message_age_days 999: want 1..56`},
		{"message setting twice", func(c *koppeltaal.Config) {
			c.Applications[0].MessageSettings = []koppeltaal.ApplicationMessageSettingConfig{{Event: "CreateOrUpdatePatient"}, {Event: "CreateOrUpdatePatient"}}
		}, `koppeltaal.applications[0] (id "DemoPortal").message_settings[1].event "CreateOrUpdatePatient" has two settings`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, c.want)
			}
		})
	}
	good := base()
	if err := good.Validate(); err != nil {
		t.Fatalf("demo config invalid: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	var c koppeltaal.Config
	c.SetDefaults()
	if c.ClaimTimeout != koppeltaal.DefaultClaimTimeout || c.MaxRetries != 5 || c.MaxCount != 1000 || c.MaxBodyBytes != 10<<20 ||
		c.MaxBodyBytesInFlight != 40<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	c = koppeltaal.Config{MaxBodyBytes: 1 << 20}
	if c.SetDefaults(); c.MaxBodyBytesInFlight != 4<<20 {
		t.Fatalf("max_body_bytes_in_flight for max_body_bytes 1 MiB: %d, want 4 MiB", c.MaxBodyBytesInFlight)
	}
}

// An argon2id PHC hash of "argon-pass" (salt "saltsalt", m=16,t=2,p=1), made with golang.org/x/crypto/argon2.IDKey.
const argonHash = "$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$vU/PSfvQB/HGuQ+fKzV+Dg"

func TestApplyIsIdempotentAndTakesChanges(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := b.Open(t)
		cfg := koppeltaal.DemoConfig()
		cfg.BcryptCost = 4 // the cost is not what this test is about; keep -race runs fast
		// Instances 1.. come with cheap hashes (bcrypt cost 4) so the test
		// spends little time in bcrypt; instance 0 exercises plain-text hashing.
		for i := 1; i < len(cfg.Instances); i++ {
			h, err := bcrypt.GenerateFromPassword([]byte(cfg.Instances[i].Password), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Instances[i].Password, cfg.Instances[i].PasswordHash = "", string(h)
		}
		r, err := koppeltaal.Apply(ctx, cfg, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cfg.Instances); r.DomainsCreated != 1 || r.InstancesChanged != n || r.SubscriptionsChanged != n {
			t.Fatalf("first apply: %+v", r)
		}
		if r, err = koppeltaal.Apply(ctx, cfg, st, nil); err != nil || r != (koppeltaal.ApplyResult{}) {
			t.Fatalf("re-apply changed something: %+v, %v", r, err)
		}
		cfg.Instances[0].Password = "new-secret"
		cfg.Instances[1].Subscriptions = []string{"CreateOrUpdateCarePlan"}
		if r, err = koppeltaal.Apply(ctx, cfg, st, nil); err != nil || r.InstancesChanged != 1 || r.SubscriptionsChanged != 1 {
			t.Fatalf("apply of changes: %+v, %v", r, err)
		}
		err = st.View(ctx, func(tx *store.Tx) error {
			in, err := tx.InstanceByUsername(ctx, koppeltaal.DemoPortalUser)
			if err != nil {
				return err
			}
			if !koppeltaal.CheckPassword(in.PasswordHash, "new-secret") || koppeltaal.CheckPassword(in.PasswordHash, koppeltaal.DemoPortalPassword) {
				t.Errorf("password change did not take effect")
			}
			if strings.Contains(in.PasswordHash, "new-secret") {
				t.Errorf("plain password stored")
			}
			g, _ := tx.InstanceByUsername(ctx, koppeltaal.DemoGameUser)
			subs, err := tx.Subscriptions(ctx, g.ID)
			if len(subs) != 1 || subs[0] != "CreateOrUpdateCarePlan" {
				t.Errorf("subscriptions after change: %v %v", subs, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// password_hash (argon2id) is stored as given and verifies.
		cfg.Instances[2].Password = ""
		cfg.Instances[2].PasswordHash = argonHash
		if _, err := koppeltaal.Apply(ctx, cfg, st, nil); err != nil {
			t.Fatal(err)
		}
		_ = st.View(ctx, func(tx *store.Tx) error {
			in, _ := tx.InstanceByUsername(ctx, koppeltaal.DemoEPDUser)
			if in.PasswordHash != argonHash || !koppeltaal.CheckPassword(in.PasswordHash, "argon-pass") {
				t.Errorf("argon2id hash not applied or does not verify: %q", in.PasswordHash)
			}
			return nil
		})
		// An instance dropped from the configuration is disabled; listing it again re-enables it.
		svc, err := koppeltaal.NewService(st, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		smaller := cfg
		smaller.Instances = slices.Delete(slices.Clone(cfg.Instances), 2, 3) // the EPD bridge
		if r, err := koppeltaal.Apply(ctx, smaller, st, nil); err != nil || r.InstancesDisabled != 1 {
			t.Fatalf("apply without epd: %+v, %v", r, err)
		}
		if _, err := svc.Authenticate(ctx, koppeltaal.DemoEPDUser, "argon-pass"); err != koppeltaal.ErrUnauthorized {
			t.Fatalf("disabled instance authenticated: %v", err)
		}
		if r, err := koppeltaal.Apply(ctx, smaller, st, nil); err != nil || r != (koppeltaal.ApplyResult{}) {
			t.Fatalf("re-apply without epd changed something: %+v, %v", r, err)
		}
		if r, err := koppeltaal.Apply(ctx, cfg, st, nil); err != nil || r.InstancesChanged != 1 || r.SubscriptionsChanged != 1 {
			t.Fatalf("re-enable: %+v, %v", r, err)
		}
		if _, err := svc.Authenticate(ctx, koppeltaal.DemoEPDUser, "argon-pass"); err != nil {
			t.Fatalf("re-enabled instance: %v", err)
		}
		// An invalid configuration changes nothing.
		bad := cfg
		bad.Instances = append([]koppeltaal.InstanceConfig(nil), cfg.Instances...)
		bad.Instances[0].Domain = "Nope"
		if _, err := koppeltaal.Apply(ctx, bad, st, nil); err == nil {
			t.Fatal("invalid config applied")
		}
	})
}
