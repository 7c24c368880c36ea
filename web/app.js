// The dashboard shell: sign-in, navigation, and a hash router (#/fleet, #/hosts/NAME, …).
import { ApiError, badge, clear, errorBox, h, loading, session, signIn, signOut } from "./lib.js";
import * as fleet from "./pages/fleet.js";
import * as host from "./pages/host.js";
import * as trust from "./pages/trust.js";
import * as policies from "./pages/policies.js";
import * as provisioning from "./pages/provisioning.js";
import * as certificates from "./pages/certificates.js";
import * as keys from "./pages/keys.js";
import * as audit from "./pages/audit.js";
import * as status from "./pages/status.js";

/** Navigation order; `match` picks the page for a route's first segment. */
const PAGES = [
  { id: "fleet", label: "Fleet", page: fleet },
  { id: "hosts", label: null, page: host, nav: "fleet" },
  { id: "trust", label: "Trust", page: trust },
  { id: "policies", label: "Policies", page: policies },
  { id: "provisioning", label: "Provisioning", page: provisioning },
  { id: "certificates", label: "Certificates", page: certificates },
  { id: "keys", label: "Key providers", page: keys },
  { id: "audit", label: "Audit log", page: audit },
  { id: "status", label: "Status", page: status },
];

const root = document.getElementById("app");

/** The page of the hash; without one, the status checklist while something is missing, else the fleet. */
async function route() {
  const [id, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const p = PAGES.find((x) => x.id === id) ?? (id === "" && (await status.needsAttention()) ? PAGES.find((x) => x.id === "status") : PAGES[0]);
  return { p, params: rest.map(decodeURIComponent) };
}

function signInView(message) {
  const input = h("input", { id: "token", type: "password", name: "token", autocomplete: "off", placeholder: "tpmtrust_…", required: true, spellcheck: "false" });
  const status = h("div", { class: "signin-msg" }, message ? errorBox(message) : null);
  const form = h(
    "form",
    {
      class: "signin card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        status.replaceChildren(loading());
        try {
          await signIn(input.value.trim());
          render();
        } catch (e) {
          status.replaceChildren(errorBox(e.status === 401 ? new ApiError(401, e.code, "this token is unknown or revoked") : e));
        }
      },
    },
    h("h1", {}, "tpmtrust"),
    h("p", {}, "Sign in with an admin or auditor API token (", h("code", {}, "tpmtrust admin token create --role auditor"), "). It is kept in this tab only."),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  clear(root, h("main", { class: "signin-wrap" }, form));
  input.focus();
}

async function render() {
  if (!session.token) return signInView();
  if (!session.role) {
    try {
      await signIn(session.token);
    } catch (e) {
      return signInView(e);
    }
  }
  let p, params;
  try {
    ({ p, params } = await route());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return signInView(e);
    }
    ({ p, params } = { p: PAGES[0], params: [] });
  }
  const current = p.nav ?? p.id;
  const nav = h(
    "nav",
    { "aria-label": "sections" },
    PAGES.filter((x) => x.label).map((x) => h("a", { href: `#/${x.id}`, class: x.id === current ? "active" : undefined, "aria-current": x.id === current ? "page" : undefined }, x.label)),
  );
  const main = h("main", { id: "main" }, loading());
  clear(
    root,
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/fleet" }, h("img", { src: "/ui/icon.svg", alt: "" }), "tpmtrust"),
      nav,
      h(
        "div",
        { class: "who" },
        badge(session.isAdmin ? "admin" : "auditor · read-only", session.role),
        h("button", { type: "button", class: "link", onclick: () => (signOut(), render()) }, "Sign out"),
      ),
    ),
    main,
  );
  try {
    await p.page.render(main, params);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return signInView(e);
    }
    clear(main, errorBox(e));
  }
}

window.addEventListener("hashchange", render);
render();
