package supportapi

import (
	"encoding/json"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// Message settings (SPEC.md §10.1): the per-event retention exceptions of a domain
// (DomainMessageSettings) and of an application (ApplicationMessageSettings), the
// MessageSettings attribute of Domain and Application — the file's message_settings.

// readSettings decodes the list attribute MessageSettings strictly: each element may only
// have the keys in allowed. It reports presence.
func readSettings(at *Attrs, dst any, allowed ...string) bool {
	raw, ok := at.raw["MessageSettings"]
	if !ok {
		return false
	}
	var elems []map[string]json.RawMessage
	if string(raw) != "null" && json.Unmarshal(raw, &elems) == nil {
		for _, e := range elems {
			for k := range e {
				if !contains(allowed, k) {
					at.Fail(400, "MessageSettings", "MessageSettings: unknown member %q (want %v)", k, allowed)
					return true
				}
			}
		}
	}
	return at.Get("MessageSettings", dst)
}

// readDomainSettings reads and checks a domain's MessageSettings (as the file's are checked).
func (a *API) readDomainSettings(at *Attrs, dst *[]koppeltaal.DomainMessageSettingConfig) bool {
	if !readSettings(at, dst, "Event", "MaximumMessageAgeDays", "RetainOnSuccessfulRetrieval") {
		return false
	}
	if err := a.kt.Retention.ValidateDomainMessageSettings("MessageSettings", *dst); err != nil {
		at.Fail(400, "MessageSettings", "%v", err)
	}
	return true
}

// readApplicationSettings reads and checks an application's MessageSettings.
func readApplicationSettings(at *Attrs, dst *[]koppeltaal.ApplicationMessageSettingConfig) bool {
	if !readSettings(at, dst, "Event", "RetainmentRequired") {
		return false
	}
	if err := koppeltaal.ValidateApplicationMessageSettings("MessageSettings", *dst); err != nil {
		at.Fail(400, "MessageSettings", "%v", err)
	}
	return true
}

func domainSettingsOut(ms []store.DomainMessageSetting) []map[string]any {
	out := []map[string]any{}
	for _, m := range ms {
		out = append(out, map[string]any{"Event": m.Event, "MaximumMessageAgeDays": m.MaxAgeDays, "RetainOnSuccessfulRetrieval": m.RetainOnSuccess})
	}
	return out
}

func applicationSettingsOut(ms []store.ApplicationMessageSetting) []map[string]any {
	out := []map[string]any{}
	for _, m := range ms {
		out = append(out, map[string]any{"Event": m.Event, "RetainmentRequired": m.RetainmentRequired})
	}
	return out
}
