package oauth_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
)

// TestYAMLSettings decodes the issue-4 settings strictly (unknown keys are
// errors, as in the configuration loader) and checks the result validates.
func TestYAMLSettings(t *testing.T) {
	const doc = `
domains: [{name: D}]
applications:
  - id: Game
    launch_url: https://game.example/launch
    redirect_uris: [https://game.example/cb]
    public_client: true
    refresh_tokens: true
    token_lifetime: 10m
    code_lifetime: 30s
    launch_lifetime: 2m
    activation_code_lifetime_days: 3
    allowed_origins: [https://game.example]
  - id: Portal
    oauth_secret: s3cret
instances:
  - application: Game
    domain: D
    username: game@d
    password: g
    webhook:
      url: https://game.example/hook
      headers: {X-Koppeltaal-Secret: abc}
activity_definitions:
  - identifier: g1
    domain: D
    application: Game
    name: Game one
    kind: Game
    launch_type: Mobile
    domain_specific: true
    sub_activities: [{identifier: l1, name: Level 1}]
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var c koppeltaal.Config
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g := c.Applications[0]
	if g.TokenLifetime != 10*time.Minute || g.CodeLifetime != 30*time.Second || g.ActivationCodeLifetimeDays != 3 || !g.PublicClient ||
		c.Instances[0].Webhook.Headers["X-Koppeltaal-Secret"] != "abc" || !c.ActivityDefinitions[0].DomainSpecific ||
		c.Applications[1].TokenLifetime != koppeltaal.DefaultTokenLifetime {
		t.Fatalf("decoded: %+v", c)
	}
}
