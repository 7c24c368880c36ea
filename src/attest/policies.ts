/**
 * Policies in the service: the kinds tpmtrust judges hosts by, which of them apply to a host, the
 * PCR selection they need quoted, and their administration (every change audited). A host is judged
 * by the newest enabled version of every policy of its hardware class and of every class-independent
 * policy. As in HGS, a class may hold v2 and v1 artifact sets side by side: a host attests only if its
 * EK and all the artifacts of one set share that set's policy version, v2 tried first, then v1.
 */
import { TpmTrustError } from "../errors.js";
import { evaluateBaseline, parseBaseline, type PolicyResult } from "../policy/baseline.js";
import { evaluateCodeIntegrity, parseCodeIntegrityPolicy } from "../policy/code-integrity.js";
import { NAME, validate } from "../policy/schema.js";
import { SECUREBOOT_PCR, evaluateSecureBoot, parseSecureBootPolicy } from "../policy/secure-boot.js";
import { evaluateSoftware, parseSoftwarePolicy } from "../policy/software.js";
import { parseRuntimePolicy } from "../policy/runtime.js";
import type { Health, Host, Policy, PolicyHead, PolicyKind, PolicyVersion, Store } from "../store/index.js";
import { HARDWARE_CLASS_PATTERN } from "./hosts.js";
import type { Interpretation, VerifiedEventLog } from "../verify/eventlog/index.js";
import type { PolicyRef } from "../tokens/tokens.js";
import { IMA_PCR } from "../verify/ima/index.js";
import { bankOrder, verifyLogAgainstQuotes, type Selection } from "../verify/attestation.js";

/** What policies are judged on: the verified part of the event log and what it says. */
export interface Facts {
  log: VerifiedEventLog;
  interpretation: Interpretation;
}

interface Kind<D> {
  parse(doc: unknown): D;
  /** PCRs it needs quoted, and banks (a baseline's: the banks its hardware class measures) */
  needs(doc: D): { pcrs: number[]; banks: string[] };
  evaluate(doc: D, facts: Facts): PolicyResult;
}

const kind = <D>(k: Kind<D>): Kind<unknown> => k as Kind<unknown>;

/** Adding a kind is one entry here. */
export const POLICY_KINDS: Record<string, Kind<unknown>> = {
  baseline: kind({
    parse: parseBaseline,
    needs: (b) => ({ pcrs: Object.keys(b.pcrs).map(Number), banks: b.banks }),
    evaluate: (b, f) => evaluateBaseline(b, f.log),
  }),
  software: kind({
    parse: parseSoftwarePolicy,
    needs: (s) => ({ pcrs: [...s.bootloaders, ...s.kernels, ...s.initrds].map((i) => i.pcr), banks: [] }),
    evaluate: (s, f) => evaluateSoftware(s, f.log),
  }),
  ci: kind({
    parse: parseCodeIntegrityPolicy,
    needs: (c) => ({ pcrs: c.pcrs, banks: [] }),
    evaluate: (c, f) => evaluateCodeIntegrity(c, f.log),
  }),
  // judged by the ImaTracker (stateful, per boot) on the IMA list, not on the event log; the parsed
  // document is the compiled policy (digest sets built once per version)
  runtime: kind({
    parse: parseRuntimePolicy,
    needs: () => ({ pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 10], banks: [] }),
    evaluate: () => {
      throw new TpmTrustError("ERR_INTERNAL", "runtime policies are judged on the IMA list (ImaTracker), not on the event log");
    },
  }),
  secureboot: kind({
    parse: parseSecureBootPolicy,
    needs: () => ({ pcrs: [SECUREBOOT_PCR], banks: [] }),
    evaluate: (s, f) => evaluateSecureBoot(s, f.log, f.interpretation),
  }),
};

const DEFAULT_BANKS = ["sha256"];

function kindOf(k: string): Kind<unknown> {
  const h = POLICY_KINDS[k];
  if (!h) throw new TpmTrustError("ERR_VALIDATION", `unknown policy kind "${k}"; known: ${Object.keys(POLICY_KINDS).join(", ")}`);
  return h;
}

/** A policy version that applies to a host, with its parsed document. */
export interface HostPolicy extends PolicyHead {
  doc: unknown;
}

