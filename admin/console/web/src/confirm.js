import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

// Confirm is a button that asks before it acts: the first press shows the question with "Yes" and "Cancel"
// (focus on "Cancel", so a second Enter does not confirm by accident); errors are shown in place. With
// prepare, the question is what prepare answers (a count, say), asked after it ran; "" means nothing to do.
export function Confirm({ label, question, prepare, confirmLabel = "Yes, " + label.toLowerCase(), onConfirm, disabled }) {
  const [asking, setAsking] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const cancel = useRef(null);
  useEffect(() => { if (asking && cancel.current) cancel.current.focus(); }, [asking]);
  const run = async (fn) => {
    setBusy(true);
    setErr("");
    try { return await fn(); } catch (x) { setErr(x.message); return undefined; } finally { setBusy(false); }
  };
  const ask = () => run(async () => {
    const q = prepare ? await prepare() : question;
    if (q) setAsking(q);
    else setErr("Nothing to do.");
  });
  const yes = () => run(async () => { await onConfirm(); setAsking(""); });
  if (!asking) return html`<span><button class="secondary" aria-busy=${busy} disabled=${disabled} onClick=${ask}>${label}</button>
    ${err && html`<small role="alert" class="status-Failed"> ${err}</small>`}</span>`;
  return html`<div role="alertdialog" aria-label=${asking} class="confirm">
    <p>${asking}</p>
    <div role="group">
      <button class="contrast" aria-busy=${busy} onClick=${yes}>${confirmLabel}</button>
      <button class="secondary outline" ref=${cancel} onClick=${() => setAsking("")}>Cancel</button>
    </div>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
  </div>`;
}
