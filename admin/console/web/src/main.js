// The Koppelpoort console: a small single-page app (Preact + htm) over the Support API.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { logout, session } from "./api.js";
import { Login } from "./login.js";
import { Dashboard } from "./dashboard.js";
import { Messages, MessageDetail } from "./messages.js";
import { HttpLog, HttpLogEntry } from "./httplog.js";
import { Domains, DomainDetail, Applications, ApplicationDetail, Instances, InstanceDetail, Administrators, Activities, ActivityDetail, AdministratorDetail } from "./provisioning.js";
import { TestPortal } from "./testportal.js";
import { Authorizations } from "./authorizations.js";
import { DeadLetters, DeadLetterDetail } from "./deadletters.js";

const pages = [
  ["#/", "Dashboard"],
  ["#/messages", "Messages"],
  ["#/httplog", "HTTP log"],
  ["#/deadletters", "Dead letters", "system"],
  ["#/instances", "Instances"],
  ["#/applications", "Applications"],
  ["#/domains", "Domains"],
  ["#/activities", "Activities"],
  ["#/administrators", "Administrators", "system"],
  ["#/authorizations", "Authorizations"],
  ["#/portal", "Test Portal"],
];

function parseHash() {
  const raw = location.hash || "#/";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function route(r, me) {
  const m = r.path.match(/^#\/(messages|instances|deadletters|httplog|applications|domains|activities|administrators)\/([^/]+)$/);
  if (m && m[1] === "messages") return html`<${MessageDetail} id=${m[2]} />`;
  if (m && m[1] === "httplog") return html`<${HttpLogEntry} id=${m[2]} />`;
  if (m && m[1] === "applications") return html`<${ApplicationDetail} id=${m[2]} />`;
  if (m && m[1] === "domains") return html`<${DomainDetail} id=${m[2]} />`;
  if (m && m[1] === "activities") return html`<${ActivityDetail} id=${m[2]} />`;
  if (m && m[1] === "administrators") return html`<${AdministratorDetail} id=${m[2]} />`;
  if (m && m[1] === "deadletters") return html`<${DeadLetterDetail} id=${decodeURIComponent(m[2])} />`;
  if (m && m[1] === "instances") return html`<${InstanceDetail} id=${m[2]} me=${me} />`;
  switch (r.path) {
    case "#/messages": return html`<${Messages} params=${r.params} />`;
    case "#/httplog": return html`<${HttpLog} params=${r.params} me=${me} />`;
    case "#/instances": return html`<${Instances} me=${me} />`;
    case "#/applications": return html`<${Applications} me=${me} />`;
    case "#/domains": return html`<${Domains} me=${me} />`;
    case "#/administrators": return html`<${Administrators} me=${me} />`;
    case "#/activities": return html`<${Activities} />`;
    case "#/deadletters": return html`<${DeadLetters} />`;
    case "#/authorizations": return html`<${Authorizations} />`;
    case "#/portal": return html`<${TestPortal} />`;
    default: return html`<${Dashboard} />`;
  }
}

function App() {
  const [me, setMe] = useState(undefined);
  const [r, setRoute] = useState(parseHash());
  const [menu, setMenu] = useState(false); // the page links on a phone-sized screen
  useEffect(() => {
    session().then(setMe, () => setMe(null));
    const onHash = () => { setRoute(parseHash()); setMenu(false); };
    const onOut = () => setMe(null);
    addEventListener("hashchange", onHash);
    addEventListener("kp-logged-out", onOut);
    return () => { removeEventListener("hashchange", onHash); removeEventListener("kp-logged-out", onOut); };
  }, []);
  useEffect(() => { // move focus to the page heading for keyboard and screen-reader users
    const h1 = document.querySelector("main h1");
    if (h1) { h1.setAttribute("tabindex", "-1"); h1.focus({ preventScroll: true }); }
  }, [r.path, !!me]); // and after logging in: the login form the focus was in is gone
  if (me === undefined) return html`<main class="container"><p aria-busy="true">Loading…</p></main>`;
  if (me === null) return html`<${Login} onLogin=${setMe} />`;
  const current = "#/" + (r.path.split("/")[1] || "");
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header class="top container">
      <nav aria-label="Main" onKeyDown=${(e) => { if (e.key === "Escape" && menu) { setMenu(false); document.getElementById("menu-toggle").focus(); } }}>
        <ul><li><strong>Koppelpoort</strong></li>
          <li class="menu-li"><button id="menu-toggle" class="secondary outline" aria-expanded=${menu ? "true" : "false"} aria-controls="nav-pages"
            onClick=${() => setMenu(!menu)}>Menu</button></li></ul>
        <ul id="nav-pages" class=${menu ? "open" : ""}>
          ${pages.filter(([, , role]) => !role || role === me.role).map(([href, label]) => html`<li><a href=${href} aria-current=${current === href ? "page" : undefined}>${label}</a></li>`)}
        </ul>
        <ul class="who">
          <li><small>${me.name || me.username} · ${me.role} administrator${me.domains.length ? " of " + me.domains.join(", ") : ""}${me.applications.length ? " of " + me.applications.join(", ") : ""}</small></li>
          <li><button class="secondary outline" onClick=${() => logout().finally(() => setMe(null))}>Log out</button></li>
        </ul>
      </nav>
    </header>
    <main id="main" class="container" tabindex="-1">${route(r, me)}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