// A policy id names one immutable version: its parsed document can be kept.
const parsed = new Map<string, unknown>();
async function documentOf(store: Store, h: PolicyHead): Promise<unknown> {
  let d = parsed.get(h.id);
  if (d === undefined) {
    const p = await store.policies.getById(h.id);
    if (!p) throw new TpmTrustError("ERR_CONFLICT", `policy ${h.id} was removed while it was being used; try again`);
    d = kindOf(p.kind).parse(p.document);
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(h.id, d);
  }
  return d;
}

export const refOf = (p: PolicyHead): PolicyRef => ({ id: p.id, kind: p.kind, name: p.name, version: p.version });

// per store and hardware class: its policies as of a policies version (store.policies.version)
const byClass = new WeakMap<Store, Map<string, { version: number; policies: HostPolicy[] }>>();

/**
 * The policies a host is judged by. `version`: the policies version the caller read (e.g. with the
 * AK): the class's policies are kept per store and listed again only when it changed.
 */
export async function hostPolicies(store: Store, host: Pick<Host, "hardwareClass">, version?: number): Promise<HostPolicy[]> {
  let classes = byClass.get(store);
  const kept = version === undefined ? undefined : classes?.get(host.hardwareClass);
  if (kept && kept.version === version) return kept.policies;
  const heads = await store.policies.listHeads({ hardwareClass: host.hardwareClass });
  const policies = await Promise.all(heads.map(async (h) => ({ ...h, doc: await documentOf(store, h) })));
  if (version !== undefined) {
    if (!classes) byClass.set(store, (classes = new Map()));
    if (classes.size > 10_000) classes.clear();
    classes.set(host.hardwareClass, { version, policies });
  }
  return policies;
}

/** The PCRs the policies need (of every set tried), in every bank their baselines carry (sha256 when none names a bank), plus `extraBanks`. */
export function policySelection(policies: HostPolicy[], extraBanks: string[] = []): Selection {
  const pcrs = new Set<number>();
  const banks = new Set<string>();
  for (const p of policies) {
    const n = kindOf(p.kind).needs(p.doc);
    n.pcrs.forEach((x) => pcrs.add(x));
    n.banks.forEach((b) => banks.add(b));
  }
  if (banks.size === 0) DEFAULT_BANKS.forEach((b) => banks.add(b));
  extraBanks.forEach((b) => banks.add(b));
  const list = [...pcrs].sort((a, b) => a - b);
  return list.length ? [...banks].sort(bankOrder).map((bank) => ({ bank, pcrs: list })) : [];
}

/** One policy version's artifacts that apply to a host. */
export interface PolicySet {
  policyVersion: PolicyVersion;
  policies: HostPolicy[];
}

/**
 * The policy versions a host's EK artifact holds for: an EK trusted by its certificate satisfies
 * v2 and v1 alike; an EK admitted without one (allow-listed) only v1, and only on a host the
 * administrator registered as v1.
 */
function ekPolicyVersions(host: Pick<Host, "policyVersion" | "trustMethod">): PolicyVersion[] {
  if (host.trustMethod === "ek-cert") return host.policyVersion === "v2" ? ["v2", "v1"] : ["v1"];
  return host.policyVersion === "v1" ? ["v1"] : [];
}

/**
 * The policy sets a host is judged by, in the order HGS tries them (v2, then v1): for each version its
 * EK holds for, the class's artifacts of that version, if they include a baseline. ERR_NO_BASELINE when
 * the class has no baseline at all; ERR_POLICY_VERSION when none of its baselines is of a version the
 * host's EK holds for.
 */
export function policySets(host: Pick<Host, "name" | "hardwareClass" | "policyVersion" | "trustMethod">, policies: HostPolicy[]): PolicySet[] {
  const baselines = policies.filter((p) => p.kind === "baseline");
  if (baselines.length === 0) {
    throw new TpmTrustError("ERR_NO_BASELINE", `no baseline for class ${host.hardwareClass}: add one with tpmtrust policy add FILE --kind baseline --class ${host.hardwareClass}`, {
      hardwareClass: host.hardwareClass,
    });
  }
  const versions = ekPolicyVersions(host);
  const sets = versions.map((v) => ({ policyVersion: v, policies: policies.filter((p) => p.policyVersion === v) })).filter((s) => s.policies.some((p) => p.kind === "baseline"));
  if (sets.length === 0) {
    const have = [...new Set(baselines.map((b) => b.policyVersion))].join(", ");
    const ek = versions.length ? `its EK holds for ${versions.join(" and ")}` : `its EK was trusted by ${host.trustMethod ?? "no method"}, which v2 does not accept (v2 requires ek-cert; re-register it with --policy-version v1 to allow-list it)`;
    throw new TpmTrustError("ERR_POLICY_VERSION", `host ${host.name} has no policy set it can attest with: class ${host.hardwareClass} has baselines of policy version ${have}, but ${ek}`, {
      host: host.name,
      policyVersion: host.policyVersion,
      trustMethod: host.trustMethod,
      ekPolicyVersions: versions,
      baselines: baselines.map((b) => ({ id: b.id, name: b.name, policyVersion: b.policyVersion })),
    });
  }
  return sets;
}

