package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestServeSetsTheGCTargetUnlessGOGCIsSet(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	got := tuneGC(func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	})
	if now := debug.SetGCPercent(100); now != 100 || !strings.Contains(got, "GOGC=150") {
		t.Errorf("with GOGC=150 in the environment: GC percent %d (want it left alone at 100), reported %q", now, got)
	}
	got = tuneGC(func(string) string { return "" })
	if now := debug.SetGCPercent(100); now != gcPercent || !strings.Contains(got, "GOGC=200") {
		t.Errorf("without GOGC: GC percent %d, want %d; reported %q", now, gcPercent, got)
	}
}
