import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { html } from "./html.js";
import { consoleAPI, when } from "./api.js";

// Chart is a small uPlot line chart of per-minute series.
function Chart({ label, minutes, series }) {
  const ref = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = ref.current;
    const width = Math.max(260, el.clientWidth || 600);
    const opts = {
      width, height: 180, title: label,
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: false } }))],
      axes: [{}, { size: 40 }],
      scales: { x: { time: true } },
    };
    const data = [minutes, ...series.map((s) => s.values)];
    if (plot.current) plot.current.destroy();
    plot.current = new uPlot(opts, data, el);
    return () => { if (plot.current) { plot.current.destroy(); plot.current = null; } };
  }, [JSON.stringify([minutes, series])]);
  const total = series.map((s) => `${s.label} ${s.values.reduce((a, b) => a + b, 0)}`).join(", ");
  return html`<figure><div class="chart" ref=${ref} role="img" aria-label=${`${label} per minute, last 30 minutes: ${total}`}></div></figure>`;
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

// Dashboard shows, per domain and instance, the queue depth by status, messages posted, received, claimed and
// failed per minute, webhook health and the gateway's routes; refreshed every 5 s. Every number is what the
// server recorded (messages, queue entries, the audit trail's claims and acknowledgements, route tables).
export function Dashboard() {
  const [d, setD] = useState(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    const load = () => consoleAPI("GET", "/dashboard").then((x) => { setD(x); setErr(""); }, (x) => setErr(x.message));
    load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, []);
  if (!d) return html`<h1>Dashboard</h1>${err ? html`<p role="alert">${err}</p>` : html`<p aria-busy="true">Loading…</p>`}`;
  return html`<h1>Dashboard</h1>
    <p class="live" aria-live="polite">Updated ${when(d.generated)}${err && html` — <span role="alert">${err}</span>`}</p>
    ${(d.domains || []).map((dom) => html`<article>
      <header><h2>Domain ${dom.name} <small class="badge">${dom.phase}</small></h2></header>
      <${Chart} label="Messages in the domain" minutes=${d.minutes} series=${[
        { label: "posted", color: "#1f6feb", values: dom.posted },
        { label: "claimed", color: "#1a7f37", values: d.minutes.map((_, i) => sum(dom.instances.map((x) => x.claimed[i]))) },
        { label: "failed", color: "#cf222e", values: d.minutes.map((_, i) => sum(dom.instances.map((x) => x.failed[i]))) }]} />
      <div class="scroll"><table>
        <caption class="live">Queue depth now; messages received, claims and Failed acknowledgements (of any message) in the last 30 minutes, per application instance</caption>
        <thead><tr><th scope="col">Instance</th><th scope="col" class="num">New</th><th scope="col" class="num">Claimed</th>
          <th scope="col" class="num">Failed</th><th scope="col" class="num">Max. retries</th>
          <th scope="col" class="num">Received</th><th scope="col" class="num">Claims</th><th scope="col" class="num">Failures</th><th scope="col">Webhook</th></tr></thead>
        <tbody>${dom.instances.map((i) => html`<tr>
          <td><a href=${"#/instances/" + i.id}>${i.username}</a> <small>${i.application}</small>${!i.active && html` <span class="badge">inactive</span>`}</td>
          <td class="num">${i.queue.New}</td><td class="num">${i.queue.Claimed}</td>
          <td class="num status-${i.queue.Failed ? "Failed" : ""}">${i.queue.Failed}</td><td class="num status-${i.queue.MaximumRetriesExceeded ? "Failed" : ""}">${i.queue.MaximumRetriesExceeded}</td>
          <td class="num">${sum(i.received)}</td><td class="num">${sum(i.claimed)}</td><td class="num">${sum(i.failed)}</td>
          <td>${i.webhook ? html`${i.webhook.failed ? html`<span class="status-Failed">${i.webhook.failed} failed</span>` : "healthy"}${i.webhook.pending ? `, ${i.webhook.pending} pending` : ""}
            ${i.webhook.last_error && html`<br /><small>${when(i.webhook.last_error_at)}: ${i.webhook.last_error}</small>`}` : html`<small>none</small>`}</td>
        </tr>`)}</tbody></table></div>
    </article>`)}
    ${d.routes && d.routes.length > 0 && html`<article><header><h2>Gateway routes</h2></header>
      <div class="scroll"><table id="routes"><caption class="live">Waiting dead letters, the last one's reason and open deliveries from the store (every server
        sharing it); in, delivered, dropped and retries counted by this server since it started</caption>
        <thead><tr><th scope="col">Route</th><th scope="col" class="num">Dead letters waiting</th><th scope="col">Last error</th>
          <th scope="col" class="num">Open deliveries</th><th scope="col" class="num">Retrying</th>
          <th scope="col" class="num">In</th><th scope="col" class="num">Delivered</th><th scope="col" class="num">Dropped</th><th scope="col" class="num">Retries</th></tr></thead>
        <tbody>${d.routes.map((r) => html`<tr data-route=${r.route}><td>${r.route}</td>
          <td class="num">${r.waiting ? html`<a class="status-Failed" href="#/deadletters">${r.waiting}</a>` : 0}</td>
          <td>${r.last_error && html`<small>${when(r.last_error_at)}: ${r.last_error}</small>`}</td>
          <td class="num">${r.pending}</td><td class="num">${r.retrying}</td>
          <td class="num">${r.in}</td><td class="num">${r.delivered}</td><td class="num">${r.dropped}</td><td class="num">${r.retries}</td></tr>`)}</tbody>
      </table></div></article>`}`;
}
