/**
 * Continuous, incremental IMA verification. Per host and boot (the quote's resetCount) the database
 * keeps the running PCR 10 of every quoted bank after the last verified entry, the keys learned from
 * ima-buf entries and the failing entries found so far (table ima_state). An attestation carries only
 * the entries after that index (with the quote over PCR 10 that covers them): they must replay from
 * the running value to the quoted one, and each is judged by the host's runtime policies. The new
 * state is written in the transaction that records the verdict, only over the version it was read at,
 * so any service instance continues where another left off and a restart loses nothing. A new boot, a
 * new policy version or an increment that does not replay starts over from entry 0. A failing entry
 * keeps the host failing for the rest of that boot.
 *
 * Each instance caches the states it read or wrote (parsed, keys loaded), checked against the
 * row's version on every attestation: the row, not the cache, decides.
 */
import { randomUUID } from "node:crypto";
import { TpmTrustError, isTpmTrustError, type ErrorCode } from "../errors.js";
import type { PolicyDiff } from "../policy/baseline.js";
import { checkRuntimePolicy, type CompiledRuntimePolicy, type ImaFailure } from "../policy/runtime.js";
import type { ImaStateRecord, Store } from "../store/index.js";
import type { PcrValues } from "../verify/eventlog/types.js";
import { verifyImaAgainstQuotes } from "../verify/attestation.js";
import { checkBootAggregate, IMA_PCR, loadImaKey, parseImaList, type ImaKey } from "../verify/ima/index.js";
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

interface PolicyState {
  learnedKeys: ImaKey[];
  learnedBytes: Buffer[];
  failures: ImaFailure[];
  failed: number;
}

/** One host's verification in one boot. Never changed in place: a judgement makes a new one. */
interface HostState {
  resetCount: number;
  policies: string;
  nextIndex: number;
  pcr10: Record<string, Buffer>;
  perPolicy: Map<string, PolicyState>;
  lastFailure?: ImaFailure;
}

/** The stored state a judgement starts from: its version (null: the host has none). */
export interface ImaPrior {
  state?: HostState;
  version: string | null;
}

/** A new state to store with the verdict, over the version it was judged from. */
export interface ImaWrite {
  record: Omit<ImaStateRecord, "state"> & { state: string };
  expected: string | null;
  state: HostState;
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
  /** the state to store with the verdict (absent: unchanged) */
  write?: ImaWrite;
}

/** A host's IMA state as the host API and the dashboard show it. */
export interface ImaHostView {
  /** the boot (TPM resetCount) the state is of */
  resetCount: number;
  entriesVerified: number;
  /** the last entry verified in this boot (null: none yet) */
  lastVerifiedIndex: number | null;
  failures: number;
  lastFailure: ImaFailure | null;
  /** PCR 10 per bank after the verified entries (hex) */
  pcr10: Record<string, string>;
  updatedAt: number;
}

function imaDiff(f: ImaFailure): PolicyDiff {
  const [alg, hex] = f.digest.split(":");
  return { pcr: IMA_PCR, kind: "ima-entry", record: f.index, description: f.path, actual: { [alg]: hex }, meaning: f.reason, code: f.code };
}

function quotedPcr10(pcrs: PcrValues): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [bank, v] of Object.entries(pcrs)) if (v[IMA_PCR]) out[bank] = v[IMA_PCR];
  return out;
}

const listRequired = (fromIndex: number, why: string) => new TpmTrustError("ERR_IMA_LIST_REQUIRED", `${why}: send the IMA measurement list from entry ${fromIndex}`, { fromIndex });

const totalFailed = (s: HostState) => [...s.perPolicy.values()].reduce((n, p) => n + p.failed, 0);

/** The per-policy part of a state as stored: learned keys as measured (base64), kept failures, count. */
function stateJson(s: HostState): string {
  return JSON.stringify(Object.fromEntries([...s.perPolicy].map(([id, p]) => [id, { keys: p.learnedBytes.map((b) => b.toString("base64")), failures: p.failures, failed: p.failed }])));
}

