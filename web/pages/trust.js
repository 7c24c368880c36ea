// EK trust: the allow-list (database and AD CS-style folders) and manufacturer roots/intermediates.
import { actionButton, api, badge, clear, h, has, notAvailable, section, session, short, table, timeCell, writeForm } from "../lib.js";

export async function render(main) {
  if (!has("GET /v1/trust/allowlist")) return clear(main, h("h1", {}, "Trust"), notAvailable("EK trust"));
  const [allow, dirs, cas] = await Promise.all([
    api("GET", "/v1/trust/allowlist"),
    has("GET /v1/trust/allowlist-dirs") ? api("GET", "/v1/trust/allowlist-dirs") : [],
    has("GET /v1/trust/cas") ? api("GET", "/v1/trust/cas") : [],
  ]);
  const again = () => render(main);
  const admin = session.isAdmin;

  clear(
    main,
    h("h1", {}, "Trust"),
    section(
      `Allow-listed EKs (${allow.length})`,
      h("p", { class: "muted" }, "EKs trusted by the hex SHA-256 of their public key (the AD CS EKpub rule), from the database and from allow-list folders."),
      admin && has("POST /v1/trust/allowlist") ? addForm(again) : null,
      table(
        [
          { label: "EK hash", cell: (e) => h("span", { class: "mono" }, e.ekHash) },
          { label: "Label", cell: (e) => e.label ?? "" },
          { label: "Source", cell: (e) => (e.source === "db" ? "database" : h("span", { class: "mono" }, e.source)) },
          { label: "Added", cell: (e) => (e.addedAt ? timeCell(e.addedAt) : "—") },
          ...(admin ? [{ label: "", cell: (e) => (e.source === "db" ? actionButton("Remove", () => api("DELETE", `/v1/trust/allowlist/${e.ekHash}`), { danger: true, confirm: `Remove ${e.ekHash} from the allow-list?`, done: again }) : "") }] : []),
        ],
        allow,
        { label: "allow-list", empty: "No allow-listed EKs.", rowKey: (e) => e.ekHash },
      ),
    ),
    section(
      "Allow-list folders",
      table(
        [
          { label: "Folder", cell: (d) => h("span", { class: "mono" }, d.path) },
          { label: "Entries", cell: (d) => (d.entries === null ? badge("unreadable", "fail") : String(d.entries)), class: "num" },
          { label: "Ignored files", cell: (d) => String(d.ignored?.length ?? 0), class: "num" },
          { label: "Added", cell: (d) => timeCell(d.addedAt) },
          { label: "Problem", cell: (d) => d.error ?? "" },
        ],
        dirs,
        { label: "allow-list folders", empty: "No folders registered (tpmtrust trust allowlist-dir add PATH)." },
      ),
    ),
    section(
      `Manufacturer roots and intermediates (${cas.length})`,
      admin && has("POST /v1/trust/cas") ? importForm(again) : null,
      table(
        [
          { label: "Kind", cell: (c) => badge(c.kind === "root" ? "EKROOT" : "EKCA", c.kind) },
          { label: "Subject", cell: (c) => c.subject },
          { label: "Valid until", cell: (c) => (c.notAfter ? c.notAfter.slice(0, 10) : "?") },
          { label: "SHA-256", cell: (c) => short(c.id, 16) },
          ...(admin ? [{ label: "", cell: (c) => actionButton("Remove", () => api("DELETE", `/v1/trust/cas/${c.id}`), { danger: true, confirm: `Remove ${c.subject}?`, done: again }) }] : []),
        ],
        cas,
        { label: "EK certificate authorities", empty: "No manufacturer certificates imported." },
      ),
    ),
  );
}

function addForm(done) {
  const hash = h("input", { name: "ekHash", placeholder: "64 hex digits", pattern: "[0-9a-fA-F]{64}", required: true, size: "66", "aria-label": "EK hash" });
  const label = h("input", { name: "label", placeholder: "label (optional)", maxlength: "256", "aria-label": "label" });
  return writeForm(
    async () => {
      await api("POST", "/v1/trust/allowlist", { ekHash: hash.value.trim(), ...(label.value.trim() ? { label: label.value.trim() } : {}) });
      done();
    },
    [hash, label],
    "Add to allow-list",
  );
}

/** PEM (one or more certificates) or DER files → base64 DER strings. */
async function certificatesOf(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const text = new TextDecoder("latin1").decode(bytes);
  const pem = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => m[1].replace(/\s+/g, ""));
  if (pem.length) return pem;
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return [btoa(bin)];
}

function importForm(done) {
  const files = h("input", { type: "file", multiple: true, accept: ".pem,.crt,.cer,.der", "aria-label": "certificate files" });
  return writeForm(
    async () => {
      const certificates = (await Promise.all([...files.files].map(certificatesOf))).flat();
      if (!certificates.length) throw new Error("choose one or more certificate files");
      const r = await api("POST", "/v1/trust/cas", { certificates });
      setTimeout(done, 800);
      return `added ${r.added.length}, already present ${r.present?.length ?? 0}, skipped ${r.skipped?.length ?? 0}`;
    },
    [files],
    "Import certificates",
  );
}
