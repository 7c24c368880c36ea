// The audit log: chain status (recomputed by the server) and entries, newest first, filtered and paged.
import { api, badge, clear, errorBox, h, has, notAvailable, section, table, timeCell } from "../lib.js";

const PAGE = 100;

export async function render(main) {
  if (!has("GET /v1/audit")) return clear(main, h("h1", {}, "Audit log"), notAvailable("Audit log"));
  const status = h("div", { id: "chain-status" }, h("p", { class: "loading" }, "Verifying the hash chain…"));
  const list = h("div");
  const filters = { actor: "", action: "", subject: "" };
  let pages = [];

  const query = (beforeSeq) => {
    const q = new URLSearchParams({ order: "desc", limit: String(PAGE) });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (beforeSeq !== undefined) q.set("beforeSeq", String(beforeSeq));
    return api("GET", `/v1/audit?${q}`);
  };
  const draw = () => {
    const rows = pages.flat();
    const last = rows[rows.length - 1];
    clear(
      list,
      table(
        [
          { label: "Seq", cell: (e) => String(e.seq), class: "num" },
          { label: "When", cell: (e) => timeCell(e.at) },
          { label: "Actor", cell: (e) => e.actor },
          { label: "Action", cell: (e) => h("code", {}, e.action) },
          { label: "Subject", cell: (e) => e.subject ?? "" },
          { label: "Outcome", cell: (e) => badge(e.outcome) },
          { label: "Details", cell: (e) => (e.details && Object.keys(e.details).length ? h("code", { class: "details", title: JSON.stringify(e.details, null, 1) }, JSON.stringify(e.details).slice(0, 140)) : "") },
        ],
        rows,
        { label: "audit entries", empty: "No entries match.", rowKey: (e) => String(e.seq) },
      ),
      pages.length && pages[pages.length - 1].length === PAGE && last
        ? h("button", { type: "button", onclick: async () => (pages.push((await query(last.seq)).entries), draw()) }, "Older entries")
        : null,
    );
  };
  const reload = async () => {
    try {
      pages = [(await query()).entries];
      draw();
    } catch (e) {
      clear(list, errorBox(e));
    }
  };
  const field = (k, placeholder) => h("input", { name: k, placeholder, "aria-label": `filter by ${k}`, oninput: (e) => (filters[k] = e.target.value.trim()) });

  clear(
    main,
    h("h1", {}, "Audit log"),
    section("Chain status", status),
    section(
      "Entries",
      h(
        "form",
        { class: "inline", onsubmit: (ev) => (ev.preventDefault(), reload()) },
        field("actor", "actor, e.g. admin:…"),
        field("action", "action, e.g. host.add"),
        field("subject", "subject"),
        h("button", { type: "submit" }, "Filter"),
      ),
      list,
    ),
  );
  await reload();
  if (!has("GET /v1/audit/verify")) return clear(status, notAvailable("Chain verification"));
  try {
    const v = await api("GET", "/v1/audit/verify");
    clear(
      status,
      v.ok
        ? h(
            "div",
            { class: "chain chain-ok", role: "status" },
            badge("intact", "pass"),
            ` All ${v.verified} entries verify; ${v.treeSize} checkpointed (${v.pending} pending), root `,
            h("span", { class: "mono", title: v.rootHash }, v.rootHash.slice(0, 16) + "…"),
          )
        : h("div", { class: "chain chain-broken", role: "alert" }, badge("broken", "fail"), ` The log breaks at entry #${v.firstBadSeq ?? "?"}: ${v.reason ?? v.problem}. ${v.verified} entries before it verify.`),
    );
  } catch (e) {
    clear(status, errorBox(e));
  }
}
