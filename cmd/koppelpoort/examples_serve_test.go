package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// TestServeExamplesOnAnotherAddr is issue 14's defects 13 and 16 on the released binary. Defect 13: with
// --addr elsewhere than the examples config's 8080 (nothing listens there in this test), the EPD example's
// export still reaches the demo game's mailbox at the new address — the example routes publish into this
// server in-process (outbound.koppeltaal instance:), not to a port. Defect 16: at INFO the log shows no
// SQL schema (watermill's table DDL), idle routes write no request lines, and `replay` prints no schema.
func TestServeExamplesOnAnotherAddr(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	env := []string{"HL7_LISTEN=" + testkit.FreeAddr(t), "ROM_HOOK_LISTEN=" + testkit.FreeAddr(t),
		"EPD_URL=http://" + testkit.FreeAddr(t)}
	base, _, stdout, stderr := startBinary(t, dir, env, "--config", "koppelpoort-examples.yaml")
	if strings.HasSuffix(base, ":8080") {
		t.Fatal("the free address is the config's own port; the test would show nothing")
	}
	logs := func() string { return stdout.String() + stderr.String() }

	src, err := os.ReadFile(filepath.Join(dir, "epd-to-koppeltaal", "testdata", "patienten_20261127.csv"))
	if err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(dir, "epd-to-koppeltaal", "inbox")
	os.MkdirAll(inbox, 0o755)
	if err := os.WriteFile(filepath.Join(inbox, "patienten_20261127.csv"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	game := &client.Client{BaseURL: base, Username: "game@demo", Password: "demo-game"}
	claimed := 0
	for deadline := time.Now().Add(90 * time.Second); claimed < 2 && time.Now().Before(deadline); {
		m, err := game.Claim(context.Background(), client.ClaimFilter{})
		if err != nil {
			t.Fatalf("claim at %s: %v", base, err)
		}
		if m == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if ev := m.MessageHeader().EventCode(); ev != "CreateOrUpdatePatient" {
			t.Fatalf("claimed %s", ev)
		}
		if err := game.Ack(context.Background(), m, "Success", ""); err != nil {
			t.Fatal(err)
		}
		claimed++
	}
	if claimed != 2 {
		t.Fatalf("claimed %d of 2 patients at %s\n%s", claimed, base, lastLines(logs(), 40))
	}

	// Idle for longer than the mailbox route's 5 s poll: nothing logs a request line meanwhile.
	requests := regexp.MustCompile(`(?m)^.*msg="http request".*$`)
	time.Sleep(time.Second) // the line of the last acknowledgement is written after its reply
	before := len(requests.FindAllString(logs(), -1))
	time.Sleep(6 * time.Second)
	if idle := requests.FindAllString(logs(), -1)[before:]; len(idle) != 0 {
		t.Errorf("idle routes logged %d request lines:\n%s", len(idle), strings.Join(idle, "\n"))
	}
	schema := regexp.MustCompile(`(?i)create (table|index)`)
	if s := schema.FindString(logs()); s != "" {
		t.Errorf("serve at INFO logs SQL (%q):\n%s", s, lastLines(logs(), 40))
	}
	if strings.Contains(logs(), "level=DEBUG") {
		t.Errorf("serve at INFO logs DEBUG lines:\n%s", lastLines(logs(), 40))
	}

	replay := exec.Command(binPath, "replay", "--config", "koppelpoort-examples.yaml", "--route", "epd-patients")
	replay.Dir, replay.Env = dir, append(os.Environ(), env...)
	out, err := replay.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 dead letters would be replayed") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if s := schema.FindString(string(out)); s != "" {
		t.Errorf("replay prints SQL (%q):\n%s", s, out)
	}
}
