import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";
import { attrs, filterQuery, jsonapi, resourceDoc, when } from "./api.js";
import { Confirm } from "./confirm.js";

const short = (s, n = 140) => (s && s.length > n ? s.slice(0, n - 1) + "…" : s);

// useReplay: a dry run counts what a selection would replay (the question to confirm), then the replay sends
// exactly the dead letters counted (by id), so what runs is what the administrator agreed to.
function useReplay(selection, onDone) {
  const counted = useRef([]);
  const prepare = async () => {
    const d = await jsonapi("POST", "/DeadLetterReplay", resourceDoc("DeadLetterReplay", { ...selection, DryRun: true }));
    const r = d.data.attributes;
    counted.current = r.Ids;
    if (!r.Count) return "";
    const routes = Object.entries(r.Routes).map(([k, v]) => `${k}: ${v}`).join(", ");
    return `Replay ${r.Count} dead letter${r.Count === 1 ? "" : "s"} (${routes}) through ${r.Count === 1 ? "its route" : "their routes"} as they are now?`;
  };
  const confirm = async () => {
    const d = await jsonapi("POST", "/DeadLetterReplay", resourceDoc("DeadLetterReplay", { Ids: counted.current }));
    onDone(d.data.attributes.Count, d.data.attributes.Waiting);
  };
  return [prepare, confirm];
}

// DeadLetters lists what the gateway's routes parked (route, stage, reason, route revision, time) and replays
// them: all waiting ones, or those of one route; each counted first and confirmed.
export function DeadLetters() {
  const [rows, setRows] = useState(null);
  const [route, setRoute] = useState("");
  const [replayed, setReplayed] = useState(false);
  const [err, setErr] = useState("");
  const [done, setDone] = useState("");
  const load = () => {
    const f = replayed ? {} : { Replayed: "false" };
    if (route) f.Route = route;
    return jsonapi("GET", "/DeadLetter?" + filterQuery(f, { "page[size]": 500 })).then((d) => { setRows(d.data.map(attrs)); setErr(""); }, (x) => setErr(x.message));
  };
  useEffect(() => { load(); }, [route, replayed]);
  const selection = route ? { Route: route } : { All: true };
  const [prepare, confirm] = useReplay(selection, (n, waiting) => {
    setDone(waiting ? `Replay of ${n} dead letter${n === 1 ? "" : "s"} requested: the server running the routes has not taken it yet; it runs when it can.`
      : `${n} dead letter${n === 1 ? "" : "s"} replayed: ${n === 1 ? "it runs" : "they run"} through the route again.`);
    load();
  });
  const routes = [...new Set((rows || []).map((d) => d.Route))].sort();
  const waiting = (rows || []).filter((d) => !d.Replayed).length;
  return html`<h1>Dead letters</h1>
    <p>Records and deliveries the gateway's routes parked for a person to look at. A replay sends them through their
      route as it is now (fix the route first); replayed ones are kept, marked with the time.</p>
    <div class="grid-form">
      <label>Route<select value=${route} onChange=${(e) => setRoute(e.target.value)}>
        <option value="">all routes</option>${[...new Set([...routes, route].filter(Boolean))].map((r) => html`<option selected=${r === route}>${r}</option>`)}</select></label>
      <label class="check"><input type="checkbox" checked=${replayed} onChange=${(e) => setReplayed(e.target.checked)} /> Show replayed ones too</label>
    </div>
    <p class="live" role="status">${done}</p>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
    ${rows === null ? (!err && html`<p aria-busy="true">Loading…</p>`) : html`
      <${Confirm} label=${route ? `Replay the dead letters of ${route}` : "Replay all dead letters"} prepare=${prepare}
        confirmLabel="Yes, replay" onConfirm=${confirm} disabled=${waiting === 0} />
      <div class="scroll"><table id="dead-letters" class="cards">
        <caption class="live">${rows.length} dead letter${rows.length === 1 ? "" : "s"}${replayed ? "" : " waiting"}, newest first</caption>
        <thead><tr><th scope="col">Time</th><th scope="col">Route</th><th scope="col">Stage</th><th scope="col">Reason</th>
          <th scope="col">Revision</th><th scope="col" class="num">Attempts</th><th scope="col">Replayed</th></tr></thead>
        <tbody>${rows.map((d) => html`<tr data-id=${d.id}>
          <td data-label="Time"><a href=${"#/deadletters/" + encodeURIComponent(d.id)}>${when(d.CreatedAt)}</a></td><td data-label="Route">${d.Route}</td>
          <td data-label="Stage">${d.Stage}${d.Output && html` <small>(${d.Output})</small>`}</td><td data-label="Reason">${short(d.Reason)}</td>
          <td data-label="Revision"><code>${(d.Revision || "").slice(0, 12)}</code></td><td data-label="Attempts" class="num">${d.Attempts}</td><td data-label="Replayed">${d.Replayed ? when(d.ReplayedAt) : ""}</td></tr>`)}
        </tbody></table></div>`}`;
}

