// Dashboard helpers: the API client (bearer token from sessionStorage), the session, and DOM
// builders. Every value from the API reaches the page as text nodes, never as HTML.

const TOKEN_KEY = "tpmtrust.token";

/** The signed-in session: token, role, and the API paths this server has (from /openapi.json). */
export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  role: null,
  tokenId: null,
  /** "GET /v1/hosts/{name}" … */
  operations: new Set(),
  get isAdmin() {
    return this.role === "admin";
  },
};

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

/** Calls the JSON API. Errors are the service's problem+json as ApiError (network failures: ERR_UNREACHABLE). */
export async function api(method, path, body) {
  return (await call(method, path, body)).json;
}

/**
 * One page of a list route: its items, the next page's path (from the Link header), the total
 * (X-Total-Count) and the ETag; with `etag` given, null when the page has not changed (304).
 */
export async function apiPage(path, etag) {
  const r = await call("GET", path, undefined, etag ? { "if-none-match": etag } : {});
  if (r.status === 304) return null;
  const next = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get("link") ?? "")?.[1] ?? null;
  const total = r.headers.get("x-total-count");
  return { items: r.json, next, total: total === null ? null : Number(total), etag: r.headers.get("etag") };
}

async function call(method, path, body, extra = {}) {
  const headers = { accept: "application/json", ...extra };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "ERR_UNREACHABLE", `the service did not answer (${e.message}); is tpmtrust serve running?`);
  }
  if (res.status === 204 || res.status === 304) return { status: res.status, headers: res.headers, json: null };
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new ApiError(res.status, json?.code ?? `HTTP_${res.status}`, json?.detail ?? (text.slice(0, 200) || res.statusText));
  return { status: res.status, headers: res.headers, json };
}

export async function signIn(token) {
  session.token = token;
  try {
    const me = await api("GET", "/v1/whoami");
    session.role = me.role;
    session.tokenId = me.tokenId;
    const doc = await api("GET", "/openapi.json");
    session.operations = new Set();
    for (const [path, ops] of Object.entries(doc.paths ?? {})) for (const m of Object.keys(ops)) session.operations.add(`${m.toUpperCase()} ${path}`);
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (e) {
    signOut();
    throw e;
  }
}

export function signOut() {
  session.token = null;
  session.role = null;
  session.tokenId = null;
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Does this server have the operation, e.g. has("GET /v1/trust/allowlist")? */
export const has = (op) => session.operations.has(op);

// ---- DOM

/** h("a", {href, class, onclick}, "text", child…): strings become text nodes. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Epoch ms from the API's epoch-ms numbers or ISO-8601 strings. */
const toMs = (v) => (typeof v === "string" ? Date.parse(v) : v);

export function fmtTime(t) {
  const ms = toMs(t);
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "never";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function ago(t, now = Date.now()) {
  const ms = toMs(t);
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "never";
  const s = Math.round((now - ms) / 1000);
  const abs = Math.abs(s);
  const [n, u] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"] : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return s >= 0 ? `${n} ${u} ago` : `in ${n} ${u}`;
}

/** A time cell: relative, with the exact UTC time as its tooltip. */
export const timeCell = (t) => h("time", { title: fmtTime(t), datetime: t ? new Date(toMs(t)).toISOString() : undefined }, ago(t));

export function short(hex, n = 16) {
  if (typeof hex !== "string") return "";
  return hex.length > n ? h("span", { class: "mono", title: hex }, `${hex.slice(0, n)}…`) : h("span", { class: "mono" }, hex);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

/** A table; columns: [{label, cell(row) → node|string, class?}]. */
export function table(columns, rows, opts = {}) {
  if (rows.length === 0) return h("p", { class: "empty" }, opts.empty ?? "Nothing here yet.");
  const t = h(
    "table",
    { class: "grid", "aria-label": opts.label },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          { class: opts.onRowClick ? "clickable" : undefined, tabindex: opts.onRowClick ? "0" : undefined, onclick: opts.onRowClick ? () => opts.onRowClick(r) : undefined, dataset: opts.rowKey ? { key: opts.rowKey(r) } : undefined },
          columns.map((c) => h("td", { class: c.class }, c.cell(r))),
        ),
      ),
    ),
  );
  return h("div", { class: "scroll" }, t);
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function errorBox(e) {
  const code = e instanceof ApiError ? e.code : "ERR_INTERNAL";
  return h("div", { class: "error", role: "alert" }, h("strong", {}, code), " ", e.message);
}

/** The state of a page whose API this server does not have (yet). */
export function notAvailable(what, hint) {
  return h("div", { class: "unavailable", role: "status" }, h("strong", {}, `${what}: not available on this server.`), " ", hint ?? "This version of tpmtrust serves no API for it yet.");
}

export function loading() {
  return h("p", { class: "loading" }, "Loading…");
}

/** A button that runs an async action, shows its error next to it and then calls done(). */
export function actionButton(label, run, opts = {}) {
  const msg = h("span", { class: "action-msg", role: "status" });
  const btn = h("button", {
    type: "button",
    class: opts.danger ? "danger" : undefined,
    onclick: async () => {
      if (opts.confirm && !window.confirm(opts.confirm)) return;
      btn.disabled = true;
      msg.textContent = "";
      try {
        await run();
        opts.done?.();
      } catch (e) {
        msg.replaceChildren(errorBox(e));
      } finally {
        btn.disabled = false;
      }
    },
  }, label);
  return h("span", { class: "action" }, btn, msg);
}

/** An inline form whose submit runs `submit`; its message (a string it returns) or error shows beside it. */
export function writeForm(submit, fields, label) {
  const msg = h("span", { role: "status" });
  return h(
    "form",
    {
      class: "inline",
      onsubmit: async (ev) => {
        ev.preventDefault();
        msg.textContent = "";
        try {
          const text = await submit();
          if (text) msg.textContent = text;
        } catch (e) {
          msg.replaceChildren(errorBox(e));
        }
      },
    },
    fields,
    h("button", { type: "submit" }, label),
    msg,
  );
}

export function json(v) {
  return h("pre", { class: "json" }, JSON.stringify(v, null, 2));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}
