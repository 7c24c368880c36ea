/**
 * Host admission by an administrator (`hosts add`, Add-HgsAttestationTpmHost of tpmtrust; the other
 * way in is admission by EK certificate chain, admission.ts): a host is known by its TPM's EKs, as
 * `tpmtrust agent identify` reports them, a name, a hardware class and an HGS policy version.
 * v2 (default) admits an EK only with a trusted EK certificate; v1 also admits an allow-listed EK
 * without one — only when asked for explicitly. Only EKs trusted under the host's version are
 * registered (so only they can activate AKs); the trust method used is stored with the host.
 */
import { TpmTrustError, isTpmTrustError, type ErrorCode } from "../errors.js";
import type { Ak, Host, HostFilter, HostOrder, ImaStateRecord, PolicyVersion, Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { ekHash, loadCertificate, loadCertificates, type EkTrustMethod, type MethodOutcome, type TcgFacts } from "../verify/ek/index.js";
import { timelineEntry } from "./attestations.js";
import { decodeHostIdentity } from "./identity.js";
import { evaluateEk, requireForPolicy, type Caller } from "../trust/trust.js";
import { healthChanged, type HealthChange } from "./health.js";
import type { ImaHostView } from "./ima.js";

const POLICY_VERSIONS: readonly PolicyVersion[] = ["v2", "v1"];
export const HOST_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
export const HARDWARE_CLASS_PATTERN = "^[A-Za-z0-9][A-Za-z0-9 ._:/+-]{0,127}$";

export interface AddHost {
  name: string;
  hardwareClass: string;
  /** default v2 */
  policyVersion?: PolicyVersion;
  /** the `tpmtrust agent identify` JSON (validated here) */
  identity: unknown;
  /**
   * v1 only, the administrator's explicit word (HGS `-PolicyVersion v1`): an EK without a trusted
   * certificate is allow-listed by its hash in the same step, audited as trust.allowlist.add.
   */
  allowlistEk?: boolean;
}

export interface EkAdmission {
  nameHex: string;
  alg: string;
  ekHash: string;
  registered: boolean;
  /** the method that admitted it under the host's policy version */
  method?: EkTrustMethod;
  methods: Record<EkTrustMethod, MethodOutcome>;
  /** allow-listed by this registration (v1, the administrator's word) */
  allowlisted?: boolean;
  /** why it was not admitted */
  code?: ErrorCode;
  reason?: string;
}

export interface EkView {
  nameHex: string;
  ekHash: string;
  certificate: { subject: string; notAfter: string } | null;
}

export interface AkView {
  nameHex: string;
  boundAt: number;
  hasCertificate: boolean;
}

export type HostView = Omit<Host, "eks"> & { eks: EkView[]; aks: AkView[] };
/** One host with its runtime integrity (IMA) state of the last boot verified (null: none). */
export type HostDetail = HostView & { ima: ImaHostView | null };

function check(value: string, pattern: string, field: string): string {
  if (!new RegExp(pattern).test(value)) throw new TpmTrustError("ERR_VALIDATION", `${field} must match ${pattern}, got ${JSON.stringify(value)}`, { field });
  return value;
}

function ekView(ek: Host["eks"][number]): EkView {
  let certificate: EkView["certificate"] = null;
  if (ek.cert) {
    try {
      const c = loadCertificate(ek.cert);
      certificate = { subject: c.label, notAfter: c.notAfter.toISOString() };
    } catch {
      certificate = { subject: "(unparseable)", notAfter: "" };
    }
  }
  return { nameHex: ek.name.toString("hex"), ekHash: ekHash(decodeTpmtPublic(ek.public)), certificate };
}

function hostView(h: Host, aks: readonly Ak[]): HostView {
  return { ...h, eks: h.eks.map(ekView), aks: aks.map((a) => ({ nameHex: a.name.toString("hex"), boundAt: a.boundAt, hasCertificate: a.akCert !== null })) };
}

/**
 * Registers a host. Each EK of the identity is judged under the policy version with the identity's
 * certificates; those that pass are stored (with the certificate that certifies them). None passing:
 * the first EK's reason (ERR_EK_CERT_REQUIRED, ERR_EK_NOT_ALLOWLISTED, ERR_EK_NOT_TRUSTED). A taken
 * name or EK: ERR_CONFLICT. Audited as host.add either way.
 */
export async function addHost(store: Store, input: AddHost, c: Caller): Promise<{ host: HostView; ekTrust: { method: EkTrustMethod; eks: EkAdmission[]; warnings: string[] } }> {
  const policyVersion = input.policyVersion ?? "v2";
  const audit = (outcome: "success" | "failure", details: Record<string, unknown>) =>
    store.audit.append({ actor: c.actor, action: "host.add", subject: input.name, outcome, details: { hardwareClass: input.hardwareClass, policyVersion, ...details }, at: c.now });
  try {
    check(input.name, HOST_NAME_PATTERN, "name");
    check(input.hardwareClass, HARDWARE_CLASS_PATTERN, "hardwareClass");
    if (!POLICY_VERSIONS.includes(policyVersion)) throw new TpmTrustError("ERR_VALIDATION", `policyVersion must be v2 or v1, got ${JSON.stringify(policyVersion)}`, { field: "policyVersion" });
    if (input.allowlistEk && policyVersion !== "v1") throw new TpmTrustError("ERR_VALIDATION", "allow-listing the EK at registration is for policy version v1 only: v2 requires a trusted EK certificate", { field: "allowlistEk" });
    const id = decodeHostIdentity(input.identity);
    const at = new Date(c.now);
    const eks: EkAdmission[] = [];
    const admitted: { name: Buffer; public: Buffer; cert: Buffer | null; method: EkTrustMethod }[] = [];
    const toAllowlist: { ekHash: string; overrode: ErrorCode }[] = [];
    const warnings = new Set<string>();
    let firstError: TpmTrustError | undefined;
    let tcg: TcgFacts | undefined;
    const intermediates = id.ekIntermediates.flatMap((c) => loadCertificates(c));
    for (const ek of id.eks) {
      const d = await evaluateEk(store, { ekPublic: ek.public, ekCerts: id.ekCertificates, intermediates }, at);
      d.warnings.forEach((w) => warnings.add(w));
      const base = { nameHex: ek.name.toString("hex"), alg: ek.alg, ekHash: d.ekHash!, methods: d.methods };
      // the certificate for this EK: the one that validated, else one that at least certifies its key
      const i = d.certificates.findIndex((x) => x.passed);
      const j = i >= 0 ? i : d.certificates.findIndex((x) => x.ekHash === d.ekHash);
      let cert: Buffer | null = null;
      if (j >= 0) {
        try {
          cert = loadCertificate(id.ekCertificates[j]).der;
        } catch {
          cert = null;
        }
      }
      try {
        const method = requireForPolicy(d, policyVersion);
        admitted.push({ name: ek.name, public: ek.publicArea, cert, method });
        eks.push({ ...base, registered: true, method });
        tcg ??= d.tcg;
      } catch (e) {
        if (!isTpmTrustError(e)) throw e;
        if (input.allowlistEk && d.ekHash && (e.code === "ERR_EK_NOT_ALLOWLISTED" || e.code === "ERR_EK_NOT_TRUSTED")) {
          toAllowlist.push({ ekHash: d.ekHash, overrode: e.code });
          admitted.push({ name: ek.name, public: ek.publicArea, cert, method: "ek-key" });
          eks.push({ ...base, registered: true, method: "ek-key", allowlisted: true });
          continue;
        }
        if (e.code === "ERR_EK_CERT_REQUIRED") e = new TpmTrustError(e.code, `${e.message}: to admit this TPM by its EK hash instead, register it as policy version v1 (tpmtrust hosts add FILE --name ${input.name} --class ${input.hardwareClass} --policy-version v1), which allow-lists its EK`, e.details);
        firstError ??= e as TpmTrustError;
        eks.push({ ...base, registered: false, code: (e as TpmTrustError).code, reason: (e as Error).message });
      }
    }
    if (admitted.length === 0) throw firstError!;
    // the host is as trusted as its weakest registered EK
    const method: EkTrustMethod = admitted.every((a) => a.method === "ek-cert") ? "ek-cert" : "ek-key";
    // the allow-list entries and the host are stored together: a refused host leaves no entry behind
    const host = await store.transaction(async (tx) => {
      const h = await tx.hosts.add({
        name: input.name,
        hardwareClass: input.hardwareClass,
        policyVersion,
        trustMethod: method,
        eks: admitted.map(({ name, public: pub, cert }) => ({ name, public: pub, cert })),
        platform: { ...id.tpm, ...(tcg ? { certified: tcg } : {}) },
        at: c.now,
      });
      for (const a of toAllowlist) {
        const added = await tx.trust.addAllowlist(a.ekHash, { label: `host ${input.name} (policy version v1)`, source: "hosts add", at: c.now });
        await tx.audit.append({ actor: c.actor, action: "trust.allowlist.add", subject: a.ekHash, outcome: "success", details: { label: `host ${input.name} (policy version v1)`, added, via: "host.add", host: input.name, policyVersion, overrode: a.overrode }, at: c.now });
      }
      const eksAudited = eks.map((e) => ({ name: e.nameHex, ekHash: e.ekHash, registered: e.registered, method: e.method ?? null, code: e.code ?? null, ...(e.allowlisted ? { allowlisted: true } : {}) }));
      await tx.audit.append({ actor: c.actor, action: "host.add", subject: input.name, outcome: "success", details: { hardwareClass: input.hardwareClass, policyVersion, trustMethod: method, eks: eksAudited }, at: c.now });
      return h;
    });
    return { host: hostView(host, []), ekTrust: { method, eks, warnings: [...warnings] } };
  } catch (e) {
    if (isTpmTrustError(e)) await audit("failure", { code: e.code, reason: e.message, ...(e.details ? { details: e.details } : {}) });
    throw e;
  }
}

function imaHostView(r: ImaStateRecord): ImaHostView {
  return {
    resetCount: r.resetCount,
    entriesVerified: r.nextIndex,
    lastVerifiedIndex: r.nextIndex > 0 ? r.nextIndex - 1 : null,
    failures: r.failures,
    lastFailure: (r.lastFailure as ImaHostView["lastFailure"]) ?? null,
    pcr10: Object.fromEntries(Object.entries(r.pcr10).map(([b, v]) => [b, v.toString("hex")])),
    updatedAt: r.updatedAt,
  };
}

export async function getHost(store: Store, name: string): Promise<HostDetail> {
  const h = await store.hosts.get(name);
  if (!h) throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(name)}`);
  const [aks, ima] = await Promise.all([store.aks.listForHost(name), store.imaState.get(name)]);
  return { ...hostView(h, aks), ima: ima ? imaHostView(ima) : null };
}

/** One page of hosts in `order` (keyset paging: as fast on the last page of 100,000 as on the first). */
export async function pageHosts(
  store: Store,
  o: HostFilter & { order: HostOrder; after?: [string | number | null, string]; limit: number },
): Promise<{ hosts: HostView[]; next?: [string | number | null, string]; total: number }> {
  const [{ hosts, more }, total] = await Promise.all([store.hosts.page(o), store.hosts.count(o)]);
  const aks = await store.aks.listForHosts(hosts.map((h) => h.name));
  const last = hosts.at(-1);
  return {
    hosts: hosts.map((h) => hostView(h, aks.get(h.name) ?? [])),
    total,
    ...(more && last ? { next: [hostSortKey(last, o.order), last.name] } : {}),
  };
}

/** A host's attestation timeline, newest first, a page at a time (`after`: the last entry's time and id). */
export async function hostTimeline(store: Store, name: string, o: { limit: number; after?: [number, string] }) {
  if (!(await store.hosts.get(name))) throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(name)}`);
  const list = await store.attestations.listForHost(name, { limit: o.limit + 1, after: o.after });
  const page = list.slice(0, o.limit);
  const last = page.at(-1);
  return {
    attestations: page.map(timelineEntry),
    ...(list.length > o.limit && last ? { next: [last.at, last.id] as [number, string] } : {}),
  };
}

