// Host detail: EKs and how they were trusted, bound AKs, runtime integrity (IMA) of the current boot,
// the attestation timeline, and for a failed attestation the policy results with the event-log diff.
import { actionButton, api, apiPage, badge, clear, errorBox, fmtTime, h, has, json, kv, loading, section, session, short, table, timeCell } from "../lib.js";

const TIMELINE = [
  { label: "When", cell: (a) => timeCell(a.at) },
  { label: "Verdict", cell: (a) => badge(a.verdict) },
  { label: "Reason", cell: (a) => (a.code ? h("code", {}, a.code) : "") },
  { label: "PCR digest", cell: (a) => short(a.pcrDigestHex ?? "", 16) },
];

export async function render(main, [name]) {
  if (!name) return (location.hash = "#/fleet");
  const host = await api("GET", `/v1/hosts/${encodeURIComponent(name)}`);
  const first = has("GET /v1/hosts/{name}/attestations") ? await apiPage(`/v1/hosts/${encodeURIComponent(name)}/attestations?limit=50`) : null;
  const timeline = first?.items ?? null;
  const detail = h("div", { id: "attestation-detail" });
  const older = h("div");

  const show = async (a) => {
    clear(detail, loading());
    try {
      const full = has("GET /v1/attestations/{id}") ? await api("GET", `/v1/attestations/${a.id}`) : { ...a, details: null };
      clear(detail, attestationView(full));
      detail.scrollIntoView({ block: "nearest" });
    } catch (e) {
      clear(detail, errorBox(e));
    }
  };

  clear(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/fleet" }, "Fleet"), " / ", host.name),
    h("h1", {}, host.name, " ", badge(host.health)),
    section(
      "Host",
      kv([
        ["Hardware class", host.hardwareClass],
        ["Policy version", host.policyVersion],
        ["EK trusted by", host.trustMethod ?? "—"],
        ["Health", [badge(host.health), host.healthReason ? [" ", h("code", {}, host.healthReason)] : null, host.healthChangedAt ? [" since ", fmtTime(host.healthChangedAt)] : null]],
        ["Last attestation", timeCell(host.lastAttestationAt)],
        ["Deadline", host.deadlineAt ? timeCell(host.deadlineAt) : "—"],
        ["Registered", fmtTime(host.createdAt)],
        host.platform ? ["TPM", Object.entries(host.platform).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")] : null,
        host.tags?.length ? ["Tags", host.tags.join(", ")] : null,
      ]),
      session.isAdmin && has("DELETE /v1/hosts/{name}")
        ? actionButton("Remove host", () => api("DELETE", `/v1/hosts/${encodeURIComponent(host.name)}`), { danger: true, confirm: `Remove ${host.name} with its EKs, AKs and history?`, done: () => (location.hash = "#/fleet") })
        : null,
    ),
    host.ima ? imaView(host.ima) : null,
    section(
      "Endorsement keys",
      table(
        [
          { label: "EK hash (SHA-256 of the public key)", cell: (e) => short(e.ekHash, 24) },
          { label: "Name", cell: (e) => short(e.nameHex, 20) },
          { label: "Certificate", cell: (e) => (e.certificate ? e.certificate.subject : "none") },
          { label: "Certificate expires", cell: (e) => (e.certificate?.notAfter ? e.certificate.notAfter.slice(0, 10) : "—") },
        ],
        host.eks,
        { label: "endorsement keys" },
      ),
    ),
    section(
      "Attestation keys",
      table(
        [
          { label: "AK name", cell: (a) => short(a.nameHex, 32) },
          { label: "Bound", cell: (a) => timeCell(a.boundAt) },
          { label: "AK certificate", cell: (a) => (a.hasCertificate ? "issued" : "none") },
        ],
        host.aks,
        { label: "attestation keys", empty: "No AK bound yet: tpmtrust agent activate." },
      ),
    ),
    section(
      "Attestation timeline",
      timeline === null
        ? h("p", { class: "empty" }, "This server has no attestation timeline.")
        : table(
            TIMELINE,
            timeline,
            { label: "attestations", empty: "No attestations yet.", onRowClick: show, rowKey: (a) => a.id },
          ),
      older,
      detail,
    ),
  );
  // older pages through the service's cursor, appended below the newest 50
  const more = (next) =>
    clear(
      older,
      next
        ? h(
            "button",
            {
              type: "button",
              onclick: async () => {
                try {
                  const p = await apiPage(next);
                  older.before(table(TIMELINE, p.items, { label: "older attestations", onRowClick: show, rowKey: (a) => a.id }));
                  more(p.next);
                } catch (e) {
                  clear(older, errorBox(e));
                }
              },
            },
            "Older attestations",
          )
        : null,
    );
  more(first?.next);
  const firstFailure = timeline?.find((a) => a.verdict !== "pass");
  if (firstFailure && timeline[0] === firstFailure) await show(firstFailure);
}

/** The host's IMA state (GET /v1/hosts/{name} `ima`): progress in its boot and the last failing entry. */
export function imaView(ima) {
  const f = ima.lastFailure;
  return section(
    "Runtime integrity (IMA)",
    kv([
      ["Boot (TPM reset count)", String(ima.resetCount)],
      ["Entries verified", String(ima.entriesVerified)],
      ["Last verified index", ima.lastVerifiedIndex === null ? "none yet" : String(ima.lastVerifiedIndex)],
      ["PCR 10", digests(ima.pcr10)],
      ["Failing entries", [badge(ima.failures ? "failing" : "ok", ima.failures ? "unhealthy" : "healthy"), ` ${ima.failures} in this boot`]],
      ["Updated", timeCell(ima.updatedAt)],
    ]),
    f
      ? table(
          [
            { label: "Index", cell: (x) => String(x.index), class: "num" },
            { label: "Path", cell: (x) => h("code", {}, x.path || "—") },
            { label: "Digest", cell: (x) => (x.digest ? short(x.digest, 24) : "—") },
            { label: "Reason code", cell: (x) => h("code", {}, x.code) },
            { label: "Reason", cell: (x) => x.reason },
          ],
          [f],
          { label: "last IMA failure" },
        )
      : h("p", { class: "empty" }, "No IMA failure in this boot."),
  );
}

/** One attestation: verdict, policies judged, PCRs the log explained, and the diff of a failure. */
export function attestationView(a) {
  const d = a.details ?? {};
  return h(
    "div",
    { class: "attestation" },
    h("h3", {}, "Attestation ", badge(a.verdict), " ", fmtTime(a.at)),
    kv([
      ["Reason", a.code ? h("code", {}, a.code) : "—"],
      d.message ? ["Message", d.message] : null,
      ["AK", short(a.akNameHex ?? "", 32)],
      ["PCR digest", short(a.pcrDigestHex ?? "", 32)],
      d.policyVersion !== undefined ? ["Policy version passed", d.policyVersion ?? `none (tried: ${(d.policyVersionsTried ?? []).join(", ") || "no usable set"})`] : null,
      d.policies ? ["Policies", d.policies.map((p) => `${p.kind} ${p.name} v${p.version}`).join(", ") || "—"] : null,
      d.explainedPcrs ? ["PCRs the log explains", d.explainedPcrs.map((p) => `${p.bank}:${p.pcr}`).join(" ") || "—"] : null,
      d.unexplainedPcrs?.length ? ["PCRs not explained", d.unexplainedPcrs.map((p) => `${p.bank}:${p.pcr} (${p.reason})`).join("; ")] : null,
      d.workarounds?.length ? ["Workarounds applied", d.workarounds.map((w) => `${w.name} (${w.bank}:${w.pcr})`).join("; ")] : null,
      d.ima ? ["IMA entries verified", `${d.ima.entriesVerified} (next increment from entry ${d.ima.nextIndex}; ${d.ima.covered} in this attestation)`] : null,
      d.ima ? ["IMA failures", d.ima.failures ? `${d.ima.failures}; last: entry ${d.ima.lastFailure.index} ${d.ima.lastFailure.path} ${d.ima.lastFailure.digest} — ${d.ima.lastFailure.code} ${d.ima.lastFailure.reason}` : "none"] : null,
    ]),
    a.diff ? diffView(a.diff) : null,
  );
}

/** Digests per bank, shortened; the full value is the tooltip. */
const digests = (v) =>
  v === "any" ? "any" : v && typeof v === "object" ? Object.entries(v).map(([k, x]) => h("div", { class: "mono", title: `${k}: ${x}` }, `${k}: ${String(x).slice(0, 16)}${String(x).length > 16 ? "…" : ""}`)) : "";

/** The diff of a failed attestation: per failed policy its differences, or the failed check. */
export function diffView(diff) {
  const items = Array.isArray(diff) ? diff : [diff];
  return h(
    "div",
    { class: "diff" },
    items.map((p) =>
      Array.isArray(p?.diffs)
        ? h(
            "div",
            { class: "diff-policy" },
            h("h4", {}, `${p.kind} “${p.name}”`, p.version ? ` v${p.version}` : "", p.policyVersion ? ` (policy version ${p.policyVersion})` : "", " failed"),
            table(
              [
                { label: "PCR", cell: (x) => String(x.pcr), class: "num" },
                { label: "Difference", cell: (x) => badge(x.kind, "diff") },
                { label: "Event", cell: (x) => [x.type ?? "", x.record !== undefined ? ` #${x.record}` : ""] },
                { label: "Expected", cell: (x) => digests(x.expected) },
                { label: "Actual", cell: (x) => digests(x.actual) },
                { label: "What it means", cell: (x) => h("div", {}, h("strong", {}, x.meaning), h("div", { class: "muted" }, x.description)) },
              ],
              p.diffs,
              { label: `differences of ${p.kind} ${p.name}` },
            ),
          )
        : h("div", { class: "diff-check" }, h("h4", {}, "Failed check ", h("code", {}, p?.check ?? "")), p?.message ? h("p", {}, p.message) : null, json(p)),
    ),
  );
}
