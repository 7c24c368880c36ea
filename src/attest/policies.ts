/**
 * Policies in the service: the kinds tpmtrust judges hosts by, which of them apply to a host, the
 * PCR selection they need quoted, and their administration (every change audited). A host is judged
 * by the newest enabled version of every policy of its hardware class and of every class-independent
 * policy; all of them must share the host's policy version (v1/v2).
 */
import { TpmTrustError } from "../errors.js";
import { evaluateBaseline, parseBaseline, type PolicyResult } from "../policy/baseline.js";
import { evaluateCodeIntegrity, parseCodeIntegrityPolicy } from "../policy/code-integrity.js";
import { NAME, validate } from "../policy/schema.js";
import { SECUREBOOT_PCR, evaluateSecureBoot, parseSecureBootPolicy } from "../policy/secure-boot.js";
import { evaluateSoftware, parseSoftwarePolicy } from "../policy/software.js";
import { parseRuntimePolicy } from "../policy/runtime.js";
import type { Host, Policy, PolicyHead, PolicyVersion, Store } from "../store/index.js";
import { HARDWARE_CLASS_PATTERN, requireSamePolicyVersion } from "./hosts.js";
import type { Interpretation, VerifiedEventLog } from "../verify/eventlog/index.js";
import type { PolicyRef } from "../tokens/tokens.js";
import { bankOrder, type Selection } from "../verify/attestation.js";

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

export const DEFAULT_BANKS = ["sha256"];

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

/** The policies a host is judged by. */
export async function hostPolicies(store: Store, host: Pick<Host, "hardwareClass">): Promise<HostPolicy[]> {
  const heads = await store.policies.listHeads({ hardwareClass: host.hardwareClass });
  return Promise.all(heads.map(async (h) => ({ ...h, doc: await documentOf(store, h) })));
}

/** The PCRs the policies need, in every bank their baselines carry (sha256 when none names a bank), plus `extraBanks`. */
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

/** ERR_POLICY_VERSION unless every policy shares the host's policy version; ERR_POLICY_FAILED without a baseline. */
export function checkPolicySet(host: Pick<Host, "name" | "hardwareClass" | "policyVersion" | "trustMethod">, policies: PolicyHead[]): void {
  requireSamePolicyVersion(host, policies);
  if (!policies.some((p) => p.kind === "baseline")) {
    throw new TpmTrustError("ERR_POLICY_FAILED", `no baseline applies to hardware class ${host.hardwareClass}: add one with tpmtrust policy add FILE --kind baseline --class ${host.hardwareClass}`, {
      hardwareClass: host.hardwareClass,
    });
  }
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

export interface NewPolicy {
  kind: string;
  name: string;
  hardwareClass?: string | null;
  policyVersion?: PolicyVersion;
  document: unknown;
}

/** Validates the document for its kind, stores it as the next version of (kind, name), audits it. */
export async function addPolicy(store: Store, actor: string, now: number, p: NewPolicy): Promise<Policy> {
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
