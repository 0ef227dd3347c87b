package koppeltaal

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A sender whose every message draws version warnings gets one log line per
// minute, which says how many messages it stands for; other senders get their own.
func TestVersionWarningsLoggedOncePerSenderPerMinute(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	var v versionWarnLog
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		v.note(log, t0.Add(time.Duration(i)*time.Second), "portal", int64(i+1), 2)
	}
	v.note(log, t0.Add(3*time.Second), "other", 9, 1)
	v.note(log, t0.Add(versionWarnEvery+time.Second), "portal", 6, 1)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), buf.String())
	}
	want := []struct {
		sender          string
		messageID, prev float64
	}{{"portal", 1, 0}, {"other", 9, 0}, {"portal", 6, 4}}
	for i, w := range want {
		l := lines[i]
		if l["level"] != "WARN" || l["sender"] != w.sender || l["message_id"] != w.messageID || l["earlier_messages_with_warnings"] != w.prev {
			t.Errorf("line %d: %v, want sender %s message %v earlier %v", i, l, w.sender, w.messageID, w.prev)
		}
	}
}
