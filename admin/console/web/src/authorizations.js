import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, filterQuery, jsonapi, resourceDoc, when } from "./api.js";
import { Confirm } from "./confirm.js";

const FIELDS = [["RegisteredClient", "Application (client_id)"], ["ApplicationInstance", "Instance (username)"],
  ["Patient", "Patient (reference)"], ["Domain", "Domain"]];

// Authorizations lists the OAuth grants of launched applications (per application, instance, patient) and
// revokes one: its access token and refresh chain are refused from their next call on.
export function Authorizations() {
  const [f, setF] = useState({});
  const [rows, setRows] = useState(null);
  const [total, setTotal] = useState(0);
  const [err, setErr] = useState("");
  const [done, setDone] = useState("");
  const latest = useRef(0);
  const load = async (filters) => {
    const mine = ++latest.current;
    setErr("");
    try {
      const doc = await jsonapi("GET", "/Authorization?" + filterQuery(filters, { "page[size]": 100 }));
      if (mine !== latest.current) return;
      setRows(doc.data.map(attrs));
      setTotal(doc.meta.page["total-records"]);
    } catch (x) { if (mine === latest.current) setErr(x.message); }
  };
  useEffect(() => { if (latest.current === 0) load(f); }, []); // a search submitted before this effect ran (a slow machine) wins
  const submit = (e) => {
    e.preventDefault();
    const next = {};
    for (const [k, v] of new FormData(e.target).entries()) if (v.trim()) next[k] = v.trim();
    setF(next);
    load(next);
  };
  const revoke = async (g) => {
    await jsonapi("PATCH", "/Authorization/" + g.id, resourceDoc("Authorization", { GrantStatus: "Revoked" }, g.id, g.version));
    setDone(`Authorization ${g.id} of ${g.RegisteredClient} revoked: its tokens are refused from their next call on.`);
    await load(f);
  };
  return html`<h1>Authorizations</h1>
    <p>OAuth grants of launched applications: one per launch, with the tokens its refreshes made. Revoking one
      refuses its access token and its refresh token at once, on every server sharing the database.</p>
    <form onSubmit=${submit} aria-label="Search authorizations">
      <div class="grid-form">${FIELDS.map(([name, label]) => html`<label>${label}<input name=${name} defaultValue=${f[name] || ""} /></label>`)}</div>
      <button type="submit">Search</button>
    </form>
    <p class="live" role="status">${done}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    ${rows === null ? html`<p aria-busy="true">Loading…</p>` : html`<div class="scroll"><table id="authorizations" class="cards">
      <caption class="live">${rows.length} of ${total} authorization${total === 1 ? "" : "s"}, newest first</caption>
      <thead><tr><th scope="col">#</th><th scope="col">Application</th><th scope="col">Instance</th><th scope="col">Patient</th>
        <th scope="col">Launch</th><th scope="col">Status</th><th scope="col">Authorized</th><th scope="col">Expires</th>
        <th scope="col" class="num">Tokens</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
      <tbody>${rows.map((g) => html`<tr data-grant=${g.id}>
        <td data-label="#">${g.AuthorizationNumber}</td><td data-label="Application"><code>${g.RegisteredClient}</code></td><td data-label="Instance">${g.ApplicationInstance} <small>${g.Domain}</small></td>
        <td data-label="Patient">${g.Patient}${g.User && html`<br /><small>user ${g.User}</small>`}</td><td data-label="Launch">${g.LaunchType}</td>
        <td data-label="Status"><span class=${"grant-" + g.GrantStatus}>${g.GrantStatus}</span>${g.RevokedAt && html`<br /><small>${when(g.RevokedAt)}</small>`}</td>
        <td data-label="Authorized">${when(g.AuthorizedAt)}</td><td data-label="Expires">${when(g.ExpiresAt)}</td><td data-label="Tokens" class="num">${g.Tokens}</td>
        <td data-label="">${g.GrantStatus === "Active" && html`<${Confirm} label="Revoke" question=${`Revoke authorization ${g.id} of ${g.RegisteredClient} for ${g.Patient}?`}
          onConfirm=${() => revoke(g)} />`}</td></tr>`)}
      </tbody></table></div>`}`;
}
