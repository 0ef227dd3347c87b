package koppeltaal

import (
	"fmt"
	"time"
)

// versionLayout is the observed Koppeltaal version format yyyy-MM-ddTHH:mm:ss:fff.ffff (UTC):
// milliseconds after a colon, then four more digits (100 ns units).
const versionTick = 100 * time.Nanosecond

// FormatVersion renders t (UTC) as a Koppeltaal version string, e.g. 2019-03-19T12:00:02:188.9659.
func FormatVersion(t time.Time) string {
	t = t.UTC()
	ns := t.Nanosecond()
	return fmt.Sprintf("%s:%03d.%04d", t.Format("2006-01-02T15:04:05"), ns/1e6, (ns%1e6)/100)
}

// ParseVersion parses a version written by FormatVersion.
func ParseVersion(v string) (time.Time, error) {
	var ms, frac int
	if len(v) != len("2006-01-02T15:04:05:000.0000") {
		return time.Time{}, fmt.Errorf("version %q is not yyyy-MM-ddTHH:mm:ss:fff.ffff", v)
	}
	t, err := time.Parse("2006-01-02T15:04:05", v[:19])
	if err != nil {
		return time.Time{}, fmt.Errorf("version %q: %w", v, err)
	}
	if _, err := fmt.Sscanf(v[19:], ":%03d.%04d", &ms, &frac); err != nil {
		return time.Time{}, fmt.Errorf("version %q: %w", v, err)
	}
	return t.Add(time.Duration(ms)*time.Millisecond + time.Duration(frac)*versionTick), nil
}

// NextVersion returns the version for now that is strictly greater (as a
// string, which for this fixed-width format is also in time) than last. When
// the clock has not moved past last — two messages in the same tick, or a
// clock that stepped back — it bumps last by one tick.
func NextVersion(now time.Time, last string) string {
	v := FormatVersion(now)
	if v > last {
		return v
	}
	if t, err := ParseVersion(last); err == nil {
		return FormatVersion(t.Add(versionTick))
	}
	// last is not ours (imported data): stay above it whatever it is.
	return last + "1"
}
