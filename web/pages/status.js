// The configuration checklist (GET /v1/status): each item OK, missing or failing, with the command that fixes it.
import { api, badge, clear, h, has, notAvailable, section, table } from "../lib.js";

const KIND = { ok: "pass", missing: "unknown", failing: "fail" };
const LABEL = { ok: "OK", missing: "missing", failing: "failing" };

export async function render(main) {
  if (!has("GET /v1/status")) return clear(main, h("h1", {}, "Status"), notAvailable("Status"));
  const r = await api("GET", "/v1/status");
  const open = r.items.filter((i) => i.state !== "ok").length;
  clear(
    main,
    h("h1", {}, "Status"),
    h("p", { class: open ? "status-open" : "status-ok", role: "status" }, open ? `${open} item(s) need attention before this service is fully set up.` : "Everything is set up."),
    section(
      "Configuration checklist",
      table(
        [
          { label: "Item", cell: (i) => i.title },
          { label: "State", cell: (i) => badge(LABEL[i.state], KIND[i.state]) },
          { label: "Detail", cell: (i) => i.detail },
          { label: "Fix", cell: (i) => (i.fix ? h("code", {}, i.fix) : "—") },
        ],
        r.items,
        { label: "checklist", rowKey: (i) => i.id },
      ),
    ),
  );
}

/** Whether the checklist has anything missing or failing (the dashboard then opens on it). */
export async function needsAttention() {
  if (!has("GET /v1/status")) return false;
  return !(await api("GET", "/v1/status")).ok;
}
