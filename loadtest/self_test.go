package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestProvision(t *testing.T) {
	sc := &Scenario{Domains: 2, SubscribersPerEvent: 5}
	sc.Defaults()
	cfg, specs, err := Provision(sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Domains) != 2 || len(cfg.Applications) != 6 || len(specs) != 12 {
		t.Fatalf("domains %d, applications %d, instances %d", len(cfg.Domains), len(cfg.Applications), len(specs))
	}
	roles := map[string]int{}
	for _, s := range specs {
		roles[s.Role]++
		if s.Password == "" || strings.Contains(s.Username, ":") {
			t.Fatalf("bad credentials for %s", s.Username)
		}
	}
	if roles[RolePractitionerPortal] != 2 || roles[RolePatientPortal] != 4 || roles[RoleGame] != 2 || roles[RoleQuestionnaire] != 2 || roles[RoleRelatedPersonPortal] != 2 {
		t.Fatalf("roles %v", roles)
	}
}

// TestStartSelfFailsClearly starts a "server" that exits at once: the error
// must carry its output.
func TestStartSelfFailsClearly(t *testing.T) {
	sc := &Scenario{}
	sc.Defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := StartSelf(ctx, sc, SelfOptions{Command: []string{"/bin/sh", "-c", "echo store is on fire >&2; exit 3", "sh"}, StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "store is on fire") || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("error %v, want the server's output", err)
	}
}