// DeadLetterDetail shows one dead letter in full: reason, stage, route revision, the input record and the
// attempts as the runtime records them; it can be replayed on its own.
export function DeadLetterDetail({ id }) {
  const [d, setD] = useState(null);
  const [err, setErr] = useState("");
  const [done, setDone] = useState("");
  const load = () => jsonapi("GET", "/DeadLetter/" + encodeURIComponent(id)).then((x) => setD(attrs(x.data)), (x) => setErr(x.message));
  useEffect(() => { load(); }, [id]); // each read is audited: no polling
  const [prepare, confirm] = useReplay({ Ids: [id] }, (_, waiting) => {
    setDone(waiting ? "Replay requested: the server running the routes has not taken it yet." : "Replayed: it runs through the route again.");
    load();
  });
  if (err) return html`<h1>Dead letter</h1><p role="alert">${err}</p>`;
  if (!d) return html`<h1>Dead letter</h1><p aria-busy="true">Loading…</p>`;
  const del = d.Delivery;
  return html`<p><a href="#/deadletters">← Dead letters</a></p>
    <h1>Dead letter of ${d.Route}</h1>
    <dl class="grid-form">
      <div><dt>Stage</dt><dd>${d.Stage}${d.Output && ` (output ${d.Output})`}</dd></div>
      <div><dt>Route revision</dt><dd><code>${d.Revision}</code></dd></div>
      <div><dt>Parked</dt><dd>${when(d.CreatedAt)}</dd></div>
      <div><dt>Record key</dt><dd><code>${d.RecordKey}</code></dd></div>
      <div><dt>Replayed</dt><dd>${d.Replayed ? when(d.ReplayedAt) : "not yet"}</dd></div>
    </dl>
    <h2>Reason</h2><pre class="body" tabindex="0">${d.Reason}</pre>
    <h2>Attempts</h2>
    ${del ? html`<dl class="grid-form">
        <div><dt>Attempts</dt><dd>${del.Attempts}</dd></div><div><dt>Queued</dt><dd>${when(del.QueuedAt)}</dd></div>
        <div><dt>Last attempt</dt><dd>${when(del.LastAttemptAt)}</dd></div><div><dt>Delivery status</dt><dd>${del.Status}</dd></div>
        <div><dt>Last error</dt><dd>${del.LastError}</dd></div></dl>`
      : html`<p>${d.Attempts} attempt${d.Attempts === 1 ? "" : "s"}${d.Stage === "rules" ? " (the route's rules parked the record)" : ""}; the runtime keeps the count and the last error (above).</p>`}
    <h2>Input record</h2>
    <pre class="body" tabindex="0" aria-label="Input record (JSON)">${JSON.stringify(d.Record, null, 2)}</pre>
    <p class="live" role="status">${done}</p>
    ${!d.Replayed && html`<${Confirm} label="Replay" prepare=${prepare} confirmLabel="Yes, replay" onConfirm=${confirm} />`}`;
}
