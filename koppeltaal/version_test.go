package koppeltaal

import (
	"testing"
	"time"
)

func TestFormatVersion(t *testing.T) {
	tm := time.Date(2019, 3, 19, 12, 0, 2, 188_965_900, time.UTC)
	if got := FormatVersion(tm); got != "2019-03-19T12:00:02:188.9659" {
		t.Fatalf("FormatVersion = %q", got)
	}
	back, err := ParseVersion("2019-03-19T12:00:02:188.9659")
	if err != nil || !back.Equal(tm) {
		t.Fatalf("ParseVersion = %v, %v", back, err)
	}
	// Non-UTC input is written in UTC.
	if got := FormatVersion(tm.In(time.FixedZone("CET", 3600))); got != "2019-03-19T12:00:02:188.9659" {
		t.Fatalf("FormatVersion(CET) = %q", got)
	}
}

func TestNextVersionStrictlyIncreases(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		now  time.Time
		last string
		want string
	}{
		{"first", now, "", "2026-01-01T00:00:00:000.0000"},
		{"clock moved", now.Add(time.Millisecond), "2026-01-01T00:00:00:000.0000", "2026-01-01T00:00:00:001.0000"},
		{"same tick bumps", now, "2026-01-01T00:00:00:000.0000", "2026-01-01T00:00:00:000.0001"},
		{"within 100µs bumps", now.Add(50 * time.Nanosecond), "2026-01-01T00:00:00:000.0000", "2026-01-01T00:00:00:000.0001"},
		{"clock went back", now, "2026-01-01T00:00:05:000.9999", "2026-01-01T00:00:05:001.0000"},
		{"foreign last", now, "2027-x", "2027-x1"},
	}
	for _, c := range cases {
		got := NextVersion(c.now, c.last)
		if got != c.want || got <= c.last {
			t.Errorf("%s: NextVersion = %q, want %q (> %q)", c.name, got, c.want, c.last)
		}
	}
	last := ""
	for i := 0; i < 10000; i++ {
		v := NextVersion(now, last)
		if v <= last {
			t.Fatalf("step %d: %q <= %q", i, v, last)
		}
		last = v
	}
}