export interface PolicyOutcome {
  policy: PolicyRef;
  pass: boolean;
  diffs: PolicyResult["diffs"];
}

/** evaluatePolicies step: every policy judged on the verified facts. */
export function evaluatePolicies(policies: HostPolicy[], facts: Facts): PolicyOutcome[] {
  return policies.map((p) => {
    const r = kindOf(p.kind).evaluate(p.doc, facts);
    return { policy: refOf(p), pass: r.pass, diffs: r.diffs };
  });
}

// ---- administration

export interface PolicyPreview {
  host: string;
  hardwareClass: string;
  health: Health;
  /** judged on the host's last verified evidence with the new policy in place; unknown without usable evidence */
  outcome: "pass" | "fail" | "unknown";
  /** the version whose set would pass */
  policyVersion?: PolicyVersion;
  /** a host not unhealthy today that would fail */
  turnsUnhealthy: boolean;
  reason: string;
}

/**
 * What adding `p` would do to the hosts it applies to, before anything changes: each host judged
 * (v2 set, then v1) with `p` as the newest version of its kind and name, on the PCR values and event
 * log of its last attestation whose quote verified and whose log replayed. A host without such
 * evidence, or whose evidence lacks a PCR the policies need, is "unknown".
 */
export async function previewPolicy(store: Store, p: NewPolicy): Promise<PolicyPreview[]> {
  const doc = kindOf(p.kind).parse(p.document);
  const hosts = await store.hosts.list(p.hardwareClass != null ? { hardwareClass: p.hardwareClass } : {});
  const out: PolicyPreview[] = [];
  for (const host of hosts) {
    if (p.kind === "runtime") {
      out.push({ host: host.name, hardwareClass: host.hardwareClass, health: host.health, outcome: "unknown", turnsUnhealthy: false, reason: "runtime policies are judged on the IMA list, which is not kept" });
      continue;
    }
    const current = await hostPolicies(store, host);
    const old = current.find((c) => c.kind === p.kind && c.name === p.name);
    const next: HostPolicy = { id: "(new)", kind: p.kind, name: p.name, version: (old?.version ?? 0) + 1, hardwareClass: p.hardwareClass ?? null, policyVersion: p.policyVersion ?? "v2", createdAt: 0, createdBy: null, disabledAt: null, doc } as HostPolicy;
    const policies = [...current.filter((c) => c !== old), next];
    const base = { host: host.name, hardwareClass: host.hardwareClass, health: host.health };
    const result = (outcome: PolicyPreview["outcome"], reason: string, policyVersion?: PolicyVersion): PolicyPreview => ({
      ...base,
      outcome,
      ...(policyVersion ? { policyVersion } : {}),
      turnsUnhealthy: outcome === "fail" && host.health !== "unhealthy",
      reason,
    });
    let sets: PolicySet[];
    try {
      sets = policySets(host, policies);
    } catch (e) {
      if (!(e instanceof TpmTrustError)) throw e;
      out.push(result("fail", `${e.code}: ${e.message}`));
      continue;
    }
    const ev = await store.hostEvidence.get(host.name);
    if (!ev) {
      out.push(result("unknown", "no verified evidence yet (it has not attested with a replaying event log)"));
      continue;
    }
    // runtime (IMA) policies are judged on the IMA list, not kept: the rest is judged, PCR 10 aside when they apply
    const logOnly = sets.map((x) => ({ ...x, policies: x.policies.filter((q) => q.kind !== "runtime") }));
    const ima = sets.some((x) => x.policies.some((q) => q.kind === "runtime"));
    const required = policySelection(logOnly.flatMap((x) => x.policies)).map((r) => (ima ? { ...r, pcrs: r.pcrs.filter((q) => q !== IMA_PCR) } : r));
    const missing = required.flatMap((sel) => sel.pcrs.filter((pcr) => !ev.pcrs[sel.bank]?.[pcr]).map((pcr) => `${sel.bank}:${pcr}`));
    if (missing.length) {
      out.push(result("unknown", `its last evidence did not quote ${missing.join(" ")}`));
      continue;
    }
    let facts: Facts;
    try {
      const r = verifyLogAgainstQuotes(ev.eventLog, ev.pcrs, required);
      facts = { log: r.log, interpretation: r.interpretation };
    } catch (e) {
      if (!(e instanceof TpmTrustError)) throw e;
      out.push(result("fail", `${e.code}: ${e.message}`));
      continue;
    }
    const failedBy: string[] = [];
    const passed = logOnly.find((set) => {
      const failed = evaluatePolicies(set.policies, facts).filter((o) => !o.pass);
      failedBy.push(`${set.policyVersion}: ${failed.map((o) => `${o.policy.kind} ${o.policy.name}`).join(", ")}`);
      return failed.length === 0;
    });
    out.push(passed ? result("pass", `passes by policy version ${passed.policyVersion}`, passed.policyVersion) : result("fail", `would fail ${failedBy.join("; ")}`));
  }
  return out;
}