function stateOf(r: ImaStateRecord, json: string): HostState {
  const doc = JSON.parse(json) as Record<string, { keys: string[]; failures: ImaFailure[]; failed: number }>;
  const perPolicy = new Map<string, PolicyState>();
  for (const [id, p] of Object.entries(doc)) {
    const learnedBytes = p.keys.map((k) => Buffer.from(k, "base64"));
    perPolicy.set(id, { learnedBytes, learnedKeys: learnedBytes.map((b) => loadImaKey(b)), failures: p.failures, failed: p.failed });
  }
  return { resetCount: r.resetCount, policies: r.policies, nextIndex: r.nextIndex, pcr10: r.pcr10, perPolicy, ...(r.lastFailure ? { lastFailure: r.lastFailure as ImaFailure } : {}) };
}

/** The entry a rejected list names (its index and path when the error has them) as a failure. */
function listFailure(e: TpmTrustError, startIndex: number): ImaFailure {
  const d = e.details ?? {};
  const index = typeof d.index === "number" ? d.index : typeof d.firstIndex === "number" ? d.firstIndex : startIndex;
  return { index, path: typeof d.path === "string" ? d.path : "", template: "", digest: "", code: e.code, reason: e.message };
}

export class ImaTracker {
  private readonly cache = new Map<string, { version: string; state: HostState }>();
  constructor(private readonly size = 100_000) {}

  /** The host's stored state, parsed only when it is not the version this instance holds. */
  async load(store: Store, host: string): Promise<ImaPrior> {
    const cached = this.cache.get(host);
    const r = await store.imaState.get(host, cached?.version);
    if (!r) {
      this.cache.delete(host);
      return { version: null };
    }
    if (r.state === null && cached) return { state: cached.state, version: r.version };
    const state = stateOf(r, r.state!);
    this.keep(host, r.version, state);
    return { state, version: r.version };
  }

  /** After the verdict's transaction committed: the written state is this instance's cached copy. */
  remember(host: string, w: ImaWrite): void {
    this.keep(host, w.record.version, w.state);
  }

  private keep(host: string, version: string, state: HostState): void {
    if (!this.cache.has(host) && this.cache.size >= this.size) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(host, { version, state });
  }

