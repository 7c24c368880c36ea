// The key attestation CA: certificates issued (with how the key was proven to be in a TPM), templates.
import { actionButton, api, badge, clear, h, has, notAvailable, section, session, short, table, timeCell } from "../lib.js";

export async function render(main) {
  if (!has("GET /v1/ca/certs")) return clear(main, h("h1", {}, "Certificates"), notAvailable("Certificates issued"));
  const [certs, templates] = await Promise.all([api("GET", "/v1/ca/certs?all=true"), has("GET /v1/ca/templates") ? api("GET", "/v1/ca/templates") : []]);
  const again = () => render(main);
  clear(
    main,
    h("h1", {}, "Certificates"),
    section(
      `Issued (${certs.length})`,
      table(
        [
          { label: "Serial", cell: (c) => short(c.serial, 16) },
          { label: "Subject", cell: (c) => c.subject },
          { label: "Template", cell: (c) => c.template ?? "AK certificate" },
          { label: "Host", cell: (c) => (c.host ? h("a", { href: `#/hosts/${encodeURIComponent(c.host)}` }, c.host) : "") },
          { label: "Key attestation", cell: (c) => attestationCell(c.attestation) },
          { label: "Issued", cell: (c) => timeCell(c.issuedAt) },
          { label: "Expires", cell: (c) => timeCell(c.notAfter) },
          { label: "Status", cell: (c) => (c.revokedAt ? badge(`revoked (${c.revocationReason ?? "unspecified"})`, "fail") : badge("valid", "pass")) },
          ...(session.isAdmin && has("POST /v1/ca/certs/{serial}/revoke")
            ? [{ label: "", cell: (c) => (c.revokedAt ? "" : actionButton("Revoke", () => api("POST", `/v1/ca/certs/${c.serial}/revoke`, {}), { danger: true, confirm: `Revoke ${c.subject} (${c.serial})?`, done: again })) }]
            : []),
        ],
        certs,
        { label: "certificates", empty: "No certificates issued yet (tpmtrust agent enroll-cert, or ACME device-attest-01).", rowKey: (c) => c.serial },
      ),
    ),
    section(
      `Templates (${templates.length})`,
      table(
        [
          { label: "Name", cell: (t) => t.name },
          { label: "Validity", cell: (t) => `${t.validityDays ?? "?"} days` },
          { label: "Key attestation", cell: (t) => `${t.keyAttestation?.mode ?? "none"}${t.keyAttestation?.trustModels ? ` (${t.keyAttestation.trustModels.join(", ")})` : ""}` },
          { label: "Key types", cell: (t) => (t.keyTypes ?? []).join(", ") },
          { label: "EKU", cell: (t) => (t.extendedKeyUsage ?? []).join(", ") },
        ],
        templates,
        { label: "templates", empty: "No templates (tpmtrust ca templates add)." },
      ),
    ),
  );
}

/** How the key was proven to live in a TPM: credential activation (AK certificates) or key attestation evidence. */
function attestationCell(a) {
  if (!a) return "none";
  if (a.kind === "ak") return "AK bound by credential activation";
  return [a.format ?? "evidence", a.akNameHex ? ` by AK ${String(a.akNameHex).slice(0, 12)}…` : ""].join("");
}
