package activity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// FromConfig builds the ActivityDefinition resource of a seeded definition,
// in the element order of the Koppeltaal examples.
func FromConfig(c koppeltaal.ActivityDefinitionConfig) *dstu1.Resource {
	r := dstu1.NewResource("Other")
	str := func(url, v string) {
		if v != "" {
			r.Add(dstu1.NewExtension(url, dstu1.NewPrimitive("valueString", v)))
		}
	}
	r.Add(dstu1.NewExtension(ExtApplication, dstu1.NewElement("valueResource", dstu1.NewPrimitive("display", c.Application))))
	str(ExtActivityName, c.Name)
	str(ExtIdentifier, c.Identifier)
	str(ExtDescription, c.Description)
	r.Add(dstu1.NewExtension(ExtKind, dstu1.NewCoding("valueCoding", dstu1.KoppeltaalBase+"ActivityKind", c.Kind, c.Kind)))
	r.Add(dstu1.NewExtension(ExtDefaultPerf, dstu1.NewCoding("valueCoding", dstu1.KoppeltaalBase+"ActivityPerformer", c.DefaultPerformer, c.DefaultPerformer)))
	setBool(r, ExtIsActive, !c.Inactive)
	setBool(r, ExtIsDomainSpec, c.DomainSpecific)
	r.Add(dstu1.NewExtension(ExtLaunchType, dstu1.NewPrimitive("valueCode", c.LaunchType)))
	for _, s := range c.SubActivities {
		sub := dstu1.NewExtension(ExtSubActivity,
			dstu1.NewExtension(ExtSubName, dstu1.NewPrimitive("valueString", s.Name)),
			dstu1.NewExtension(ExtSubIdentifier, dstu1.NewPrimitive("valueString", s.Identifier)))
		if s.Description != "" {
			sub.Add(dstu1.NewExtension(ExtSubDescription, dstu1.NewPrimitive("valueString", s.Description)))
		}
		val := "true"
		if s.Inactive {
			val = "false"
		}
		sub.Add(dstu1.NewExtension(ExtSubIsActive, dstu1.NewPrimitive("valueBoolean", val)))
		r.Add(sub)
	}
	setBool(r, ExtIsArchived, c.Archived)
	r.Add(dstu1.NewElement("identifier",
		dstu1.NewPrimitive("use", "official"),
		dstu1.NewPrimitive("system", dstu1.KoppeltaalBase+"Profile/ActivityDefinition#ActivityDefinitionIdentifier"),
		dstu1.NewPrimitive("value", c.Identifier)))
	r.Add(dstu1.NewElement("code", dstu1.NewCoding("coding", dstu1.SystemOtherResourceUsage, dstu1.KindActivityDefinition, dstu1.KindActivityDefinition)))
	return r
}

// SeedResult counts what Seed changed.
type SeedResult struct{ Created, Updated int }

// Seed creates the configured definitions that do not exist yet and updates
// those whose content differs; unchanged ones are left alone, so seeding is
// idempotent and only real changes publish a message. base is the FHIR base
// written into the published messages.
func (g *Registry) Seed(ctx context.Context, cfg koppeltaal.Config, base string) (SeedResult, error) {
	var res SeedResult
	cfg.SetDefaults()
	for i, c := range cfg.ActivityDefinitions {
		where := fmt.Sprintf("koppeltaal.activity_definitions[%d] (identifier %q)", i, c.Identifier)
		var dom store.Domain
		var cur Definition
		found := true
		err := g.st.View(ctx, func(tx *store.Tx) error {
			var err error
			if dom, err = tx.DomainByName(ctx, c.Domain); err != nil {
				return err
			}
			err = tx.Get(ctx, &cur, "SELECT "+defCols+" FROM activity_definitions WHERE domain_id = ? AND identifier = ?", dom.ID, c.Identifier)
			if errors.Is(err, sql.ErrNoRows) {
				found = false
				return nil
			}
			return err
		})
		if err != nil {
			return res, fmt.Errorf("%s: %w", where, err)
		}
		r := FromConfig(c)
		switch {
		case !found:
			if _, err := g.write(ctx, writer{domainID: dom.ID}, 0, "", r, base); err != nil {
				return res, fmt.Errorf("%s: %w", where, err)
			}
			res.Created++
		case !sameContent(cur, r):
			if _, err := g.write(ctx, writer{domainID: dom.ID}, cur.ID, "", r, base); err != nil {
				return res, fmt.Errorf("%s: %w", where, err)
			}
			res.Updated++
		}
	}
	if res != (SeedResult{}) {
		g.log.Info("koppeltaal: activity definitions seeded", "created", res.Created, "updated", res.Updated)
	}
	return res, nil
}

// sameContent compares canonically, so a change in the codec's JSON writer
// does not count as a change of the definition.
func sameContent(cur Definition, r *dstu1.Resource) bool {
	stored, err := cur.Resource()
	if err != nil {
		return false
	}
	ok, _ := dstu1.EqualResource(stored, r)
	return ok
}

// ConfigFrom is the inverse of FromConfig: the settings of a stored definition
// in domain, as the configuration file would declare them (so the Support API
// changes one through Seed, the file's path).
func ConfigFrom(d Definition, domain string) (koppeltaal.ActivityDefinitionConfig, error) {
	r, err := d.Resource()
	if err != nil {
		return koppeltaal.ActivityDefinitionConfig{}, err
	}
	str := func(n *dstu1.Node, url string, path ...string) string {
		return n.Extension(url).ExtensionValue().Str(path...)
	}
	c := koppeltaal.ActivityDefinitionConfig{Identifier: d.Identifier, Domain: domain, Application: d.Application,
		Name: str(r.Node, ExtActivityName), Description: str(r.Node, ExtDescription), Kind: str(r.Node, ExtKind, "code"),
		DefaultPerformer: str(r.Node, ExtDefaultPerf, "code"), LaunchType: str(r.Node, ExtLaunchType),
		DomainSpecific: d.IsDomainSpecific, Inactive: !d.IsActive, Archived: d.IsArchived}
	for _, sub := range r.Node.All("extension") {
		if sub.URL != ExtSubActivity { // the url is the node's URL, not a child: Str("url") was always "" and lost them
			continue
		}
		c.SubActivities = append(c.SubActivities, koppeltaal.SubActivityConfig{Identifier: str(sub, ExtSubIdentifier),
			Name: str(sub, ExtSubName), Description: str(sub, ExtSubDescription), Inactive: str(sub, ExtSubIsActive) == "false"})
	}
	return c, nil
}

// ByID returns the definition with id, or store.ErrNotFound (administration: no caller scope).
func (g *Registry) ByID(ctx context.Context, id int64) (Definition, error) {
	var d Definition
	err := g.st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &d, "SELECT "+defCols+" FROM activity_definitions WHERE id = ?", id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("activity definition %d: %w", id, store.ErrNotFound)
	}
	return d, err
}

// InDomains lists the definitions created in the domains, by id (administration).
func (g *Registry) InDomains(ctx context.Context, domainIDs []int64) ([]Definition, error) {
	var out []Definition
	if len(domainIDs) == 0 {
		return nil, nil
	}
	err := g.st.View(ctx, func(tx *store.Tx) error {
		q := "SELECT " + defCols + " FROM activity_definitions WHERE domain_id IN (" +
			strings.TrimSuffix(strings.Repeat("?, ", len(domainIDs)), ", ") + ") ORDER BY id"
		args := make([]any, len(domainIDs))
		for i, id := range domainIDs {
			args[i] = id
		}
		return tx.Select(ctx, &out, q, args...)
	})
	return out, err
}