/** The value a host sorts by in `order` (as the store compares it). */
function hostSortKey(h: Host, order: HostOrder): string | number {
  switch (order.replace(/^-/, "")) {
    case "lastAttestationAt":
      return h.lastAttestationAt ?? -1;
    case "health":
      return h.health;
    case "hardwareClass":
      return h.hardwareClass;
    default:
      return h.name;
  }
}

/** The fleet at a glance: hosts by health and the commonest failure reasons, without reading every host. */
export async function fleetSummary(store: Store): Promise<{ total: number; byHealth: Record<Host["health"], number>; unhealthyReasons: { reason: string | null; count: number; examples: string[] }[] }> {
  const [byHealth, unhealthyReasons] = await Promise.all([store.hosts.countByHealth(), store.hosts.unhealthyReasons(20, 5)]);
  return { total: byHealth.healthy + byHealth.unhealthy + byHealth.unknown, byHealth, unhealthyReasons };
}

/**
 * Moves a host to another hardware class (its baselines judge it from the next attestation on);
 * its EKs and bound AKs stay. Audited as host.update.
 */
export async function changeHostClass(store: Store, name: string, hardwareClass: string, c: Caller): Promise<HostView> {
  const audit = (outcome: "success" | "failure", details: Record<string, unknown>) => store.audit.append({ actor: c.actor, action: "host.update", subject: name, outcome, details, at: c.now });
  try {
    check(hardwareClass, HARDWARE_CLASS_PATTERN, "hardwareClass");
    const before = await store.hosts.get(name);
    if (!before) throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(name)}`);
    const h = await store.transaction(async (tx) => {
      const h = await tx.hosts.update(name, { hardwareClass }, c.now);
      await tx.audit.append({ actor: c.actor, action: "host.update", subject: name, outcome: "success", details: { hardwareClass: { from: before.hardwareClass, to: hardwareClass } }, at: c.now });
      return h;
    });
    return hostView(h, await store.aks.listForHost(name));
  } catch (e) {
    if (isTpmTrustError(e)) await audit("failure", { code: e.code, reason: e.message, hardwareClass });
    throw e;
  }
}

/** Deletes a host with its EKs, AKs, activations, attestations and tokens. Audited. */
export async function removeHost(store: Store, name: string, c: Caller): Promise<void> {
  const removed = await store.transaction(async (tx) => {
    const removed = await tx.hosts.remove(name);
    await tx.audit.append({ actor: c.actor, action: "host.remove", subject: name, outcome: removed ? "success" : "failure", details: removed ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return removed;
  });
  if (!removed) throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(name)}`);
}

