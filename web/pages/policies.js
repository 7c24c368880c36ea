// Policies: TPM baselines per hardware class, accepted boot software, code integrity, Secure Boot.
import { actionButton, api, clear, errorBox, fmtTime, h, has, json, kv, loading, notAvailable, section, session, table, timeCell } from "../lib.js";

const KINDS = [
  ["baseline", "TPM baselines"],
  ["software", "Accepted software"],
  ["ci", "Code integrity"],
  ["secureboot", "Secure Boot"],
];

export async function render(main, [id]) {
  if (!has("GET /v1/policies")) return clear(main, h("h1", {}, "Policies"), notAvailable("Policies"));
  const list = await api("GET", "/v1/policies");
  const detail = h("div", { id: "policy-detail" });
  const open = async (p) => {
    location.hash = `#/policies/${p.id}`;
  };
  clear(
    main,
    h("h1", {}, "Policies"),
    h("p", { class: "muted" }, "Enabled policies, newest version of each. Hosts attest against the baselines of their hardware class and every policy without one."),
    KINDS.map(([kind, title]) => {
      const rows = list.filter((p) => p.kind === kind);
      return section(
        `${title} (${rows.length})`,
        table(
          [
            { label: "Name", cell: (p) => h("a", { href: `#/policies/${p.id}` }, p.name) },
            { label: "Version", cell: (p) => `v${p.version}`, class: "num" },
            { label: "Hardware class", cell: (p) => p.hardwareClass ?? "every class" },
            { label: "Policy version", cell: (p) => p.policyVersion },
            { label: "Created", cell: (p) => timeCell(p.createdAt) },
            { label: "By", cell: (p) => p.createdBy ?? "" },
          ],
          rows,
          { label: title, empty: `No ${title.toLowerCase()}.`, onRowClick: open, rowKey: (p) => p.id },
        ),
      );
    }),
    detail,
  );
  if (id) {
    clear(detail, loading());
    try {
      const p = await api("GET", `/v1/policies/${encodeURIComponent(id)}`);
      clear(
        detail,
        section(
          `${p.kind} “${p.name}” v${p.version}`,
          kv([
            ["Hardware class", p.hardwareClass ?? "every class"],
            ["Policy version", p.policyVersion],
            ["Created", `${fmtTime(p.createdAt)} by ${p.createdBy ?? "?"}`],
            ["Disabled", p.disabledAt ? fmtTime(p.disabledAt) : "no"],
          ]),
          session.isAdmin && !p.disabledAt && has("DELETE /v1/policies/{id}")
            ? actionButton("Disable policy", () => api("DELETE", `/v1/policies/${p.id}`), { danger: true, confirm: `Disable ${p.kind} ${p.name} (every version)?`, done: () => (location.hash = "#/policies") })
            : null,
          h("h3", {}, "Document"),
          json(p.document),
        ),
      );
      detail.scrollIntoView({ block: "nearest" });
    } catch (e) {
      clear(detail, errorBox(e));
    }
  }
}
