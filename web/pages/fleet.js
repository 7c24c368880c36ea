// Fleet overview: hosts by health, failure reasons, last attestation.
import { api, badge, clear, h, has, notAvailable, section, table, timeCell } from "../lib.js";

const HEALTH = ["healthy", "unhealthy", "unknown"];
const PAGE = 200;

export async function render(main) {
  if (!has("GET /v1/hosts")) return clear(main, h("h1", {}, "Fleet"), notAvailable("Hosts"));
  const hosts = await api("GET", "/v1/hosts");
  let filter = { health: null, text: "" };
  let shown = PAGE;

  const counts = Object.fromEntries(HEALTH.map((k) => [k, hosts.filter((x) => x.health === k).length]));
  const reasons = new Map();
  for (const x of hosts) if (x.health === "unhealthy") reasons.set(x.healthReason ?? "(none)", [...(reasons.get(x.healthReason ?? "(none)") ?? []), x.name]);

  const list = h("div");
  const tiles = h("div", { class: "tiles" });
  const draw = () => {
    clear(
      tiles,
      h("button", { type: "button", class: `tile${filter.health === null ? " selected" : ""}`, onclick: () => ((filter.health = null), draw()) }, h("span", { class: "n" }, String(hosts.length)), h("span", {}, "hosts")),
      HEALTH.map((k) =>
        h(
          "button",
          { type: "button", class: `tile tile-${k}${filter.health === k ? " selected" : ""}`, "aria-pressed": String(filter.health === k), onclick: () => ((filter.health = filter.health === k ? null : k), (shown = PAGE), draw()) },
          h("span", { class: "n", dataset: { health: k } }, String(counts[k])),
          h("span", {}, k),
        ),
      ),
    );
    const rows = hosts.filter((x) => (!filter.health || x.health === filter.health) && (!filter.text || x.name.includes(filter.text) || x.hardwareClass.includes(filter.text)));
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
        rows.slice(0, shown),
        { label: "hosts", empty: hosts.length ? "No host matches." : "No hosts registered yet: tpmtrust agent identify > host.json; tpmtrust hosts add host.json --name NAME --class CLASS", rowKey: (x) => x.name },
      ),
      rows.length > shown ? h("button", { type: "button", onclick: () => ((shown += PAGE), draw()) }, `Show more (${rows.length - shown} left)`) : null,
    );
  };
  draw();

  clear(
    main,
    h("h1", {}, "Fleet"),
    tiles,
    section(
      "Failure reasons",
      reasons.size === 0
        ? h("p", { class: "empty" }, "No unhealthy hosts.")
        : table(
            [
              { label: "Reason", cell: ([r]) => h("code", {}, r) },
              { label: "Hosts", cell: ([, names]) => String(names.length), class: "num" },
              { label: "Examples", cell: ([, names]) => names.slice(0, 5).map((n, i) => [i ? ", " : "", h("a", { href: `#/hosts/${encodeURIComponent(n)}` }, n)]) },
            ],
            [...reasons].sort((a, b) => b[1].length - a[1].length),
            { label: "failure reasons" },
          ),
    ),
    section(
      "Hosts",
      h("input", { type: "search", placeholder: "Filter by name or class", "aria-label": "filter hosts", oninput: (e) => ((filter.text = e.target.value.trim()), (shown = PAGE), draw()) }),
      list,
    ),
  );
}