  /**
   * Verifies an increment against the verified (quoted) PCRs and judges it by the runtime policies,
   * from the stored state `prior` (left as it is). Throws ERR_IMA_LIST_REQUIRED (not a verdict) when
   * the increment does not continue what was verified in this boot; ERR_PARSE_* for a malformed list.
   */
  judge(host: string, prior: ImaPrior, boot: { resetCount: number }, pcrs: PcrValues, policies: HostPolicy[], inc: ImaIncrement | undefined, at: number): ImaJudgement {
    const policyKey = policies.map((p) => p.id).join(",");
    const s = prior.state && prior.state.resetCount === boot.resetCount && prior.state.policies === policyKey ? prior.state : undefined;
    const quoted = quotedPcr10(pcrs);
    if (!inc) {
      // nothing new: the quoted PCR 10 must still be where the last increment left it
      if (s && Object.keys(quoted).length && Object.entries(quoted).every(([b, v]) => s.pcr10[b]?.equals(v))) return this.result(s, policies, 0, []);
      throw listRequired(s?.nextIndex ?? 0, "no IMA entries were sent");
    }
    if (inc.startIndex > 0 && (!s || s.nextIndex !== inc.startIndex)) throw listRequired(s?.nextIndex ?? 0, `the IMA entries verified in this boot do not end at entry ${inc.startIndex}`);
    const fresh = (): HostState => ({ resetCount: boot.resetCount, policies: policyKey, nextIndex: 0, pcr10: {}, perPolicy: new Map(policies.map((p) => [p.id, { learnedKeys: [], learnedBytes: [], failures: [], failed: 0 }])) });
    const from = inc.startIndex === 0 || !s ? fresh() : s;
    const write = (next: HostState): ImaWrite => ({
      state: next,
      expected: prior.version,
      record: {
        hostName: host,
        resetCount: next.resetCount,
        policies: next.policies,
        nextIndex: next.nextIndex,
        pcr10: next.pcr10,
        failures: totalFailed(next),
        lastFailure: next.lastFailure ?? null,
        state: stateJson(next),
        version: randomUUID(),
        updatedAt: at,
      },
    });
    const list = parseImaList(inc.bytes, { startIndex: inc.startIndex });
    let facts;
    try {
      facts = verifyImaAgainstQuotes({ list, start: from.pcr10 }, pcrs);
    } catch (e) {
      if (!isTpmTrustError(e) || !e.code.startsWith("ERR_IMA_")) throw e;
      if (e.code === "ERR_IMA_REPLAY_MISMATCH" && inc.startIndex > 0) throw listRequired(0, `the IMA entries from ${inc.startIndex} do not replay from the verified PCR 10 to the quoted one`);
      // the list itself is rejected: this boot starts over, and the host shows why
      const reset = { ...fresh(), lastFailure: listFailure(e, inc.startIndex) };
      return { outcomes: [], failure: e, summary: { entriesVerified: 0, nextIndex: 0, covered: 0, failures: 0, lastFailure: reset.lastFailure, workarounds: [] }, write: write(reset) };
    }
    if (facts.covered === 0 && from === s) return this.result(s, policies, 0, facts.workarounds);
    // judged into copies: the prior state (maybe cached) stays as stored until the verdict commits
    const next: HostState = { ...from, perPolicy: new Map() };
    const covered = { entries: list.entries.slice(0, facts.covered), templateHashAlg: list.templateHashAlg };
    for (const p of policies) {
      const was = from.perPolicy.get(p.id) ?? { learnedKeys: [], learnedBytes: [], failures: [], failed: 0 };
      const ps: PolicyState = { learnedKeys: [...was.learnedKeys], learnedBytes: [...was.learnedBytes], failures: [...was.failures], failed: was.failed };
      const r = checkRuntimePolicy(p.doc as CompiledRuntimePolicy, covered, ps, { bootAggregate: (e) => checkBootAggregate(e, pcrs), templateHashesChecked: true });
      ps.failed += r.failures.length;
      for (const f of r.failures) {
        if (ps.failures.length < MAX_KEPT_FAILURES) ps.failures.push(f);
        next.lastFailure = f;
      }
      next.perPolicy.set(p.id, ps);
    }
    next.nextIndex = inc.startIndex + facts.covered;
    next.pcr10 = { ...from.pcr10, ...facts.pcr10 };
    return { ...this.result(next, policies, facts.covered, facts.workarounds), write: write(next) };
  }

  private result(s: HostState, policies: HostPolicy[], covered: number, workarounds: ImaSummary["workarounds"]): ImaJudgement {
    const outcomes = policies.map((p) => {
      const ps = s.perPolicy.get(p.id)!;
      return { policy: refOf(p), pass: ps.failed === 0, diffs: ps.failures.map(imaDiff) };
    });
    return { outcomes, summary: { entriesVerified: s.nextIndex, nextIndex: s.nextIndex, covered, failures: totalFailed(s), ...(s.lastFailure ? { lastFailure: s.lastFailure } : {}), workarounds } };
  }
}

/** ERR_IMA_LIST_REQUIRED for a verdict whose IMA state another attestation of the host replaced meanwhile (its transaction rolls back, the nonce stays unspent). */
export function imaStateMoved(host: string): TpmTrustError {
  return listRequired(0, `another attestation of ${host} moved its IMA verification on meanwhile`);
}

/** The code a failing runtime outcome gives the verdict: its first failing entry's. */
export function imaFailureCode(outcomes: PolicyOutcome[]): ErrorCode | undefined {
  for (const o of outcomes) for (const d of o.diffs) if (d.kind === "ima-entry" && d.code) return d.code as ErrorCode;
  return undefined;
}
