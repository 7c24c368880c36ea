/**
 * Continuous, incremental IMA verification. Per host and boot the service keeps the running PCR 10
 * of every quoted bank after the last verified entry, the keys learned from ima-buf entries and the
 * failing entries found so far. An attestation carries only the entries after that index (with the
 * quote over PCR 10 that covers them): they must replay from the running value to the quoted one,
 * and each is judged by the host's runtime policies. A new boot (resetCount/restartCount), a new
 * policy version or an increment that does not replay starts over from entry 0. A failing entry
 * keeps the host failing for the rest of that boot.
 *
 * State lives in this service instance's memory: another instance (or a restart) answers
 * ERR_IMA_LIST_REQUIRED with details.fromIndex 0, without spending the nonce, and the agent sends
 * the whole list once.
 */
import { TpmTrustError, isTpmTrustError, type ErrorCode } from "../errors.js";
import type { PolicyDiff } from "../policy/baseline.js";
import { checkRuntimePolicy, type CompiledRuntimePolicy, type ImaFailure, type RuntimeCheckState } from "../policy/runtime.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { verifyImaAgainstQuotes } from "../verify/attestation.js";
import { checkBootAggregate, IMA_PCR, parseImaList } from "../verify/ima/index.js";
import type { HostPolicy, PolicyOutcome } from "./policies.js";
import { refOf } from "./policies.js";

/** Failing entries kept per policy and boot (the count goes on). */
const MAX_KEPT_FAILURES = 100;

export interface ImaIncrement {
  /** index of the first entry sent */
  startIndex: number;
  /** the entries, in the binary (or ASCII) form the kernel writes */
  bytes: Buffer;
}

interface PolicyState extends RuntimeCheckState {
  failures: ImaFailure[];
  failed: number;
}

interface HostState {
  boot: string;
  policies: string;
  nextIndex: number;
  pcr10: Record<string, Buffer>;
  perPolicy: Map<string, PolicyState>;
  lastFailure?: ImaFailure;
}

export interface ImaSummary {
  /** entries verified in this boot (replayed and judged) */
  entriesVerified: number;
  /** the index the next increment starts at */
  nextIndex: number;
  /** entries of this increment the quote covered (later ones come with the next quote) */
  covered: number;
  /** failing entries in this boot */
  failures: number;
  lastFailure?: ImaFailure;
  workarounds: { name: string; bank: string; description: string }[];
}

export interface ImaJudgement {
  outcomes: PolicyOutcome[];
  /** the list itself was rejected (does not replay, wrong template hash, boot_aggregate) */
  failure?: TpmTrustError;
  summary: ImaSummary;
}

export function imaDiff(f: ImaFailure): PolicyDiff {
  const [alg, hex] = f.digest.split(":");
  return { pcr: IMA_PCR, kind: "ima-entry", record: f.index, description: f.path, actual: { [alg]: hex }, meaning: f.reason, code: f.code };
}

function quotedPcr10(pcrs: PcrValues): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [bank, v] of Object.entries(pcrs)) if (v[IMA_PCR]) out[bank] = v[IMA_PCR];
  return out;
}

const listRequired = (fromIndex: number, why: string) => new TpmTrustError("ERR_IMA_LIST_REQUIRED", `${why}: send the IMA measurement list from entry ${fromIndex}`, { fromIndex });

export class ImaTracker {
  private readonly hosts = new Map<string, HostState>();
  constructor(private readonly size = 100_000) {}

  /** The state this instance holds for a host (dashboard, tests). */
  state(host: string): { nextIndex: number; entriesVerified: number } | undefined {
    const s = this.hosts.get(host);
    return s && { nextIndex: s.nextIndex, entriesVerified: s.nextIndex };
  }

