import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, EVENTS, jsonapi, resourceDoc, when } from "./api.js";
import { fieldErrors, FieldError, invalid, MessageSettings, readSettings, settingErrors } from "./settings.js";

// useList loads a Support API collection (every page up to 500 items: provisioning lists are small).
function useList(type) {
  const [list, setList] = useState(null);
  const [err, setErr] = useState("");
  const reload = () => jsonapi("GET", `/${type}?page[size]=500`).then((d) => setList(d.data.map(attrs)), (x) => setErr(x.message));
  useEffect(() => { reload(); }, [type]);
  return [list, err, reload];
}

// loading is what a page shows until all its lists are in: forms and tables appear together, so nothing moves
// under the pointer and no select is offered without its options.
function loading(title, err, ...lists) {
  if (lists.every((l) => l !== null)) return null;
  return html`<h1>${title}</h1>${err ? html`<p role="alert">${err}</p>` : html`<p aria-busy="true">Loading…</p>`}`;
}

function Managed({ by }) {
  return by === "config"
    ? html`<span class="badge" title="Declared in the configuration file: change it there">file</span>`
    : html`<span class="badge" title="Created through the console or the Support API">runtime</span>`;
}

function Form({ title, onSubmit, children, result }) {
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setErr("");
    try { await onSubmit(new FormData(e.target), e.target); } catch (x) { setErr(x.message); } finally { setBusy(false); }
  };
  return html`<details open=${!!result}><summary role="button" class="secondary outline">${title}</summary>
    <form onSubmit=${submit}>${children}
      ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
      <button type="submit" aria-busy=${busy}>Save</button>
    </form>${result}</details>`;
}

export function Domains({ me }) {
  const [list, err, reload] = useList("Domain");
  const create = async (f) => {
    await jsonapi("POST", "/Domain", resourceDoc("Domain", { Name: f.get("name"), DTAPPhase: f.get("phase") }));
    reload();
  };
  const wait = loading("Domains", err, list);
  if (wait) return wait;
  return html`<h1>Domains</h1>
    ${err && html`<p role="alert">${err}</p>`}
    <div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">DTAP phase</th><th scope="col">Managed by</th><th scope="col">Created</th></tr></thead>
    <tbody>${(list || []).map((d) => html`<tr><td><a href=${"#/domains/" + d.id}>${d.Name}</a></td><td>${d.DTAPPhase}</td><td><${Managed} by=${d.ManagedBy} /></td><td>${when(d.CreatedAt)}</td></tr>`)}</tbody></table></div>
    ${me.role === "system" && html`<${Form} title="New domain" onSubmit=${create}>
      <div class="grid-form">
        <label>Name<input name="name" required maxlength="100" /></label>
        <label>DTAP phase<select name="phase"><option>production</option><option>acceptance</option><option>test</option><option>development</option></select></label>
      </div></${Form}>`}`;
}

const PHASES = ["production", "acceptance", "test", "development"];

// useSettingsForm is the save of a form with message settings: it PATCHes what build(formData) returns
// and sorts a refusal into messages next to their fields and one for the rest (a stale version among them).
function useSettingsForm(type, id, current, setCurrent, savedText = "Saved: the next acknowledgement and removal run use it, in every Koppelpoort process.") {
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState("");
  const [saved, setSaved] = useState("");
  const [busy, setBusy] = useState(false);
  const save = (build) => async (e) => {
    e.preventDefault();
    const attributes = build(new FormData(e.target));
    setBusy(true); setErrors({}); setMessage(""); setSaved("");
    try {
      const d = await jsonapi("PATCH", `/${type}/${id}`, resourceDoc(type, attributes, id, current.version));
      setCurrent(attrs(d.data));
      setSaved(savedText);
    } catch (x) {
      const { byField, message } = fieldErrors(x);
      setErrors(settingErrors(byField, attributes.MessageSettings || []));
      setMessage(message || "Not saved: see the marked fields.");
    } finally { setBusy(false); }
  };
  return { errors, message, saved, busy, save };
}

function SaveStatus({ form }) {
  return html`<p aria-live="polite">${form.saved}</p>${form.message && html`<p role="alert" class="status-Failed">${form.message}</p>`}`;
}

