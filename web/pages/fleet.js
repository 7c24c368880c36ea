// Fleet overview: hosts by health, failure reasons, and the hosts a page at a time. Counting,
// filtering, sorting and paging happen in the service, so the page is as quick with 100,000 hosts
// as with 10; it refreshes itself every REFRESH_MS, and the service answers 304 when nothing changed.
import { api, apiPage, badge, clear, errorBox, h, has, notAvailable, section, table, timeCell } from "../lib.js";

const HEALTH = ["healthy", "unhealthy", "unknown"];
const PAGE = 100;
const REFRESH_MS = 15_000;
const ORDERS = [
  ["name", "Name"],
  ["-lastAttestationAt", "Last attestation, newest first"],
  ["lastAttestationAt", "Last attestation, oldest first"],
  ["health", "Health"],
  ["hardwareClass", "Hardware class"],
];

export async function render(main) {
  if (!has("GET /v1/hosts")) return clear(main, h("h1", {}, "Fleet"), notAvailable("Hosts"));
  const hasSummary = has("GET /v1/hosts/summary");
  const view = { health: null, text: "", order: "name", pages: [null], at: 0 };
  let summary = null;
  let hostsPage = null;
  let drawn = 0; // requests answer out of order: only the newest may draw

  const tiles = h("div", { class: "tiles" });
  const reasons = h("div");
  const list = h("div", { "data-state": "loading" });

  const path = () => {
    const q = new URLSearchParams({ limit: String(PAGE), order: view.order });
    if (view.health) q.set("health", view.health);
    if (view.text) q.set("q", view.text);
    return view.pages[view.at] ?? `/v1/hosts?${q}`;
  };
  const show = (health) => {
    view.health = health;
    view.pages = [null];
    view.at = 0;
    load();
  };

  const drawTiles = () => {
    if (!summary) return;
    clear(
      tiles,
      h("button", { type: "button", class: `tile${view.health === null ? " selected" : ""}`, onclick: () => show(null) }, h("span", { class: "n" }, String(summary.total)), h("span", {}, "hosts")),
      HEALTH.map((k) =>
        h(
          "button",
          { type: "button", class: `tile tile-${k}${view.health === k ? " selected" : ""}`, "aria-pressed": String(view.health === k), onclick: () => show(view.health === k ? null : k) },
          h("span", { class: "n", dataset: { health: k } }, String(summary.byHealth[k])),
          h("span", {}, k),
        ),
      ),
    );
    clear(
      reasons,
      summary.unhealthyReasons.length === 0
        ? h("p", { class: "empty" }, "No unhealthy hosts.")
        : table(
            [
              { label: "Reason", cell: (r) => h("code", {}, r.reason ?? "(none)") },
              { label: "Hosts", cell: (r) => String(r.count), class: "num" },
              { label: "Examples", cell: (r) => r.examples.map((n, i) => [i ? ", " : "", h("a", { href: `#/hosts/${encodeURIComponent(n)}` }, n)]) },
            ],
            summary.unhealthyReasons,
            { label: "failure reasons" },
          ),
    );
  };

  const drawList = () => {
    const p = hostsPage;
    const first = view.at * PAGE;
    clear(
      list,
      table(
        [
          { label: "Host", cell: (x) => h("a", { href: `#/hosts/${encodeURIComponent(x.name)}` }, x.name) },
          { label: "Hardware class", cell: (x) => x.hardwareClass },
          { label: "Health", cell: (x) => badge(x.health) },
          { label: "Reason", cell: (x) => (x.healthReason ? h("code", {}, x.healthReason) : "") },
          { label: "Last attestation", cell: (x) => timeCell(x.lastAttestationAt) },
          { label: "EK trust", cell: (x) => x.trustMethod ?? "—" },
          { label: "AKs", cell: (x) => String(x.aks?.length ?? 0), class: "num" },
        ],
        p.items,
        {
          label: "hosts",
          empty: summary?.total === 0 || (!summary && !view.health && !view.text) ? "No hosts registered yet: tpmtrust agent identify > host.json; tpmtrust hosts add host.json --name NAME --class CLASS" : "No host matches.",
          rowKey: (x) => x.name,
        },
      ),
      p.items.length
        ? h(
            "nav",
            { class: "pager", "aria-label": "host pages" },
            h("button", { type: "button", disabled: view.at === 0 || undefined, onclick: () => ((view.at -= 1), load()) }, "Previous page"),
            h("span", { class: "muted" }, `${first + 1}–${first + p.items.length}${p.total === null ? "" : ` of ${p.total}`}`),
            h("button", { type: "button", disabled: !p.next || undefined, onclick: () => ((view.pages[view.at + 1] = p.next), (view.at += 1), load()) }, "Next page"),
          )
        : null,
    );
    list.dataset.state = "ready";
  };

  /** Fetches the summary and the current page (with `refresh`, only what changed since) and draws them. */
  async function load(refresh = false) {
    const n = ++drawn;
    if (!refresh) list.dataset.state = "loading";
    try {
      const [s, p] = await Promise.all([
        hasSummary ? api("GET", "/v1/hosts/summary") : null,
        apiPage(path(), refresh ? hostsPage?.etag : undefined),
      ]);
      if (n !== drawn) return;
      summary = s;
      drawTiles();
      if (p) {
        hostsPage = p;
        drawList();
      }
    } catch (e) {
      if (n === drawn) clear(list, errorBox(e));
    }
  }

  let typing;
  clear(
    main,
    h("h1", {}, "Fleet"),
    tiles,
    section("Failure reasons", reasons),
    section(
      "Hosts",
      h(
        "div",
        { class: "toolbar" },
        h("input", {
          type: "search",
          placeholder: "Filter by name or class",
          "aria-label": "filter hosts",
          oninput: (e) => {
            clearTimeout(typing);
            list.dataset.state = "loading";
            typing = setTimeout(() => ((view.text = e.target.value.trim()), (view.pages = [null]), (view.at = 0), load()), 150);
          },
        }),
        h(
          "select",
          { "aria-label": "sort hosts", onchange: (e) => ((view.order = e.target.value), (view.pages = [null]), (view.at = 0), load()) },
          ORDERS.map(([v, label]) => h("option", { value: v }, label)),
        ),
      ),
      list,
    ),
  );
  await load();
  const timer = setInterval(() => (main.isConnected && main.contains(list) ? load(true) : clearInterval(timer)), REFRESH_MS);
}
