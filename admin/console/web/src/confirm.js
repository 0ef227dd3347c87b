import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

// Confirm is a button that asks before it acts: the first press shows the question with "Yes" and "Cancel"
// (focus on "Cancel", so a second Enter does not confirm by accident); errors are shown in place.
export function Confirm({ label, question, confirmLabel = "Yes, " + label.toLowerCase(), onConfirm, disabled }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const cancel = useRef(null);
  useEffect(() => { if (asking && cancel.current) cancel.current.focus(); }, [asking]);
  const yes = async () => {
    setBusy(true);
    setErr("");
    try { await onConfirm(); setAsking(false); } catch (x) { setErr(x.message); } finally { setBusy(false); }
  };
  if (!asking) return html`<button class="secondary" disabled=${disabled} onClick=${() => setAsking(true)}>${label}</button>`;
  return html`<div role="alertdialog" aria-label=${question} class="confirm">
    <p>${question}</p>
    <div role="group">
      <button class="contrast" aria-busy=${busy} onClick=${yes}>${confirmLabel}</button>
      <button class="secondary outline" ref=${cancel} onClick=${() => setAsking(false)}>Cancel</button>
    </div>
    ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
  </div>`;
}