  /**
   * Verifies an increment against the verified (quoted) PCRs and judges it by the runtime policies.
   * Throws ERR_IMA_LIST_REQUIRED (not a verdict) when the increment does not continue what this
   * instance verified; ERR_PARSE_* for a malformed list.
   */
  judge(host: string, boot: { resetCount: number; restartCount: number }, pcrs: PcrValues, policies: HostPolicy[], inc: ImaIncrement | undefined): ImaJudgement {
    const bootKey = `${boot.resetCount}/${boot.restartCount}`;
    const policyKey = policies.map((p) => p.id).join(",");
    let s = this.hosts.get(host);
    if (s && (s.boot !== bootKey || s.policies !== policyKey)) {
      this.hosts.delete(host);
      s = undefined;
    }
    const quoted = quotedPcr10(pcrs);
    if (!inc) {
      // nothing new: the quoted PCR 10 must still be where the last increment left it
      if (s && Object.keys(quoted).length && Object.entries(quoted).every(([b, v]) => s!.pcr10[b]?.equals(v))) return this.result(s, policies, 0, []);
      throw listRequired(s?.nextIndex ?? 0, "no IMA entries were sent");
    }
    if (inc.startIndex > 0 && (!s || s.nextIndex !== inc.startIndex)) throw listRequired(s?.nextIndex ?? 0, `this service has not verified IMA entries up to ${inc.startIndex} in this boot`);
    if (inc.startIndex === 0 || !s) {
      s = { boot: bootKey, policies: policyKey, nextIndex: 0, pcr10: {}, perPolicy: new Map(policies.map((p) => [p.id, { learnedKeys: [], failures: [], failed: 0 }])) };
    }
    const list = parseImaList(inc.bytes, { startIndex: inc.startIndex });
    let facts;
    try {
      facts = verifyImaAgainstQuotes({ list, start: s.pcr10 }, pcrs);
    } catch (e) {
      if (!isTpmTrustError(e) || !e.code.startsWith("ERR_IMA_")) throw e;
      if (e.code === "ERR_IMA_REPLAY_MISMATCH" && inc.startIndex > 0) {
        this.hosts.delete(host);
        throw listRequired(0, `the IMA entries from ${inc.startIndex} do not replay from the verified PCR 10 to the quoted one`);
      }
      this.hosts.delete(host);
      return { outcomes: [], failure: e, summary: { entriesVerified: 0, nextIndex: 0, covered: 0, failures: 0, workarounds: [] } };
    }
    const covered = { entries: list.entries.slice(0, facts.covered), templateHashAlg: list.templateHashAlg };
    for (const p of policies) {
      const ps = s.perPolicy.get(p.id)!;
      const r = checkRuntimePolicy(p.doc as CompiledRuntimePolicy, covered, ps, { bootAggregate: (e) => checkBootAggregate(e, pcrs), templateHashesChecked: true });
      ps.failed += r.failures.length;
      for (const f of r.failures) {
        if (ps.failures.length < MAX_KEPT_FAILURES) ps.failures.push(f);
        s.lastFailure = f;
      }
    }
    s.nextIndex = inc.startIndex + facts.covered;
    s.pcr10 = { ...s.pcr10, ...facts.pcr10 };
    if (!this.hosts.has(host) && this.hosts.size >= this.size) this.hosts.delete(this.hosts.keys().next().value!);
    this.hosts.set(host, s);
    return this.result(s, policies, facts.covered, facts.workarounds);
  }

  private result(s: HostState, policies: HostPolicy[], covered: number, workarounds: ImaSummary["workarounds"]): ImaJudgement {
    const outcomes = policies.map((p) => {
      const ps = s.perPolicy.get(p.id)!;
      return { policy: refOf(p), pass: ps.failed === 0, diffs: ps.failures.map(imaDiff) };
    });
    const failures = [...s.perPolicy.values()].reduce((n, p) => n + p.failed, 0);
    return { outcomes, summary: { entriesVerified: s.nextIndex, nextIndex: s.nextIndex, covered, failures, ...(s.lastFailure ? { lastFailure: s.lastFailure } : {}), workarounds } };
  }
}

/** The code a failing runtime outcome gives the verdict: its first failing entry's. */
export function imaFailureCode(outcomes: PolicyOutcome[]): ErrorCode | undefined {
  for (const o of outcomes) for (const d of o.diffs) if (d.kind === "ima-entry" && d.code) return d.code as ErrorCode;
  return undefined;
}