/**
 * Disables a host: from now on it gets no passing verdict, token, AK activation, certificate or key.
 * It turns unhealthy (ERR_DISABLED) at once, which revokes its tokens and notifies webhook
 * subscribers, all in one transaction. Enabling it again lets it attest back to health.
 */
export async function setHostDisabled(store: Store, name: string, disabled: boolean, c: Caller): Promise<HealthChange | undefined> {
  const change = await store.transaction(async (tx) => {
    const host = await tx.hosts.get(name);
    if (!host || !(await tx.hosts.setDisabled(name, disabled ? c.now : null, c.now))) return null;
    await tx.audit.append({ actor: c.actor, action: disabled ? "host.disable" : "host.enable", subject: name, outcome: "success", details: {}, at: c.now });
    if (!disabled) return undefined;
    const r = await tx.hosts.markUnhealthy(name, { reason: "ERR_DISABLED", at: c.now });
    if (!r.changed) return undefined;
    const hc: HealthChange = { host: name, hardwareClass: host.hardwareClass, previous: r.previous, health: "unhealthy", reason: "ERR_DISABLED", at: c.now };
    await healthChanged(tx, hc, c.actor);
    return hc;
  });
  if (change === null) {
    await store.audit.append({ actor: c.actor, action: disabled ? "host.disable" : "host.enable", subject: name, outcome: "failure", details: { code: "ERR_NOT_FOUND" }, at: c.now });
    throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(name)}`);
  }
  return change;
}