// DomainDetail shows a domain and edits its DTAP phase and its message settings (the file's dtap_phase
// and message_settings).
export function DomainDetail({ id }) {
  const [dom, setDom] = useState(null);
  const [err, setErr] = useState("");
  const form = useSettingsForm("Domain", id, dom, setDom);
  useEffect(() => { jsonapi("GET", "/Domain/" + id).then((d) => setDom(attrs(d.data)), (x) => setErr(x.message)); }, [id]);
  if (err && !dom) return html`<h1>Domain ${id}</h1><p role="alert">${err}</p>`;
  if (!dom) return html`<h1>Domain ${id}</h1><p aria-busy="true">Loading…</p>`;
  const file = dom.ManagedBy === "config";
  const build = (f) => ({ DTAPPhase: f.get("phase"), MessageSettings: readSettings(f, "domain") });
  return html`<p><a href="#/domains">← Domains</a></p>
    <h1>Domain ${dom.Name}</h1>
    <p>${dom.DTAPPhase} · <${Managed} by=${dom.ManagedBy} /> · created ${when(dom.CreatedAt)}</p>
    ${file && html`<p>This domain is declared in the configuration file: change it there.</p>`}
    <form onSubmit=${form.save(build)} aria-label="Domain settings" noValidate>
      <fieldset disabled=${file}>
        <div class="grid-form">
          <label>DTAP phase<select name="phase" ...${invalid("err-phase", form.errors.DTAPPhase)}>${PHASES.map((p) => html`<option selected=${dom.DTAPPhase === p}>${p}</option>`)}</select>
            <${FieldError} id="err-phase" msg=${form.errors.DTAPPhase} /></label>
        </div>
        <h2>Message settings</h2>
        <${MessageSettings} owner="domain" settings=${dom.MessageSettings} errors=${form.errors} />
        <button type="submit" aria-busy=${form.busy}>Save</button>
      </fieldset>
    </form>
    <${SaveStatus} form=${form} />`;
}

const ROLES = ["PractitionerPortal", "PatientPortal", "RelatedPersonPortal", "Game", "ELearning", "ROM"];

export function Applications({ me }) {
  const [list, err, reload] = useList("Application");
  const create = async (f) => {
    const roles = f.getAll("roles");
    await jsonapi("POST", "/Application", resourceDoc("Application", { Identifier: f.get("ident"), Name: f.get("name"), ApplicationRoles: roles }));
    reload();
  };
  const wait = loading("Applications", err, list);
  if (wait) return wait;
  return html`<h1>Applications</h1>
    ${err && html`<p role="alert">${err}</p>`}
    <div class="scroll"><table><thead><tr><th scope="col">Identifier (client_id)</th><th scope="col">Name</th><th scope="col">Roles</th><th scope="col">Managed by</th></tr></thead>
    <tbody>${(list || []).map((a) => html`<tr><td><a href=${"#/applications/" + a.id}><code>${a.Identifier}</code></a></td><td>${a.Name}</td><td>${a.ApplicationRoles.join(", ")}</td><td><${Managed} by=${a.ManagedBy} /></td></tr>`)}</tbody></table></div>
    ${me.role === "system" && html`<${Form} title="Register an application" onSubmit=${create}>
      <div class="grid-form">
        <label>Identifier<input name="ident" required maxlength="100" pattern="[^\\s/?#%]+" /></label>
        <label>Name<input name="name" /></label>
      </div>
      <fieldset><legend>Roles</legend>${ROLES.map((r) => html`<label><input type="checkbox" name="roles" value=${r} /> ${r}</label>`)}</fieldset>
    </${Form}>`}`;
}

function Secret({ label, value }) {
  return value && html`<article aria-live="assertive"><p>${label}: <span class="secret">${value}</span></p>
    <p><small>Shown once. Copy it now: the server keeps only a hash.</small></p></article>`;
}