export interface NewPolicy {
  kind: string;
  name: string;
  hardwareClass?: string | null;
  policyVersion?: PolicyVersion;
  document: unknown;
}

/** Validates a policy about to be added; a refusal is audited as a failed policy.add. */
async function checkNewPolicy(store: Store, actor: string, now: number, p: NewPolicy): Promise<void> {
  try {
    validate(NAME, p.name, "policy name");
    if (p.hardwareClass != null && !new RegExp(HARDWARE_CLASS_PATTERN).test(p.hardwareClass)) throw new TpmTrustError("ERR_VALIDATION", `hardware class ${JSON.stringify(p.hardwareClass)} does not match ${HARDWARE_CLASS_PATTERN}`);
    kindOf(p.kind).parse(p.document);
  } catch (e) {
    if (e instanceof TpmTrustError) {
      await store.audit.append({ actor, action: "policy.add", subject: `${p.kind}:${p.name}`, outcome: "failure", details: { code: e.code, reason: e.message }, at: now });
    }
    throw e;
  }
}

/** Validates the document for its kind, stores it as the next version of (kind, name), audits it. */
export async function addPolicy(store: Store, actor: string, now: number, p: NewPolicy): Promise<Policy> {
  await checkNewPolicy(store, actor, now, p);
  return store.transaction(async (tx) => {
    const stored = await tx.policies.put({ kind: p.kind, name: p.name, document: p.document, hardwareClass: p.hardwareClass ?? null, policyVersion: p.policyVersion ?? "v2", createdBy: actor, at: now });
    await tx.audit.append({
      actor,
      action: "policy.add",
      subject: `${p.kind}:${p.name}`,
      outcome: "success",
      details: { ...refOf(stored), hardwareClass: stored.hardwareClass, policyVersion: stored.policyVersion },
      at: now,
    });
    return stored;
  });
}

/** Disables every version of the policy that `id` is a version of; audited. */
export async function removePolicy(store: Store, actor: string, now: number, id: string): Promise<Policy> {
  const p = await store.policies.getById(id);
  if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `policy ${id} not found`);
  await store.transaction(async (tx) => {
    await tx.policies.setEnabled(p.kind, p.name, false, now);
    await tx.audit.append({ actor, action: "policy.remove", subject: `${p.kind}:${p.name}`, outcome: "success", details: refOf(p), at: now });
  });
  return p;
}

/** Enabled policies, newest version of each; `all`: every version, disabled ones too. */
export const listPolicies = (store: Store, o: { kind?: PolicyKind; hardwareClass?: string; all: boolean }): Promise<Policy[]> =>
  store.policies.list({ kind: o.kind, hardwareClass: o.hardwareClass, allVersions: o.all, includeDisabled: o.all });

/** One policy version with its document. */
export async function getPolicy(store: Store, id: string): Promise<Policy> {
  const p = await store.policies.getById(id);
  if (!p) throw new TpmTrustError("ERR_NOT_FOUND", `policy ${id} not found`);
  return p;
}
