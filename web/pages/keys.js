// Key release: trusted key providers with their key versions, key servers, and trusted clusters.
import { actionButton, api, badge, clear, h, has, notAvailable, section, session, table, timeCell } from "../lib.js";

export async function render(main) {
  if (!has("GET /v1/keys/providers")) return clear(main, h("h1", {}, "Key providers"), notAvailable("Key providers"));
  const [providers, servers, clusters] = await Promise.all([
    api("GET", "/v1/keys/providers"),
    has("GET /v1/keys/servers") ? api("GET", "/v1/keys/servers") : [],
    has("GET /v1/keys/clusters") ? api("GET", "/v1/keys/clusters") : [],
  ]);
  const again = () => render(main);
  const admin = session.isAdmin;
  clear(
    main,
    h("h1", {}, "Key providers"),
    section(
      `Trusted key providers (${providers.length})`,
      table(
        [
          { label: "Name", cell: (p) => p.name },
          { label: "Key server", cell: (p) => `${p.keyServer}${p.kind ? ` (${p.kind})` : ""}` },
          { label: "Primary key", cell: (p) => h("span", { class: "mono" }, p.primaryKeyId ?? "") },
          { label: "Version", cell: (p) => `v${p.currentVersion}`, class: "num" },
          { label: "Versions", cell: (p) => (p.versions ?? []).map((v) => `v${v.version}${v.retiredAt ? " (retired)" : ""}`).join(", ") },
          { label: "Clusters", cell: (p) => (p.clusters ?? []).join(", ") || "—" },
          { label: "State", cell: (p) => (p.disabledAt ? badge("disabled", "fail") : badge("enabled", "pass")) },
          ...(admin
            ? [
                {
                  label: "",
                  cell: (p) =>
                    p.disabledAt
                      ? actionButton("Enable", () => api("POST", `/v1/keys/providers/${p.name}/enable`), { done: again })
                      : actionButton("Disable", () => api("POST", `/v1/keys/providers/${p.name}/disable`), { danger: true, confirm: `Disable ${p.name}? Hosts get ERR_DISABLED until it is enabled again.`, done: again }),
                },
              ]
            : []),
        ],
        providers,
        { label: "key providers", empty: "No key providers (tpmtrust keys providers add NAME).", rowKey: (p) => p.name },
      ),
    ),
    section(
      "Trusted clusters",
      table(
        [
          { label: "Name", cell: (c) => c.name },
          { label: "Hosts", cell: (c) => [...(c.selector?.hosts ?? []), ...(c.selector?.hardwareClasses ?? []).map((x) => `class ${x}`), ...(c.selector?.tags ?? []).map((x) => `tag ${x}`)].join(", ") || "—" },
          { label: "May use", cell: (c) => (c.providers ?? []).join(", ") },
          { label: "Changed", cell: (c) => timeCell(c.updatedAt ?? c.createdAt) },
        ],
        clusters,
        { label: "clusters", empty: "No clusters: no host may use any provider yet." },
      ),
    ),
    section(
      "Key servers",
      table(
        [
          { label: "Name", cell: (k) => k.name },
          { label: "Kind", cell: (k) => k.kind },
          { label: "Configuration", cell: (k) => h("code", {}, JSON.stringify(k.config)) },
          { label: "Added", cell: (k) => timeCell(k.createdAt) },
        ],
        servers,
        { label: "key servers", empty: "Only the built-in local key server (created on first use)." },
      ),
    ),
  );
}
