package koppeltaal

import (
	"log/slog"
	"sync"
	"time"
)

// versionWarnEvery is how often the warning about one sender's version
// practice is logged at most. A 1.3.3-style sender (no versions on the
// resources next to the focal one) draws warnings on every message; one line
// per message would flood the log of a busy server with the same news.
const versionWarnEvery = time.Minute

// versionWarnLog logs "sender does not follow 1.3.5 versioning" once per
// sender per versionWarnEvery, with how many messages drew warnings since the
// last line. Every warning still counts in koppeltaal_version_warnings_total,
// and each one is logged at debug level.
type versionWarnLog struct {
	mu   sync.Mutex
	last map[string]versionWarnState // by sender username
}

type versionWarnState struct {
	at         time.Time // when the last line was logged
	suppressed int       // messages with warnings since then
}

func (v *versionWarnLog) note(log *slog.Logger, now time.Time, sender string, messageID int64, warnings int) {
	v.mu.Lock()
	st := v.last[sender]
	due := st.at.IsZero() || now.Sub(st.at) >= versionWarnEvery
	if due {
		if v.last == nil {
			v.last = map[string]versionWarnState{}
		}
		v.last[sender] = versionWarnState{at: now}
	} else {
		st.suppressed++
		v.last[sender] = st
	}
	v.mu.Unlock()
	if due {
		log.Warn("koppeltaal: version compatibility warnings (sender does not follow 1.3.5 versioning)",
			"sender", sender, "message_id", messageID, "count", warnings,
			"earlier_messages_with_warnings", st.suppressed, "logged_at_most_every", versionWarnEvery.String())
	}
}