// headerLines reads "Name: value" lines (the file's webhook.headers); a line without a name is refused.
function headerLines(text) {
  const out = {};
  for (const line of (text || "").split("\n").map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf(":");
    if (i < 1) throw new Error(`Webhook headers: "${line}" is not "Name: value"`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

// The webhook's headers are write-only (shared secrets): the page names the ones set, never their values.
const headersHelp = (set) => (Object.keys(set || {}).length
  ? `Set now: ${Object.keys(set).join(", ")} (values not shown). Empty: unchanged.` : "None set.");

export function Instances({ me }) {
  const [list, err, reload] = useList("ApplicationInstance");
  const [apps, appsErr] = useList("Application");
  const [domains, domainsErr] = useList("Domain");
  const [created, setCreated] = useState(null);
  const create = async (f, form) => {
    const body = { Username: f.get("username"), Application: f.get("application"), Domain: f.get("domain"),
      ApiVersion: f.get("apiVersion"), Subscriptions: f.getAll("subs") };
    if (f.get("webhook")) body.WebhookUrl = f.get("webhook");
    const headers = headerLines(f.get("headers"));
    if (Object.keys(headers).length) body.WebhookHeaders = headers;
    if (f.get("password")) body.Password = f.get("password");
    if (f.get("passwordHash")) body.PasswordHash = f.get("passwordHash");
    const doc = await jsonapi("POST", "/ApplicationInstance", resourceDoc("ApplicationInstance", body));
    setCreated({ username: body.Username, password: doc.data.meta && doc.data.meta.password, id: doc.data.id });
    form.reset();
    reload();
  };
  const wait = loading("Application instances", err || appsErr || domainsErr, list, apps, domains);
  if (wait) return wait;
  return html`<h1>Application instances</h1>
    ${err && html`<p role="alert">${err}</p>`}
    <div class="scroll"><table><thead><tr><th scope="col">Username</th><th scope="col">Application</th><th scope="col">Domain</th><th scope="col">API</th><th scope="col">Subscriptions</th><th scope="col">Webhook</th><th scope="col">State</th></tr></thead>
    <tbody>${(list || []).map((i) => html`<tr>
      <td><a href=${"#/instances/" + i.id}>${i.Username}</a> <${Managed} by=${i.ManagedBy} /></td><td>${i.Application}</td><td>${i.Domain}</td>
      <td>${i.ApiVersion}</td><td>${i.Subscriptions.join(", ")}</td><td>${i.WebhookUrl}</td><td>${i.Active ? "active" : "inactive"}</td></tr>`)}</tbody></table></div>
    ${me.role !== "application" && html`<${Form} title="New application instance" onSubmit=${create}
        result=${created && html`<${Secret} label=${"Password of " + created.username} value=${created.password} />`}>
      <div class="grid-form">
        <label>Username<input name="username" required maxlength="100" autocomplete="off" /></label>
        <label>Application<select name="application" required>${(apps || []).map((a) => html`<option>${a.Identifier}</option>`)}</select></label>
        <label>Domain<select name="domain" required>${(domains || []).map((d) => html`<option>${d.Name}</option>`)}</select></label>
        <label>API version<select name="apiVersion"><option>1.3.5</option><option>1.3.3</option></select></label>
        <label>Webhook URL<input name="webhook" type="url" placeholder="https://module.example/koppeltaal/hook" /></label>
        <label>Webhook headers (Name: value, one a line)<textarea name="headers" rows="2" placeholder="X-Koppeltaal-Secret: …"></textarea></label>
        <label>Password (empty: generated, shown once)<input name="password" type="password" autocomplete="new-password" minlength="10" /></label>
        <label>Or a password hash made elsewhere (bcrypt, argon2id)<input name="passwordHash" autocomplete="off" spellcheck="false" /></label>
      </div>
      <fieldset><legend>Subscriptions</legend>${EVENTS.map((e) => html`<label><input type="checkbox" name="subs" value=${e} /> ${e}</label>`)}</fieldset>
    </${Form}>`}`;
}

export function InstanceDetail({ id }) {
  const [inst, setInst] = useState(null);
  const [err, setErr] = useState("");
  const [secret, setSecret] = useState("");
  const [saved, setSaved] = useState("");
  const load = () => jsonapi("GET", "/ApplicationInstance/" + id).then((d) => setInst(attrs(d.data)), (x) => setErr(x.message));
  useEffect(() => { load(); }, [id]);
  if (err && !inst) return html`<h1>Instance ${id}</h1><p role="alert">${err}</p>`;
  if (!inst) return html`<h1>Instance ${id}</h1><p aria-busy="true">Loading…</p>`;
  const patch = async (attributes) => {
    setErr(""); setSaved("");
    try {
      const doc = await jsonapi("PATCH", "/ApplicationInstance/" + id, resourceDoc("ApplicationInstance", attributes, id, inst.version));
      setInst(attrs(doc.data));
      if (doc.data.meta.password) setSecret(doc.data.meta.password);
      setSaved("Saved.");
      return true;
    } catch (x) { setErr(x.message); return false; }
  };
  const save = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const attributes = { ApiVersion: f.get("apiVersion"), Subscriptions: f.getAll("subs"), WebhookUrl: f.get("webhook") || null };
    try {
      const headers = headerLines(f.get("headers"));
      if (f.get("noHeaders") === "on") attributes.WebhookHeaders = null;
      else if (Object.keys(headers).length) attributes.WebhookHeaders = headers;
    } catch (x) { setErr(x.message); return; }
    if (f.get("password")) attributes.Password = f.get("password");
    if (f.get("passwordHash")) attributes.PasswordHash = f.get("passwordHash");
    const form = e.target;
    if (await patch(attributes)) { // secrets are not kept on the page
      for (const name of ["password", "passwordHash", "headers"]) form.elements[name].value = "";
    }
  };
  const file = inst.ManagedBy === "config";
  return html`<p><a href="#/instances">← Instances</a></p>
    <h1>${inst.Username}</h1>
    <p>${inst.Application} in domain ${inst.Domain} · ${inst.Active ? "active" : "inactive"} · <${Managed} by=${inst.ManagedBy} /></p>
    ${file && html`<p>This instance is declared in the configuration file: change it there.</p>`}
    <form onSubmit=${save}>
      <fieldset disabled=${file}>
        <div class="grid-form">
          <label>API version<select name="apiVersion">${["1.3.5", "1.3.3"].map((v) => html`<option selected=${inst.ApiVersion === v}>${v}</option>`)}</select></label>
          <label>Webhook URL<input name="webhook" type="url" value=${inst.WebhookUrl} /></label>
          <label>Webhook headers (Name: value, one a line; replaces them)<textarea name="headers" rows="2" aria-describedby="headers-help"></textarea>
            <small id="headers-help">${headersHelp(inst.WebhookHeaders)}</small></label>
          <label>New password (empty: unchanged)<input name="password" type="password" autocomplete="new-password" minlength="10" /></label>
          <label>Or a password hash made elsewhere (bcrypt, argon2id)<input name="passwordHash" autocomplete="off" spellcheck="false" /></label>
        </div>
        ${Object.keys(inst.WebhookHeaders || {}).length > 0 && html`<label><input type="checkbox" name="noHeaders" /> Remove the webhook headers</label>`}
        <fieldset><legend>Subscriptions</legend>${EVENTS.map((e) => html`<label><input type="checkbox" name="subs" value=${e} checked=${inst.Subscriptions.includes(e)} /> ${e}</label>`)}</fieldset>
        <button type="submit">Save</button>
      </fieldset>
    </form>
    ${!file && html`<div role="group">
      <button class="secondary" onClick=${() => patch({ ResetPassword: true })}>Reset password</button>
      <button class="secondary" onClick=${() => patch({ Active: !inst.Active })}>${inst.Active ? "Deactivate" : "Activate"}</button>
    </div>`}
    <p aria-live="polite">${saved}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    <${Secret} label="New password" value=${secret} />`;
}

const names = (s) => (s || "").split(",").map((x) => x.trim()).filter(Boolean);

// Administrators (system administrators): create accounts, disable and enable them, reset a password.
// Disabling an account or changing its role or password ends its sessions and API tokens at once.
export function Administrators({ me }) {
  const [list, err, reload] = useList("Administrator");
  const [shown, setShown] = useState(null); // {username, password}: a password shown once
  const [actErr, setActErr] = useState("");
  const create = async (f) => {
    const role = f.get("role");
    const a = { Username: f.get("username"), Name: f.get("name"), Email: f.get("email"), Role: role };
    if (role === "domain") a.Domains = names(f.get("scope"));
    if (role === "application") a.Applications = names(f.get("scope"));
    if (f.get("password")) a.Password = f.get("password");
    if (f.get("passwordHash")) a.PasswordHash = f.get("passwordHash");
    const d = await jsonapi("POST", "/Administrator", resourceDoc("Administrator", a));
    setShown(d.data.meta && d.data.meta.password ? { username: a.Username, password: d.data.meta.password } : null);
    reload();
  };
  const change = async (u, attributes) => {
    setActErr("");
    try {
      const d = await jsonapi("PATCH", "/Administrator/" + u.id, resourceDoc("Administrator", attributes, u.id, u.version));
      if (d.data.meta && d.data.meta.password) setShown({ username: u.Username, password: d.data.meta.password });
      reload();
    } catch (x) { setActErr(x.message); }
  };
  const wait = loading("Administrators", err, list);
  if (wait) return wait;
  return html`<h1>Administrators</h1>
    <p>Disabling an account, or changing its role or password, ends its console sessions and API tokens at once.</p>
    ${(err || actErr) && html`<p role="alert" class="status-Failed">${err || actErr}</p>`}
    ${shown && html`<p role="status">Password of ${shown.username}, shown once: <span class="secret">${shown.password}</span></p>`}
    <div class="scroll"><table class="cards" id="administrators"><thead><tr><th scope="col">Username</th><th scope="col">Name</th><th scope="col">Role</th>
      <th scope="col">Administers</th><th scope="col">State</th><th scope="col">Managed by</th><th scope="col">Actions</th></tr></thead>
    <tbody>${list.map((u) => html`<tr data-username=${u.Username}>
      <td data-label="Username"><a href=${"#/administrators/" + u.id}><code>${u.Username}</code></a></td><td data-label="Name">${u.Name}</td><td data-label="Role">${u.Role}</td>
      <td data-label="Administers">${[...u.Domains, ...u.Applications].join(", ") || "everything"}</td>
      <td data-label="State">${u.Disabled ? html`<span class="status-Failed">disabled</span>` : "enabled"}</td>
      <td data-label="Managed by"><${Managed} by=${u.ManagedBy} /></td>
      <td data-label="">${u.ManagedBy !== "config" && u.Username !== me.username && html`
        <button class="secondary outline" onClick=${() => change(u, { Disabled: !u.Disabled })}>${u.Disabled ? "Enable" : "Disable"} ${u.Username}</button>
        <button class="secondary outline" onClick=${() => change(u, { ResetPassword: true })}>Reset password of ${u.Username}</button>`}</td></tr>`)}
    </tbody></table></div>
    <${Form} title="New administrator" onSubmit=${create}>
      <div class="grid-form">
        <label>Username<input name="username" required maxlength="100" pattern="[^\\s:]+" /></label>
        <label>Name<input name="name" /></label>
        <label>E-mail<input name="email" type="email" /></label>
        <label>Role<select name="role"><option value="domain">domain</option><option value="application">application</option><option value="system">system</option></select></label>
        <label>Domains or applications (comma-separated)<input name="scope" placeholder="Demo" /></label>
        <label>Password (empty: generated, shown once)<input name="password" type="password" autocomplete="new-password" minlength="10" /></label>
        <label>Or a password hash made elsewhere (bcrypt, argon2id)<input name="passwordHash" autocomplete="off" spellcheck="false" /></label>
      </div></${Form}>`;
}

const lines = (s) => (s || "").split(/\s+/).map((x) => x.trim()).filter(Boolean);

// ApplicationDetail shows an application and edits its name, roles and message settings (the Application
// resource) and its OAuth client settings (the RegisteredClient resource:
// launch URL, redirect URIs, allowed origins, public token requests, refresh tokens, lifetimes, the secret).
export function ApplicationDetail({ id }) {
  const [app, setApp] = useState(null);
  const [client, setClient] = useState(undefined); // null: no client settings yet
  const [err, setErr] = useState("");
  const [saved, setSaved] = useState("");
  const [secret, setSecret] = useState("");
  const form = useSettingsForm("Application", id, app, setApp);
  const load = () => Promise.all([
    jsonapi("GET", "/Application/" + id).then((d) => setApp(attrs(d.data))),
    jsonapi("GET", "/RegisteredClient/" + id).then((d) => setClient(attrs(d.data)), (x) => { if (x.status === 404) setClient(null); else throw x; }),
  ]).catch((x) => setErr(x.message));
  useEffect(() => { load(); }, [id]);
  if (err && !app) return html`<h1>Application ${id}</h1><p role="alert">${err}</p>`;
  if (!app || client === undefined) return html`<h1>Application ${id}</h1><p aria-busy="true">Loading…</p>`;
  const c = client || { LaunchUrl: "", RedirectUris: [], AllowedOrigins: [], AllowPublicTokenRequests: false, UseRefreshTokens: false,
    TokenExpiresIn: 900, AuthorizationCodeExpiresIn: 60, WebLaunchRequestExpiresIn: 300, MobileActivationCodeExpiresIn: 7 };
  const write = async (attributes) => {
    setErr(""); setSaved("");
    try {
      const d = client
        ? await jsonapi("PATCH", "/RegisteredClient/" + id, resourceDoc("RegisteredClient", attributes, id, client.version))
        // A first confidential client gets a generated secret (shown once): it cannot be launched without one.
        : await jsonapi("POST", "/RegisteredClient", resourceDoc("RegisteredClient",
          { ClientId: app.Identifier, ...attributes, ResetClientSecret: !attributes.AllowPublicTokenRequests && !attributes.ClientSecretHash }));
      setClient(attrs(d.data));
      if (d.data.meta && d.data.meta.client_secret) setSecret(d.data.meta.client_secret);
      setSaved("Saved: the next launch and token request use it.");
      return true;
    } catch (x) { setErr(x.message); return false; }
  };
  const save = async (e) => {
    e.preventDefault();
    const form = e.target;
    const f = new FormData(form);
    const n = (k) => Number(f.get(k));
    const ok = await write({ LaunchUrl: f.get("launch") || null, RedirectUris: lines(f.get("redirects")), AllowedOrigins: lines(f.get("origins")),
      AllowPublicTokenRequests: f.get("public") === "on", UseRefreshTokens: f.get("refresh") === "on",
      TokenExpiresIn: n("token"), AuthorizationCodeExpiresIn: n("code"), WebLaunchRequestExpiresIn: n("launchLife"),
      MobileActivationCodeExpiresIn: n("activation"), ...(f.get("secret") ? { ClientSecret: f.get("secret") } : {}),
      ...(f.get("secretHash") ? { ClientSecretHash: f.get("secretHash") } : {}) });
    if (ok) for (const name of ["secret", "secretHash"]) form.elements[name].value = ""; // secrets are not kept on the page
  };
  const file = app.ManagedBy === "config" || (client && client.ManagedBy === "config");
  const buildApp = (f) => ({ Name: f.get("name"), ApplicationRoles: f.getAll("roles"), MessageSettings: readSettings(f, "application") });
  // Uncontrolled fields (defaultValue): a failed save leaves what was typed.
  const num = (name, label, value) => html`<label>${label}<input name=${name} type="number" min="1" defaultValue=${value} /></label>`;
  return html`<p><a href="#/applications">← Applications</a></p>
    <h1>${app.Name || app.Identifier}</h1>
    <p><code>${app.Identifier}</code> · ${app.ApplicationRoles.join(", ") || "no roles"} · <${Managed} by=${app.ManagedBy} /></p>
    ${file && html`<p>This application is declared in the configuration file: change it there.</p>`}
    <h2>Application</h2>
    <form onSubmit=${form.save(buildApp)} aria-label="Application settings" noValidate>
      <fieldset disabled=${app.ManagedBy === "config"}>
        <div class="grid-form">
          <label>Name<input name="name" defaultValue=${app.Name} ...${invalid("err-name", form.errors.Name)} />
            <${FieldError} id="err-name" msg=${form.errors.Name} /></label>
        </div>
        <fieldset><legend>Roles</legend>${ROLES.map((r) => html`<label><input type="checkbox" name="roles" value=${r} defaultChecked=${app.ApplicationRoles.includes(r)} /> ${r}</label>`)}
          <${FieldError} id="err-roles" msg=${form.errors.ApplicationRoles} /></fieldset>
        <h3>Message settings</h3>
        <${MessageSettings} owner="application" settings=${app.MessageSettings} errors=${form.errors} />
        <button type="submit" aria-busy=${form.busy}>Save</button>
      </fieldset>
    </form>
    <${SaveStatus} form=${form} />
    <h2>OAuth client (launch)</h2>
    <form onSubmit=${save} aria-label="OAuth client settings">
      <fieldset disabled=${file}>
        <div class="grid-form">
          <label>Launch URL<input name="launch" type="url" defaultValue=${c.LaunchUrl} placeholder="https://module.example/launch" /></label>
          <label>Redirect URIs (one a line)<textarea name="redirects" rows="2" defaultValue=${c.RedirectUris.join("\n")}></textarea></label>
          <label>Allowed origins (CORS, one a line)<textarea name="origins" rows="2" defaultValue=${c.AllowedOrigins.join("\n")}></textarea></label>
          ${num("token", "Access token lifetime (s)", c.TokenExpiresIn)}
          ${num("code", "Authorization code lifetime (s)", c.AuthorizationCodeExpiresIn)}
          ${num("launchLife", "Web launch lifetime (s)", c.WebLaunchRequestExpiresIn)}
          ${num("activation", "Mobile activation code lifetime (days)", c.MobileActivationCodeExpiresIn)}
          <label>Client secret (empty: unchanged; or Reset client secret)<input name="secret" type="password" autocomplete="new-password" minlength="10" /></label>
          <label>Or a client secret hash made elsewhere (bcrypt, argon2id)<input name="secretHash" autocomplete="off" spellcheck="false" /></label>
        </div>
        <label><input type="checkbox" name="public" defaultChecked=${c.AllowPublicTokenRequests} /> Public client: token requests without a secret</label>
        <label><input type="checkbox" name="refresh" defaultChecked=${c.UseRefreshTokens} /> Refresh tokens</label>
        <button type="submit">Save</button>
      </fieldset>
    </form>
    ${!file && client && html`<button class="secondary" onClick=${() => write({ ResetClientSecret: true })}>Reset client secret</button>`}
    <p aria-live="polite">${saved}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    <${Secret} label="New client secret" value=${secret} />`;
}

const KINDS = ["Game", "ELearning", "Questionnaire", "Meeting", "MultipleActivityTemplate"];

// Activities lists the ActivityDefinitions in scope, creates one and (de)activates it; every change is published
// to the domain as CreateOrUpdateActivityDefinition.
export function Activities() {
  const [list, err, reload] = useList("ActivityDefinition");
  const [apps, appsErr] = useList("Application");
  const [domains, domainsErr] = useList("Domain");
  const [actErr, setActErr] = useState("");
  const create = async (f) => {
    await jsonapi("POST", "/ActivityDefinition", resourceDoc("ActivityDefinition", { Identifier: f.get("ident"), Name: f.get("name"),
      Application: f.get("application"), Domain: f.get("domain"), ActivityType: f.get("kind"), LaunchType: f.get("launch"),
      DefaultPerformer: f.get("performer"), Description: f.get("description"), IsDomainSpecific: f.get("domainSpecific") === "on" }));
    reload();
  };
  const change = async (d, attributes) => {
    setActErr("");
    try {
      await jsonapi("PATCH", "/ActivityDefinition/" + d.id, resourceDoc("ActivityDefinition", attributes, d.id, d.version));
      reload();
    } catch (x) { setActErr(x.message); }
  };
  const wait = loading("Activity definitions", err || appsErr || domainsErr, list, apps, domains);
  if (wait) return wait;
  const sel = (name, label, options) => html`<label>${label}<select name=${name}>${options.map((o) => html`<option>${o}</option>`)}</select></label>`;
  return html`<h1>Activity definitions</h1>
    ${(err || actErr) && html`<p role="alert" class="status-Failed">${err || actErr}</p>`}
    <div class="scroll"><table class="cards" id="activities"><thead><tr><th scope="col">Identifier</th><th scope="col">Name</th><th scope="col">Application</th>
      <th scope="col">Domain</th><th scope="col">Type</th><th scope="col">Launch</th><th scope="col">State</th><th scope="col">Managed by</th><th scope="col">Actions</th></tr></thead>
    <tbody>${list.map((d) => html`<tr data-identifier=${d.Identifier}>
      <td data-label="Identifier"><a href=${"#/activities/" + d.id}><code>${d.Identifier}</code></a></td><td data-label="Name">${d.Name}</td><td data-label="Application">${d.Application}</td>
      <td data-label="Domain">${d.Domain}</td><td data-label="Type">${d.ActivityType}</td><td data-label="Launch">${d.LaunchType}</td>
      <td data-label="State">${d.IsActive ? "active" : "inactive"}${d.IsArchived ? ", archived" : ""}${d.IsDomainSpecific ? ", this domain only" : ""}</td><td data-label="Managed by"><${Managed} by=${d.ManagedBy} /></td>
      <td data-label="">${d.ManagedBy !== "config" && html`<button class="secondary outline" onClick=${() => change(d, { IsActive: !d.IsActive })}>${d.IsActive ? "Deactivate" : "Activate"} ${d.Identifier}</button>
        <button class="secondary outline" onClick=${() => change(d, { IsArchived: !d.IsArchived })}>${d.IsArchived ? "Unarchive" : "Archive"} ${d.Identifier}</button>`}</td></tr>`)}
    </tbody></table></div>
    <${Form} title="New activity definition" onSubmit=${create}>
      <div class="grid-form">
        <label>Identifier<input name="ident" required maxlength="100" /></label>
        <label>Name<input name="name" required /></label>
        ${sel("application", "Application", apps.map((a) => a.Identifier))}
        ${sel("domain", "Domain", domains.map((d) => d.Name))}
        ${sel("kind", "Activity type", KINDS)}
        ${sel("launch", "Launch type", ["Web", "Mobile", "None"])}
        ${sel("performer", "Default performer", ["Patient", "Practitioner", "RelatedPerson"])}
        <label>Description<input name="description" /></label>
      </div>
      <label><input type="checkbox" name="domainSpecific" /> Domain-specific (otherwise in every domain the application has an instance in)</label>
    </${Form}>`;
}

// ActivityDetail edits one activity definition: its texts, type, performer, launch type, scope and
// sub-activities (the file's activity_definitions[] entry); the change is published to the domain.
export function ActivityDetail({ id }) {
  const [def, setDef] = useState(null);
  const [err, setErr] = useState("");
  const form = useSettingsForm("ActivityDefinition", id, def, setDef, "Saved: published to the domain as CreateOrUpdateActivityDefinition.");
  useEffect(() => { jsonapi("GET", "/ActivityDefinition/" + id).then((d) => setDef(attrs(d.data)), (x) => setErr(x.message)); }, [id]);
  if (err && !def) return html`<h1>Activity definition ${id}</h1><p role="alert">${err}</p>`;
  if (!def) return html`<h1>Activity definition ${id}</h1><p aria-busy="true">Loading…</p>`;
  const file = def.ManagedBy === "config";
  const subs = [...def.SubActivities, { Identifier: "", Name: "", Description: "", IsActive: true, added: true }];
  const build = (f) => ({ Name: f.get("name"), Description: f.get("description"), ActivityType: f.get("kind"),
    DefaultPerformer: f.get("performer"), LaunchType: f.get("launch"), IsDomainSpecific: f.get("domainSpecific") === "on",
    SubActivities: subs.map((_, i) => ({ Identifier: (f.get(`sub${i}.id`) || "").trim(), Name: f.get(`sub${i}.name`) || "",
      Description: f.get(`sub${i}.description`) || "", IsActive: f.get(`sub${i}.active`) === "on", remove: f.get(`sub${i}.remove`) === "on" }))
      .filter((s) => !s.remove && (s.Identifier || s.Name)).map(({ remove, ...s }) => s) });
  const sel = (name, label, options, value) => html`<label>${label}<select name=${name}>${options.map((o) => html`<option selected=${o === value}>${o}</option>`)}</select></label>`;
  const e = form.errors;
  return html`<p><a href="#/activities">← Activity definitions</a></p>
    <h1>${def.Name || def.Identifier}</h1>
    <p><code>${def.Identifier}</code> · ${def.Application} in ${def.Domain} · ${def.IsActive ? "active" : "inactive"}${def.IsArchived ? ", archived" : ""} · <${Managed} by=${def.ManagedBy} /></p>
    ${file && html`<p>This definition is declared in the configuration file: change it there.</p>`}
    <form onSubmit=${form.save(build)} aria-label="Activity definition" noValidate>
      <fieldset disabled=${file}>
        <div class="grid-form">
          <label>Name<input name="name" defaultValue=${def.Name} /></label>
          <label>Description<input name="description" defaultValue=${def.Description} /></label>
          ${sel("kind", "Activity type", KINDS, def.ActivityType)}
          ${sel("launch", "Launch type", ["Web", "Mobile", "None"], def.LaunchType)}
          ${sel("performer", "Default performer", ["Patient", "Practitioner", "RelatedPerson"], def.DefaultPerformer)}
        </div>
        <label><input type="checkbox" name="domainSpecific" defaultChecked=${def.IsDomainSpecific} /> Domain-specific (otherwise in every domain the application has an instance in)</label>
        <h2>Sub-activities</h2>
        ${subs.map((sa, i) => html`<fieldset class="sub" data-sub=${sa.added ? "new" : sa.Identifier}><legend>${sa.added ? "New sub-activity" : "Sub-activity " + sa.Identifier}</legend>
          <div class="grid-form">
            <label>Identifier<input name=${`sub${i}.id`} defaultValue=${sa.Identifier} /></label>
            <label>Name<input name=${`sub${i}.name`} defaultValue=${sa.Name} /></label>
            <label>Description<input name=${`sub${i}.description`} defaultValue=${sa.Description} /></label>
          </div>
          <label><input type="checkbox" name=${`sub${i}.active`} defaultChecked=${sa.IsActive} /> Active</label>
          ${!sa.added && html`<label><input type="checkbox" name=${`sub${i}.remove`} /> Remove</label>`}
        </fieldset>`)}
        ${Object.entries(e).map(([k, msg]) => html`<p class="field-error" role="alert">${k}: ${msg}</p>`)}
        <button type="submit" aria-busy=${form.busy}>Save</button>
      </fieldset>
    </form>
    <${SaveStatus} form=${form} />`;
}

// AdministratorDetail edits one account's name, e-mail, role and what it administers (the file's admin.users[]
// entry); a change of role or scope ends its sessions and API tokens at once.
export function AdministratorDetail({ id }) {
  const [u, setU] = useState(null);
  const [err, setErr] = useState("");
  const form = useSettingsForm("Administrator", id, u, setU, "Saved: the account's sessions and API tokens were ended if its role or scope changed.");
  useEffect(() => { jsonapi("GET", "/Administrator/" + id).then((d) => setU(attrs(d.data)), (x) => setErr(x.message)); }, [id]);
  if (err && !u) return html`<h1>Administrator ${id}</h1><p role="alert">${err}</p>`;
  if (!u) return html`<h1>Administrator ${id}</h1><p aria-busy="true">Loading…</p>`;
  const file = u.ManagedBy === "config";
  const build = (f) => {
    const role = f.get("role");
    return { Name: f.get("name"), Email: f.get("email"), Role: role,
      Domains: role === "domain" ? names(f.get("scope")) : [], Applications: role === "application" ? names(f.get("scope")) : [],
      ...(f.get("password") ? { Password: f.get("password") } : {}), ...(f.get("passwordHash") ? { PasswordHash: f.get("passwordHash") } : {}) };
  };
  const e = form.errors;
  const field = (name, attr, label, input) => html`<label>${label}${input}<${FieldError} id=${"err-" + name} msg=${e[attr]} /></label>`;
  return html`<p><a href="#/administrators">← Administrators</a></p>
    <h1>${u.Name || u.Username}</h1>
    <p><code>${u.Username}</code> · ${u.Disabled ? "disabled" : "enabled"} · <${Managed} by=${u.ManagedBy} /></p>
    ${file && html`<p>This account is declared in the configuration file: change it there.</p>`}
    <form onSubmit=${form.save(build)} aria-label="Administrator" noValidate>
      <fieldset disabled=${file}>
        <div class="grid-form">
          ${field("name", "Name", "Name", html`<input name="name" defaultValue=${u.Name} ...${invalid("err-name", e.Name)} />`)}
          ${field("email", "Email", "E-mail", html`<input name="email" type="email" defaultValue=${u.Email} ...${invalid("err-email", e.Email)} />`)}
          ${field("role", "Role", "Role", html`<select name="role" ...${invalid("err-role", e.Role)}>${["domain", "application", "system"].map((r) => html`<option selected=${u.Role === r}>${r}</option>`)}</select>`)}
          ${field("scope", u.Role === "application" ? "Applications" : "Domains", "Domains or applications (comma-separated)",
            html`<input name="scope" defaultValue=${[...u.Domains, ...u.Applications].join(", ")} ...${invalid("err-scope", e.Domains || e.Applications)} />`)}
          ${field("password", "Password", "New password (empty: unchanged)", html`<input name="password" type="password" autocomplete="new-password" ...${invalid("err-password", e.Password)} />`)}
          ${field("passwordHash", "PasswordHash", "Or a password hash made elsewhere (bcrypt, argon2id)",
            html`<input name="passwordHash" autocomplete="off" spellcheck="false" ...${invalid("err-passwordHash", e.PasswordHash)} />`)}
        </div>
        <button type="submit" aria-busy=${form.busy}>Save</button>
      </fieldset>
    </form>
    <${SaveStatus} form=${form} />`;
}
