import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, filterQuery, jsonapi, when } from "./api.js";

const CLASSES = ["2xx", "3xx", "4xx", "5xx", "failed"];
const FIELDS = ["Caller", "Status", "Path", "RequestId", "From", "To"];

function toFilters(params) {
  const f = {};
  for (const k of FIELDS) f[k] = params.get(k) || "";
  return f;
}

function apiFilters(f) {
  const out = {};
  if (f.Caller) out.Caller = f.Caller;
  if (f.Status) out.Status = f.Status;
  if (f.Path) out["Path][startswith"] = f.Path;
  if (f.RequestId) out.RequestId = f.RequestId;
  if (f.From) out["At][ge"] = new Date(f.From).toISOString();
  if (f.To) out["At][lt"] = new Date(f.To).toISOString();
  return out;
}

const statusClass = (s) => (s >= 500 ? "status-Failed" : s >= 400 ? "status-Claimed" : "status-Success");
// readable shows a stored query as typed (it is stored URL-encoded).
const readable = (q) => { try { return decodeURIComponent(q.replace(/\+/g, " ")); } catch { return q; } };
const caller = (r) => (r.Caller ? `${r.Caller}${r.CallerKind && r.CallerKind !== "instance" ? " (" + r.CallerKind + ")" : ""}` : "—");

// HttpLog is the HTTP request log (the HttpLog resource): filter by time, caller, status class, path prefix and
// request id; newest first, "Older requests" pages by id; new requests are announced live (the page's own
// polling of the log is not counted).
export function HttpLog({ params, me }) {
  const [f, setF] = useState(toFilters(params));
  const [rows, setRows] = useState([]);
  const [more, setMore] = useState(false);
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false); // shown on the results, not the Search button: Pico makes a busy button ignore clicks
  const [fresh, setFresh] = useState(0);
  const newest = useRef(0);
  const latest = useRef(0);
  const mine = (r) => r.CallerKind === "admin" && r.Caller === me.username && r.Path.startsWith("/jsonapi/Koppeltaal/HttpLog");

  const load = async (filters, before) => {
    const n = ++latest.current;
    setBusy(true);
    setErr("");
    try {
      const q = apiFilters(filters);
      if (before) q["id][lt"] = before;
      const doc = await jsonapi("GET", "/HttpLog?" + filterQuery(q, { "page[size]": 25 }));
      if (n !== latest.current) return;
      const list = doc.data.map(attrs);
      setRows((old) => (before ? [...old, ...list] : list));
      setMore(!!(doc.links && doc.links.next));
      if (!before) { newest.current = list.length ? Math.max(...list.map((r) => Number(r.id))) : 0; setFresh(0); }
    } catch (x) {
      if (n === latest.current) setErr(x.message);
    } finally {
      if (n === latest.current) setBusy(false);
    }
  };
  useEffect(() => { if (latest.current === 0) load(f); }, []); // a search submitted before this effect ran (a slow machine) wins
  useEffect(() => {
    const t = setInterval(async () => {
      try {
        const doc = await jsonapi("GET", "/HttpLog?" + filterQuery(apiFilters(f), { "page[size]": 50 }));
        setFresh(doc.data.map(attrs).filter((r) => Number(r.id) > newest.current && !mine(r)).length);
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
    history.replaceState(null, "", "#/httplog" + (p.toString() ? "?" + p : ""));
    load(next);
  };
  const field = (name, label, type = "text", placeholder = "") => html`
    <label>${label}<input name=${name} type=${type} defaultValue=${f[name]} placeholder=${placeholder} /></label>`;
  return html`
    <h1>HTTP log</h1>
    <p>Every request the server answered but the health probes and metrics: method, path, query (secrets
      replaced), caller, status, duration and request id. Kept for <code>http_log.success_days</code>, failed ones
      for <code>failure_days</code>.</p>
    <form onSubmit=${submit} aria-label="Search the HTTP log">
      <div class="grid-form">
        ${field("Caller", "Caller (instance, OAuth client or administrator)")}
        <label>Status<select name="Status">
          <option value="">any</option>${CLASSES.map((c) => html`<option selected=${f.Status === c}>${c}</option>`)}
        </select></label>
        ${field("Path", "Path starts with", "text", "/FHIR/Koppeltaal/MessageHeader")}
        ${field("RequestId", "Request id")}
        ${field("From", "From", "datetime-local")}
        ${field("To", "Until", "datetime-local")}
      </div>
      <button type="submit">Search</button>
    </form>
    <p class="live" aria-live="polite">${fresh > 0 ? html`${fresh} new request${fresh > 1 ? "s" : ""} — <a href="#" onClick=${(e) => { e.preventDefault(); load(f); }}>show</a>` : "Watching for new requests…"}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    <div class="scroll" aria-busy=${busy}><table class="cards" id="httplog">
      <caption class="live">${rows.length} request${rows.length === 1 ? "" : "s"} shown, newest first</caption>
      <thead><tr><th scope="col">Time</th><th scope="col">Request</th><th scope="col" class="num">Status</th><th scope="col">Caller</th><th scope="col">Domain</th><th scope="col" class="num">ms</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr>
        <td data-label="Time"><a href=${"#/httplog/" + r.id}>${when(r.At)}</a></td>
        <td data-label="Request"><code>${r.Method} ${r.Path}${r.Query ? "?" + readable(r.Query) : ""}</code></td>
        <td data-label="Status" class="num"><span class=${statusClass(r.Status)}>${r.Status}</span></td>
        <td data-label="Caller">${caller(r)}</td><td data-label="Domain">${r.Domain}</td>
        <td data-label="ms" class="num">${r.DurationMs}</td></tr>`)}
      </tbody></table></div>
    ${more && html`<button class="secondary" onClick=${() => load(f, rows[rows.length - 1].id)}>Older requests</button>`}`;
}

// HttpLogEntry shows one request with the bodies kept (http_log.bodies, FHIR API only).
export function HttpLogEntry({ id }) {
  const [r, setR] = useState(null);
  const [err, setErr] = useState("");
  useEffect(() => { jsonapi("GET", "/HttpLog/" + id).then((d) => setR(attrs(d.data)), (x) => setErr(x.message)); }, [id]);
  if (err) return html`<h1>Request ${id}</h1><p role="alert">${err}</p>`;
  if (!r) return html`<h1>Request ${id}</h1><p aria-busy="true">Loading…</p>`;
  const body = (label, b) => html`<h2>${label}</h2>
    <pre class="body" tabindex="0" aria-label=${label}>${b || "(not kept: http_log.bodies is off, or not the FHIR API)"}</pre>`;
  return html`
    <p><a href="#/httplog">← HTTP log</a></p>
    <h1><code>${r.Method} ${r.Path}</code></h1>
    <dl class="grid-form">
      <div><dt>Status</dt><dd><span class=${statusClass(r.Status)}>${r.Status}</span></dd></div>
      <div><dt>Time</dt><dd>${when(r.At)}</dd></div>
      <div><dt>Duration</dt><dd>${r.DurationMs} ms</dd></div>
      <div><dt>Caller</dt><dd>${caller(r)}</dd></div>
      <div><dt>Domain</dt><dd>${r.Domain || "—"}</dd></div>
      <div><dt>Request id</dt><dd><code>${r.RequestId}</code></dd></div>
      <div><dt>Source address</dt><dd>${r.SourceIp}</dd></div>
      <div><dt>Query</dt><dd><code>${r.Query ? readable(r.Query) : "—"}</code></dd></div>
    </dl>
    ${body("Request body", r.RequestBody)}${body("Response body", r.ResponseBody)}`;
}
