import { useState } from "preact/hooks";
import { html } from "./html.js";
import { login } from "./api.js";

export function Login({ onLogin }) {
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    setBusy(true);
    setErr("");
    try {
      onLogin(await login(f.get("username"), f.get("password")));
    } catch (x) {
      setErr(x.status === 401 ? "Wrong user name or password." : x.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="container" id="main">
    <article style="max-width: 28rem; margin: 4rem auto">
      <h1>Koppelpoort console</h1>
      <form onSubmit=${submit}>
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required autofocus />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        ${err && html`<p role="alert" class="status-Failed">${err}</p>`}
        <button type="submit" aria-busy=${busy}>Log in</button>
      </form>
    </article>
  </main>`;
}
