package supportapi

import (
	"encoding/json"
	"fmt"

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
	failSettings(at, a.kt.Retention.DomainSettingProblems(*dst))
	return true
}

// readApplicationSettings reads and checks an application's MessageSettings.
func readApplicationSettings(at *Attrs, dst *[]koppeltaal.ApplicationMessageSettingConfig) bool {
	if !readSettings(at, dst, "Event", "RetainmentRequired") {
		return false
	}
	failSettings(at, koppeltaal.ApplicationSettingProblems(*dst))
	return true
}

// settingAttrs names the file's keys of a message setting as the API does.
var settingAttrs = map[string]string{"event": "Event", "maximum_message_age_days": "MaximumMessageAgeDays",
	"retain_on_successful_retrieval": "RetainOnSuccessfulRetrieval", "retainment_required": "RetainmentRequired"}

// failSettings records one error per problem, each pointing at the member it is about
// (/data/attributes/MessageSettings/1/MaximumMessageAgeDays), so a form shows it next to its field.
func failSettings(at *Attrs, problems []koppeltaal.SettingProblem) {
	for _, p := range problems {
		name := settingAttrs[p.Key]
		at.Fail(400, fmt.Sprintf("MessageSettings/%d/%s", p.Index, name), "MessageSettings[%d].%s %s", p.Index, name, p.Problem)
	}
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
