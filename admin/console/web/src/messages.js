import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, EVENTS, filterQuery, jsonapi, STATUSES, when } from "./api.js";

const FIELDS = ["Patient", "Event", "Identifier", "Sender", "Recipient", "Status", "Domain"];

// The search fields are uncontrolled (defaultValue): a re-render while the first page loads must not wipe what
// the administrator is typing.
function toFilters(params) {
  const f = {};
  for (const k of FIELDS) f[k] = params.get(k) || "";
  f.From = params.get("From") || "";
  f.To = params.get("To") || "";
  return f;
}

function apiFilters(f) {
  const out = {};
  for (const k of FIELDS) if (f[k]) out[k] = f[k];
  if (f.From) out["CreatedAt][ge"] = new Date(f.From).toISOString();
  if (f.To) out["CreatedAt][lt"] = new Date(f.To).toISOString();
  return out;
}

// describe names the filters a result is for: " — Patient: …, Event: …" ("" for none).
function describe(f) {
  if (!f) return "";
  const parts = Object.entries(f).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`);
  return parts.length ? " — " + parts.join(", ") : "";
}

export function Status({ s }) {
  return html`<span class=${"status-" + s}>${s}</span>`;
}

// Messages is the message browser: search by patient, event, sender, recipient, status, domain, date range
// and message identifier; newest first, "Older" pages by id; new messages are announced live.
export function Messages({ params }) {
  const [f, setF] = useState(toFilters(params));
  const [rows, setRows] = useState([]);
  const [more, setMore] = useState(false);
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false); // shown on the results, not the Search button: Pico makes a busy button ignore clicks
  const [fresh, setFresh] = useState(0);
  const [shownFor, setShownFor] = useState(null); // the filters the rows shown are the answer to
  const newest = useRef(0);
  const latest = useRef(0); // number of the last search started: only its answer is shown

  const load = async (filters, before) => {
    const mine = ++latest.current;
    setBusy(true);
    setErr("");
    try {
      const extra = { "page[size]": 25 };
      const q = apiFilters(filters);
      if (before) q["id][lt"] = before;
      const doc = await jsonapi("GET", "/Message?" + filterQuery(q, extra));
      if (mine !== latest.current) return; // a later search (a submit during the first load) wins
      const list = doc.data.map(attrs);
      setRows((old) => (before ? [...old, ...list] : list));
      setMore(!!(doc.links && doc.links.next));
      setShownFor(filters);
      if (!before) { newest.current = list.length ? Number(list[0].id) : 0; setFresh(0); }
    } catch (x) {
      if (mine === latest.current) setErr(x.message);
    } finally {
      if (mine === latest.current) setBusy(false);
    }
  };
  useEffect(() => { if (latest.current === 0) load(f); }, []); // a search submitted before this effect ran (a slow machine) wins
  // Live: every 5 s, count messages newer than the newest shown (same filters).
  useEffect(() => {
    const t = setInterval(async () => {
      try {
        const doc = await jsonapi("GET", "/Message?" + filterQuery(apiFilters(f), { "page[size]": 50 }));
        setFresh(doc.data.filter((r) => Number(r.id) > newest.current).length);
      } catch { /* shown on the next search */ }
    }, 5000);
    return () => clearInterval(t);
  }, [f]);

  const submit = (e) => {
    e.preventDefault();
    const next = {};
    for (const [k, v] of new FormData(e.target).entries()) next[k] = v.trim();
    setF(next);
    const p = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    history.replaceState(null, "", "#/messages" + (p.toString() ? "?" + p : ""));
    load(next);
  };
  const field = (name, label, type = "text", placeholder = "") => html`
    <label>${label}<input name=${name} type=${type} defaultValue=${f[name]} placeholder=${placeholder} /></label>`;
  const select = (name, label, options) => html`
    <label>${label}<select name=${name}>
      <option value="">any</option>${options.map((o) => html`<option selected=${f[name] === o}>${o}</option>`)}
    </select></label>`;
  return html`
    <h1>Messages</h1>
    <form onSubmit=${submit} aria-label="Search messages">
      <div class="grid-form">
        ${field("Patient", "Patient (reference)", "text", "https://epd.example/fhir/Patient/1")}
        ${select("Event", "Event", EVENTS)}
        ${select("Status", "Recipient status", STATUSES)}
        ${field("Sender", "Sender (username)")}
        ${field("Recipient", "Recipient (username)")}
        ${field("Domain", "Domain")}
        ${field("Identifier", "Message identifier")}
        ${field("From", "From", "datetime-local")}
        ${field("To", "Until", "datetime-local")}
      </div>
      <button type="submit">Search</button>
    </form>
    <p class="live" aria-live="polite">${fresh > 0 ? html`${fresh} new message${fresh > 1 ? "s" : ""} — <a href="#" onClick=${(e) => { e.preventDefault(); load(f); }}>show</a>` : "Watching for new messages…"}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    <div class="scroll" aria-busy=${busy}><table class="cards" id="messages">
      <caption class="live">${rows.length} message${rows.length === 1 ? "" : "s"} shown, newest first${describe(shownFor)}</caption>
      <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Domain</th><th scope="col">Sender</th><th scope="col">Patient</th><th scope="col">Recipients</th></tr></thead>
      <tbody>${rows.map((m) => html`<tr>
        <td data-label="Time"><a href=${"#/messages/" + m.id}>${when(m.CreatedAt)}</a></td>
        <td data-label="Event">${m.Event}</td><td data-label="Domain">${m.Domain}</td><td data-label="Sender">${m.Sender}</td><td data-label="Patient">${m.Patient}</td>
        <td data-label="Recipients">${m.Recipients.map((r) => html`<div>${r.Instance}: <${Status} s=${r.Status} /></div>`)}</td></tr>`)}
      </tbody></table></div>
    ${more && html`<button class="secondary" onClick=${() => load(f, rows[rows.length - 1].id)}>Older messages</button>`}`;
}

// MessageDetail shows one message: its metadata, each recipient's status history, the body in XML and JSON.
export function MessageDetail({ id }) {
  const [m, setM] = useState(null);
  const [err, setErr] = useState("");
  const [fmt, setFmt] = useState("json");
  const load = () => jsonapi("GET", "/Message/" + id).then((d) => setM(attrs(d.data)), (x) => setErr(x.message));
  useEffect(() => { load(); }, [id]); // each read is audited: no polling here
  if (err) return html`<h1>Message ${id}</h1><p role="alert">${err}</p>`;
  if (!m) return html`<h1>Message ${id}</h1><p aria-busy="true">Loading…</p>`;
  let body = fmt === "json" ? m.BodyJSON : m.BodyXML;
  if (fmt === "json" && body) { try { body = JSON.stringify(JSON.parse(body), null, 2); } catch { /* as stored */ } }
  return html`
    <p><a href="#/messages">← Messages</a> · <a href="#" onClick=${(e) => { e.preventDefault(); load(); }}>Refresh</a></p>
    <h1>${m.Event}</h1>
    <dl class="grid-form">
      <div><dt>Identifier</dt><dd><code>${m.Identifier}</code></dd></div>
      <div><dt>Domain</dt><dd>${m.Domain}</dd></div>
      <div><dt>Sender</dt><dd>${m.Sender}</dd></div>
      <div><dt>Received</dt><dd>${when(m.CreatedAt)}</dd></div>
      <div><dt>Patient</dt><dd>${m.Patient}</dd></div>
      <div><dt>Focal resource</dt><dd>${m.FocalResource}${m.FocalVersion && html` <small>(${m.FocalVersion})</small>`}</dd></div>
    </dl>
    <h2>Recipients</h2>
    <div class="scroll"><table>
      <thead><tr><th scope="col">Recipient</th><th scope="col">Status</th><th scope="col">History</th><th scope="col" class="num">Claims</th><th scope="col">Exception</th></tr></thead>
      <tbody>${m.Recipients.map((r) => html`<tr>
        <td>${r.Instance} <small>(${r.Application})</small></td><td><${Status} s=${r.Status} /></td>
        <td><ol>${(r.History || []).map((x) => html`<li><${Status} s=${x.Status} /> ${when(x.At)}</li>`)}</ol></td>
        <td class="num">${r.RetryCount}</td><td>${r.Exception}</td></tr>`)}
      </tbody></table></div>
    <h2>Body</h2>
    <div role="group" aria-label="Body format">
      <button aria-pressed=${fmt === "json"} class=${fmt === "json" ? "" : "outline"} onClick=${() => setFmt("json")}>JSON</button>
      <button aria-pressed=${fmt === "xml"} class=${fmt === "xml" ? "" : "outline"} onClick=${() => setFmt("xml")}>XML</button>
    </div>
    ${m.BodyError && html`<p role="alert">${m.BodyError}</p>`}
    <pre class="body" tabindex="0" aria-label=${"Message body in " + fmt.toUpperCase()}>${body || "(no body: removed by retention)"}</pre>`;
}
