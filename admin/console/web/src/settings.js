import { html } from "./html.js";
import { EVENTS } from "./api.js";

// fieldErrors splits the errors of a failed write into those about one attribute, by its path under
// /data/attributes ("DTAPPhase", "MessageSettings/1/MaximumMessageAgeDays"), and the message of the rest.
export function fieldErrors(x) {
  const byField = {};
  const rest = [];
  for (const e of (x && x.errors) || []) {
    const p = e.source && e.source.pointer;
    if (p && p.startsWith("/data/attributes/")) byField[p.slice("/data/attributes/".length)] = e.detail || e.title;
    else rest.push(e.detail ? `${e.title}: ${e.detail}` : e.title);
  }
  if (!rest.length && !Object.keys(byField).length) rest.push(x.message);
  return { byField, message: rest.join("; ") };
}

// FieldError is the server's message about one field, shown under it; the field names it with aria-describedby.
export function FieldError({ id, msg }) {
  return msg ? html`<small id=${id} class="field-error">${msg}</small>` : null;
}

// invalid gives a field the attributes that tie it to its FieldError.
export const invalid = (id, msg) => (msg ? { "aria-invalid": "true", "aria-describedby": id } : {});

// The members of one event's message setting, per kind of owner: the form field, its label, and the
// attribute of the Support API (SPEC.md §10.1 DomainMessageSettings, ApplicationMessageSettings).
const MEMBERS = {
  domain: [
    { attr: "MaximumMessageAgeDays", label: "Maximum age (days)", kind: "days" },
    { attr: "RetainOnSuccessfulRetrieval", label: "Keep the body after the last Success", kind: "flag" },
  ],
  application: [{ attr: "RetainmentRequired", label: "Keep every message until removed by hand", kind: "flag" }],
};

const fieldName = (attr, event) => `${attr}:${event}`;

// readSettings turns the form's per-event fields into the MessageSettings list: an event is listed only
// when one of its members differs from the default. The list's order (EVENTS) lets errors find their field.
export function readSettings(f, owner) {
  const out = [];
  for (const event of EVENTS) {
    const s = { Event: event };
    let set = false;
    for (const m of MEMBERS[owner]) {
      const v = f.get(fieldName(m.attr, event));
      if (m.kind === "flag") { s[m.attr] = v === "on"; set = set || s[m.attr]; }
      else if (v !== null && v !== "" && v !== "0") { s[m.attr] = Number(v); set = true; }
    }
    if (set) out.push(s);
  }
  return out;
}

// settingErrors maps the errors about MessageSettings/<index>/<member> of the list sent to the
// fields they are about ("MaximumMessageAgeDays:CreateOrUpdatePatient"); errors about the whole list stay.
export function settingErrors(byField, sent) {
  const out = {};
  for (const [path, msg] of Object.entries(byField)) {
    const m = path.match(/^MessageSettings\/(\d+)\/(\w+)$/);
    if (m && sent[Number(m[1])]) out[fieldName(m[2], sent[Number(m[1])].Event)] = msg;
    else out[path] = msg;
  }
  return out;
}

// MessageSettings is the per-event table of a domain's or an application's message settings (uncontrolled
// fields: a refused save leaves what was typed), each field labelled and each refused one marked with why.
export function MessageSettings({ owner, settings, errors }) {
  const cur = Object.fromEntries((settings || []).map((s) => [s.Event, s]));
  const cell = (m, event) => {
    const name = fieldName(m.attr, event);
    const id = "err-" + name.replace(":", "-");
    const msg = errors[name];
    const s = cur[event] || {};
    const label = html`<span class="sr-only">${m.label} for ${event}</span>`;
    const input = m.kind === "flag"
      ? html`<input type="checkbox" name=${name} defaultChecked=${!!s[m.attr]} ...${invalid(id, msg)} />`
      : html`<input type="number" name=${name} min="0" step="1" inputmode="numeric" defaultValue=${s[m.attr] || ""} ...${invalid(id, msg)} />`;
    return html`<td data-label=${m.label}><label>${label}${input}</label><${FieldError} id=${id} msg=${msg} /></td>`;
  };
  return html`<div class="scroll"><table class="cards settings" id=${owner + "-message-settings"}>
    <caption>Retention per event (SPEC.md §10.1): an event without a setting, or without an age, follows the global rules.</caption>
    <thead><tr><th scope="col">Event</th>${MEMBERS[owner].map((m) => html`<th scope="col">${m.label}</th>`)}</tr></thead>
    <tbody>${EVENTS.map((event) => html`<tr data-event=${event}><th scope="row" data-label="Event">${event}</th>
      ${MEMBERS[owner].map((m) => cell(m, event))}</tr>`)}</tbody></table></div>
    ${errors.MessageSettings && html`<p class="field-error" role="alert">${errors.MessageSettings}</p>`}`;
}
