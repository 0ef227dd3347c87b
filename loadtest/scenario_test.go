package loadtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseScenario(t *testing.T) {
	t.Setenv("LT_TEST_PW", "s3cret")
	tests := []struct {
		name    string
		yaml    string
		self    bool
		wantErr string // substring; "" = valid
		check   func(t *testing.T, s *Scenario)
	}{
		{
			name: "defaults", yaml: "", self: true,
			check: func(t *testing.T, s *Scenario) {
				if s.Duration != 30*time.Second || s.SubscribersPerEvent != 3 || s.Format != "json" || *s.AckFailedShare != 0.02 {
					t.Fatalf("defaults not applied: %+v", s)
				}
			},
		},
		{
			name: "full self", self: true,
			yaml: "format: xml\nduration: 3s\nrate: 300\ndomains: 4\npatients_per_domain: 50\nsubscribers_per_event: 5\nmessage_size: 16KiB\nmix: {patient: 1, careplan: 9}\nack_new_share: 0\n",
			check: func(t *testing.T, s *Scenario) {
				if s.Rate != 300 || s.Concurrency != 64 || s.MessageSize != 16<<10 || s.Mix.CarePlan != 9 || *s.AckNewShare != 0 || s.Domains != 4 {
					t.Fatalf("values not decoded: %+v", s)
				}
			},
		},
		{
			name: "external with credentials", self: false,
			yaml: "target: http://127.0.0.1:8080\ninstances:\n- {domain: D, role: practitioner-portal, username: pp, password: '${LT_TEST_PW}', subscriptions: [UpdateCarePlanActivityStatus]}\n- {domain: D, role: game, username: g, password: x, subscriptions: [CreateOrUpdateCarePlan]}\n",
			check: func(t *testing.T, s *Scenario) {
				if s.Instances[0].Password != "s3cret" || s.Instances[1].Format != "json" {
					t.Fatalf("instances: %+v", s.Instances)
				}
			},
		},
		{name: "unknown key", yaml: "duraton: 3s\n", self: true, wantErr: `scenario:1:1: error: unknown key "duraton" in the top level (did you mean "duration"?)`},
		{name: "bad format", yaml: "format: csv\n", self: true, wantErr: "format: \"csv\""},
		{name: "bad size", yaml: "message_size: lots\n", self: true, wantErr: "invalid size"},
		{name: "bad share", yaml: "ack_failed_share: 1.5\n", self: true, wantErr: "ack_failed_share: 1.5"},
		{name: "shares over one", yaml: "ack_failed_share: 0.6\nack_new_share: 0.6\n", self: true, wantErr: "exceeds 1"},
		{name: "external needs target", yaml: "", self: false, wantErr: "target: required"},
		{name: "prefill", yaml: "prefill: 1000000\n", self: true, check: func(t *testing.T, s *Scenario) {
			if s.Prefill != 1_000_000 {
				t.Fatalf("prefill %d", s.Prefill)
			}
		}},
		{name: "prefill too large", yaml: "prefill: 10000001\n", self: true, wantErr: "prefill: 10000001 is not within 0..10000000"},
		{name: "prefill needs self", yaml: "prefill: 10\ntarget: http://127.0.0.1:1\ninstances: [{domain: D, role: practitioner-portal, username: u}]\n", self: false, wantErr: "prefill: 10 needs --self"},
		{name: "remote refused", yaml: "target: http://10.1.2.3:8080\ninstances: [{domain: D, role: practitioner-portal, username: u}]\n", self: false, wantErr: "--allow-remote"},
		{name: "remote allowed", yaml: "target: http://10.1.2.3:8080\nallow_remote: true\ninstances: [{domain: D, role: practitioner-portal, username: u}]\n", self: false},
		{name: "unknown role", yaml: "target: http://127.0.0.1:1\ninstances: [{domain: D, role: nurse, username: u}]\n", self: false, wantErr: "role \"nurse\""},
		{name: "no sender", yaml: "target: http://127.0.0.1:1\ninstances: [{domain: D, role: game, username: u}]\n", self: false, wantErr: "practitioner-portal"},
		{name: "unknown event", yaml: "target: http://[::1]:1\ninstances: [{domain: D, role: practitioner-portal, username: u, subscriptions: [Foo]}]\n", self: false, wantErr: "subscription \"Foo\" is not a Koppeltaal event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseScenario("scenario", []byte(tt.yaml))
			if err == nil {
				s.Defaults()
				err = s.Validate(tt.self)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.check != nil {
					tt.check(t, s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadScenarioFile(t *testing.T) {
	// The passwords come from the environment; an unset one is an error naming the variable and its place.
	external := filepath.Join("testdata", "scenario-external.yaml")
	for _, v := range []string{"KP_PORTAL_PASSWORD", "KP_PATIENT_PASSWORD", "KP_GAME_PASSWORD"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	if _, err := LoadScenario(external); err == nil || !strings.Contains(err.Error(), external+":10:101: error: environment variable KP_PORTAL_PASSWORD is not set") {
		t.Fatalf("unset password: %v", err)
	}
	for _, v := range []string{"KP_PORTAL_PASSWORD", "KP_PATIENT_PASSWORD", "KP_GAME_PASSWORD"} {
		t.Setenv(v, "pw-"+v)
	}
	s, err := LoadScenario(external)
	if err != nil {
		t.Fatal(err)
	}
	if s.Instances[0].Password != "pw-KP_PORTAL_PASSWORD" {
		t.Errorf("portal password = %q", s.Instances[0].Password)
	}
	s.Defaults()
	if err := s.Validate(false); err != nil {
		t.Fatalf("example scenario does not validate: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("domains: 2\nrate: [1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadScenario(p); err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Fatalf("error %v, want the file name and line 2", err)
	}
}

// TestShippedScenarios keeps the scenario files in scenarios/ valid.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := LoadScenario(f)
			if err != nil {
				t.Fatal(err)
			}
			s.Defaults()
			if err := s.Validate(true); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseInstanceFlag(t *testing.T) {
	t.Setenv("LT_GAME_PW", "pw1")
	in, err := ParseInstanceFlag("role=game,domain=D,username=game@D,password=${LT_GAME_PW},subscriptions=CreateOrUpdateCarePlan+CreateOrUpdatePatient")
	if err != nil {
		t.Fatal(err)
	}
	if in.Password != "pw1" || len(in.Subscriptions) != 2 || in.Role != RoleGame {
		t.Fatalf("%+v", in)
	}
	for _, bad := range []string{"role=game", "role=game,domain=D,username=u,colour=red", "nonsense"} {
		if _, err := ParseInstanceFlag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseCompare(t *testing.T) {
	legs, err := ParseCompare("sqlite, postgres,postgres*2", "postgres://x@127.0.0.1/postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(legs) != 3 || legs[0].DSN != "" || legs[1].Processes != 1 || legs[2].Processes != 2 || legs[2].DSN == "" {
		t.Fatalf("legs: %+v", legs)
	}
	for _, bad := range []string{"postgres", "sqlite*2", "mysql", "postgres*0", "postgres*x"} {
		dsn := "postgres://x@127.0.0.1/postgres"
		if bad == "postgres" {
			dsn = ""
		}
		if _, err := ParseCompare(bad, dsn); err == nil {
			t.Errorf("--compare %q accepted", bad)
		}
	}
}
