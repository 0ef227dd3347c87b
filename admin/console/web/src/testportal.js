import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, consoleAPI, filterQuery, jsonapi, when } from "./api.js";
import { Status } from "./messages.js";

// TestPortal: in a test domain, create a test patient, practitioner and CarePlan with an activity, launch the
// module as the patient or the practitioner, and watch the messages that follow (polled every 2 s).
export function TestPortal() {
  const [setup, setSetup] = useState(null);
  const [err, setErr] = useState("");
  const [domain, setDomain] = useState("");
  const [plan, setPlan] = useState(null);
  const [launch, setLaunch] = useState(null);
  const [msgs, setMsgs] = useState([]);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    consoleAPI("GET", "/portal").then((s) => { setSetup(s); if (s.domains.length) setDomain(s.domains[0].name); }, (x) => setErr(x.message));
  }, []);
  useEffect(() => {
    if (!plan) return undefined;
    const load = () => jsonapi("GET", "/Message?" + filterQuery({ Patient: plan.patient, Domain: plan.domain }, { "page[size]": 50 }))
      .then((d) => setMsgs(d.data.map(attrs)), () => {});
    load();
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [plan]);
  if (!setup) return html`<h1>Test Portal</h1>${err ? html`<p role="alert">${err}</p>` : html`<p aria-busy="true">Loading…</p>`}`;
  if (!setup.domains.length) return html`<h1>Test Portal</h1><p>There is no test domain you administer. The Test Portal works in domains whose DTAP phase is not production.</p>`;
  const dom = setup.domains.find((d) => d.name === domain) || setup.domains[0];
  const run = async (fn) => { setBusy(true); setErr(""); try { await fn(); } catch (x) { setErr(x.message); } finally { setBusy(false); } };
  const create = (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    run(async () => {
      const res = await consoleAPI("POST", "/portal/careplan", { domain: dom.name, portal: f.get("portal"),
        patient_name: f.get("patient"), practitioner_name: f.get("practitioner"), activity: f.get("activity") });
      setPlan({ ...res, domain: dom.name, portal: f.get("portal") });
      setLaunch(null);
    });
  };
  const start = (as, kind) => run(async () => {
    const res = await consoleAPI("POST", "/portal/launch", { domain: plan.domain, portal: plan.portal, application: plan.application,
      patient: plan.patient, user: as === "patient" ? plan.patient : plan.practitioner, activity_id: plan.activity_id, kind });
    setLaunch({ ...res, as, kind });
    if (res.location) window.open(res.location, "_blank", "noopener");
  });
  return html`<h1>Test Portal</h1>
    <p>Acts as a portal of a test domain: the messages below are real and go to the domain's subscribers.</p>
    <form onSubmit=${create} aria-label="Create a test CarePlan">
      <div class="grid-form">
        <label>Domain<select value=${dom.name} onChange=${(e) => setDomain(e.target.value)}>${setup.domains.map((d) => html`<option>${d.name}</option>`)}</select></label>
        <label>Post as (portal instance)<select name="portal">${dom.portals.map((p) => html`<option>${p}</option>`)}</select></label>
        <label>Test patient<input name="patient" value="Test Patient" /></label>
        <label>Test practitioner<input name="practitioner" value="Test Practitioner" /></label>
        <label>Activity<select name="activity" required>${dom.activities.map((a) => html`<option value=${a.identifier}>${a.name || a.identifier} (${a.application}, ${a.kind})</option>`)}</select></label>
      </div>
      <button type="submit" aria-busy=${busy} disabled=${!dom.activities.length}>Create patient, practitioner and CarePlan</button>
    </form>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    ${plan && html`<article>
      <header><h2>CarePlan for ${plan.patient}</h2></header>
      <p>Activity <code>${plan.activity_id}</code> of <strong>${plan.application}</strong> (${plan.launch_type}).</p>
      <div role="group" aria-label="Launch">
        <button onClick=${() => start("patient", "web")}>Launch as patient (new tab)</button>
        <button class="secondary" onClick=${() => start("practitioner", "web")}>Launch as practitioner (new tab)</button>
        <button class="outline" onClick=${() => start("patient", "mobile")}>Mobile activation code</button>
      </div>
      ${launch && launch.location && html`<p>Launched as the ${launch.as}: <a href=${launch.location} target="_blank" rel="noopener" id="launch-link">open the module again</a></p>`}
      ${launch && launch.activation_code && html`<p>Activation code for the app: <span class="secret" id="activation-code">${launch.activation_code}</span> (valid ${launch.expires_in_days} days)</p>`}
    </article>`}
    ${plan && html`<h2>Messages about the test patient</h2>
      <p class="live" aria-live="polite">${msgs.length} message${msgs.length === 1 ? "" : "s"}; the module's status updates appear here as they arrive.</p>
      <div class="scroll"><table id="portal-messages"><thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Sender</th><th scope="col">Recipients</th></tr></thead>
        <tbody>${msgs.map((m) => html`<tr data-event=${m.Event}><td><a href=${"#/messages/" + m.id}>${when(m.CreatedAt)}</a></td><td>${m.Event}</td><td>${m.Sender}</td>
          <td>${m.Recipients.map((r) => html`<div>${r.Instance}: <${Status} s=${r.Status} /></div>`)}</td></tr>`)}</tbody></table></div>`}`;
}
