// Calls to the Support API (/jsonapi/Koppeltaal), the session endpoint and the console's own endpoints.
// Unsafe requests carry the session's CSRF token.
export const BASE = "/jsonapi/Koppeltaal";
let csrf = "";

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => e.detail ? `${e.title}: ${e.detail}` : e.title).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

async function call(method, url, body, type = "application/vnd.api+json") {
  const headers = { Accept: type };
  if (body !== undefined) headers["Content-Type"] = type;
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(url, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 204) return null;
  let doc = null;
  try { doc = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    if (resp.status === 401) window.dispatchEvent(new Event("kp-logged-out"));
    throw new ApiError(resp.status, (doc && doc.errors) || [{ title: `HTTP ${resp.status}` }]);
  }
  return doc;
}

// jsonapi: GET/POST/PATCH/DELETE on the Support API; returns the document.
export const jsonapi = (method, path, body) => call(method, BASE + path, body);

// resourceDoc builds a POST/PATCH document.
export const resourceDoc = (type, attributes, id, version) => ({
  data: { type, ...(id ? { id } : {}), attributes, ...(version ? { meta: { version } } : {}) },
});

// consoleAPI: the console's own JSON endpoints (dashboard, Test Portal).
export const consoleAPI = (method, path, body) => call(method, "/console/api" + path, body, "application/json");

export async function session() {
  const s = await call("GET", "/admin/session", undefined, "application/json");
  csrf = s.csrf_token || "";
  return s;
}

export async function login(username, password) {
  const s = await call("POST", "/admin/session", { username, password }, "application/json");
  csrf = s.csrf_token || "";
  return s;
}

export const logout = () => call("DELETE", "/admin/session", undefined, "application/json");

// filterQuery turns {Attr: value} into filter[Attr]=value (empty values dropped).
export function filterQuery(filters, extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== "" && v != null) p.set(`filter[${k}]`, v);
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v != null) p.set(k, v);
  return p.toString().replace(/%5B/g, "[").replace(/%5D/g, "]");
}

export const attrs = (r) => ({ id: r.id, version: r.meta && r.meta.version, ...r.attributes });

export const EVENTS = ["CreateOrUpdatePatient", "CreateOrUpdatePractitioner", "CreateOrUpdateRelatedPerson",
  "CreateOrUpdateActivityDefinition", "CreateOrUpdateCarePlan", "UpdateCarePlanActivityStatus",
  "CreateOrUpdateCarePlanActivityResult", "CreateOrUpdateUserMessage"];
export const STATUSES = ["New", "Claimed", "Success", "Failed", "ReplacedByNewVersion", "MaximumRetriesExceeded"];

export const when = (s) => (s ? new Date(s).toLocaleString() : "");
