/**
 * Host attestation, as the protocol reads:
 *   issueChallenge → receiveEvidence → verifyQuoteSet → verifyLogAgainstQuotes → evaluatePolicies → signToken → recordVerdict (consumes the nonce)
 * (the pure checks are src/verify/attestation.ts, the same the offline `tpmtrust verify quote` runs;
 * verifyLogAgainstQuotes + evaluatePolicies of a boot already judged are looked up: see judge.ts)
 *
 * What is recorded as the host's verdict: only evidence proven to come from the host's TPM, i.e.
 * quotes whose signature by the bound AK over the fresh nonce verified. Anything else (unknown AK,
 * bad signature, wrong/reused/expired nonce, malformed structures) is rejected and audited but
 * changes nothing about the host, so nobody can make a healthy host unhealthy by sending junk.
 */
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import type { PolicyVersion, Store } from "../store/index.js";
import { boundAk, NONCE_PURPOSE, type AttestedHost } from "./challenge.js";
import type { AttestConfig } from "./config.js";
import { receiveEvidence, type EvidenceBody } from "./evidence.js";
import type { HealthChange } from "./health.js";
import type { Judgement, JudgementCache } from "./judge.js";
import type { QuoteVerifier } from "./quote-verifier.js";
import { imaFailureCode, type ImaSummary, type ImaTracker, type ImaWrite } from "./ima.js";
import { hostPolicies, policySelection, policySets, refOf, type PolicyOutcome, type PolicySet } from "./policies.js";
import { requireHostTrusted } from "../trust/host-trust.js";
import { recordVerdict } from "./record-verdict.js";
import { signToken, type PolicyRef } from "../tokens/tokens.js";
import { withoutImaPcr } from "../verify/attestation.js";

export interface AttestDeps {
  store: Store;
  cfg: AttestConfig;
  now: () => number;
  /** replayLog + evaluatePolicies results of unchanged boots */
  judgements: JudgementCache;
  /** verifyQuoteSet, on worker threads or inline */
  quotes: QuoteVerifier;
  /** IMA state per host and boot (stored with each verdict; cached per instance) */
  ima: ImaTracker;
  /** called after a verdict changed a host's health (e.g. to deliver webhooks at once) */
  onHealthChange?: (c: HealthChange) => void;
}

export interface AttestationResult {
  attestationId: string;
  verdict: "pass" | "fail";
  code: string | null;
  message?: string;
  host: string;
  hardwareClass: string;
  /** the policy version whose set passed (null when none did) */
  policyVersion: PolicyVersion | null;
  policies: PolicyRef[];
  pcrDigestHex?: string;
  token?: string;
  tokenExpiresAt?: number;
  /** per failed policy (or the failed check): what differed and what it means */
  diff?: unknown;
  explainedPcrs: { bank: string; pcr: number }[];
  unexplainedPcrs: { bank: string; pcr: number; reason: string }[];
  workarounds: { name: string; bank: string; pcr: number; description: string }[];
  /** IMA progress of this boot, when runtime policies apply */
  ima?: ImaSummary;
}

/** Failures of evidence that the TPM did sign over the fresh nonce: these are the host's verdict. */
const HOST_FAILURES = new Set(["ERR_PCR_DIGEST_MISMATCH", "ERR_PCR_SELECTION_MISMATCH", "ERR_QUOTES_INCONSISTENT"]);

async function audited<T>(store: Store, at: number, actor: string, subject: string | null, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const code = isTpmTrustError(e) ? e.code : "ERR_INTERNAL";
    await store.audit.append({ actor, action: "attestation.reject", subject, outcome: "failure", details: { code, reason: (e as Error).message }, at });
    throw e;
  }
}

/** Why the host may no longer pass (disabled, EK no longer trusted under its policy version), if it may not. */
async function trustWithdrawn(store: Store, host: AttestedHost, at: number, trustVersion: number): Promise<TpmTrustError | undefined> {
  try {
    await requireHostTrusted(store, host, at, trustVersion);
    return undefined;
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    return e;
  }
}

export async function attest(d: AttestDeps, body: EvidenceBody): Promise<AttestationResult> {
  const at = d.now();
  const akHex = body.akNameHex.toLowerCase();
  const ev = await audited(d.store, at, "anonymous", akHex, async () => receiveEvidence(body));
  const bound = await audited(d.store, at, "anonymous", akHex, () => boundAk(d.store, ev.akName));
  const host = bound.host;
  const actor = `host:${host.name}`;
  const policies = await hostPolicies(d.store, host, bound.versions.policies);
  let sets: PolicySet[] = [];
  let noSet: TpmTrustError | undefined;
  try {
    sets = policySets(host, policies);
  } catch (e) {
    if (!isTpmTrustError(e)) throw e;
    noSet = e;
  }
  const required = policySelection(sets.length ? sets.flatMap((s) => s.policies) : policies);

  let failure: TpmTrustError | undefined;
  const quoted = await audited(d.store, at, actor, host.name, async () => {
    try {
      return await d.quotes.verify({ akName: bound.ak.name, akPublic: bound.ak.public, quotes: ev.quotes, nonce: ev.nonce, pcrs: ev.pcrs, required });
    } catch (e) {
      if (isTpmTrustError(e) && HOST_FAILURES.has(e.code)) {
        failure = e;
        return undefined;
      }
      throw e;
    }
  });
  // trust withdrawn since the host was registered (a root, an allow-list entry, the host disabled)
  // is the host's verdict once its TPM has answered: unhealthy, tokens revoked, webhook sent
  const withdrawn = await trustWithdrawn(d.store, host, at, bound.versions.trust);
  if (withdrawn) failure = withdrawn;
  failure ??= noSet;
  // HGS: the v2 set first, then v1; the first set every policy of which holds is the one that passed
  let passed: PolicySet | undefined;
  const failedOutcomes: (PolicyOutcome & { policyVersion: string })[] = [];
  let judged: Judgement | undefined;
  let ima: ImaSummary | undefined;
  let imaWrite: ImaWrite | undefined;
  const runtime = [...new Map(sets.flatMap((s) => s.policies).filter((p) => p.kind === "runtime").map((p) => [p.id, p])).values()];
  if (quoted && !failure) {
    try {
      // PCR 10 is IMA's: the firmware's event log does not explain it, the IMA list does
      const { pcrs: logPcrs, required: logRequired } = runtime.length ? withoutImaPcr(quoted.pcrs, required) : { pcrs: quoted.pcrs, required };
      const judgeLog = (set: PolicySet) => d.judgements.judge({ bytes: ev.eventLog, sha256: ev.eventLogSha256 }, logPcrs, logRequired, set.policies.filter((p) => p.kind !== "runtime"));
      // the first set's log judgement before IMA's state moves on (ERR_EVENTLOG_REQUIRED leaves it as it was)
      const first = sets.length ? judgeLog(sets[0]) : undefined;
      // runtime (IMA) policies are no HGS artifact: judged once, each counting in the sets that hold it
      let imaOutcomes: PolicyOutcome[] = [];
      if (runtime.length) {
        const j = d.ima.judge(host.name, await d.ima.load(d.store, host.name), quoted.boot, quoted.pcrs, runtime, ev.ima, at);
        ima = j.summary;
        imaWrite = j.write;
        if (j.failure) failure = j.failure;
        imaOutcomes = j.outcomes;
      }
      for (const [i, set] of sets.entries()) {
        const log = i === 0 ? first! : judgeLog(set);
        const j: Judgement = { ...log, outcomes: [...log.outcomes, ...imaOutcomes.filter((o) => set.policies.some((p) => p.id === o.policy.id))] };
        judged ??= j;
        const failed = j.outcomes.filter((o) => !o.pass);
        if (failed.length === 0 && !failure) {
          passed = set;
          judged = j;
          break;
        }
        failedOutcomes.push(...failed.map((o) => ({ ...o, policyVersion: set.policyVersion })));
      }
      if (!passed && !failure) {
        const onlyRuntime = failedOutcomes.length > 0 && failedOutcomes.every((o) => o.policy.kind === "runtime");
        const by = sets.map((s) => `${s.policyVersion}: ${failedOutcomes.filter((o) => o.policyVersion === s.policyVersion).map((o) => `${o.policy.kind} ${o.policy.name}`).join(", ")}`);
        failure = new TpmTrustError((onlyRuntime && imaFailureCode(failedOutcomes)) || "ERR_POLICY_FAILED", `the host does not satisfy the policies of any policy version it may attest with (${by.join("; ")})`);
      }
    } catch (e) {
      if (!isTpmTrustError(e) || e.code === "ERR_INTERNAL") throw e;
      if (e.code === "ERR_EVENTLOG_REQUIRED" || e.code === "ERR_IMA_LIST_REQUIRED") {
        // not a verdict: the nonce stays unspent for the retry with the log
        await d.store.audit.append({ actor, action: "attestation.reject", subject: host.name, outcome: "failure", details: { code: e.code, reason: e.message }, at });
        throw e;
      }
      failure = e;
    }
  }
  const refs = (passed ? passed.policies : sets.length ? sets.flatMap((s) => s.policies) : policies).map(refOf);
  const policyVersion = passed?.policyVersion ?? null;

  const verdict = failure ? "fail" : "pass";
  const diff = failure
    ? failedOutcomes.length && (failure.code === "ERR_POLICY_FAILED" || failure.code.startsWith("ERR_IMA_"))
      ? failedOutcomes.map((o) => ({ ...o.policy, policyVersion: o.policyVersion, diffs: o.diffs }))
      : [{ check: failure.code, message: failure.message, ...(failure.details ?? {}) }]
    : undefined;
  const token =
    verdict === "pass" && quoted && policyVersion
      ? await signToken(d.store, d.cfg, at, { host: host.name, hardwareClass: host.hardwareClass, policyVersion, policies: refs, pcrDigestHex: quoted.pcrDigest.toString("hex") })
      : undefined;
  const explainedPcrs = judged?.explained ?? [];
  const unexplainedPcrs = judged?.unexplained ?? [];
  const workarounds = judged?.workarounds ?? [];
  // the nonce is consumed in the transaction that records the verdict, only after the quotes
  // verified (a forged answer cannot use up the host's nonce): a reused nonce records nothing
  const { attestation, change } = await audited(d.store, at, actor, host.name, () =>
    recordVerdict(d.store, d.cfg, at, {
      nonce: { value: ev.nonce, purpose: NONCE_PURPOSE, subject: akHex },
      host,
    akName: ev.akName,
    verdict,
    code: failure?.code ?? null,
    message: failure?.message,
    pcrDigest: quoted?.pcrDigest,
    diff,
    policies: refs,
      details: { boot: quoted?.boot ?? null, policyVersion, policyVersionsTried: sets.map((x) => x.policyVersion), explainedPcrs, unexplainedPcrs, workarounds, ...(ima ? { ima } : {}) },
      token,
      ...(imaWrite ? { ima: { record: imaWrite.record, expected: imaWrite.expected } } : {}),
      // what a policy about to be added is judged on (tpmtrust policy add --dry-run): evidence whose log replayed
      ...(quoted && judged ? { evidence: { hostName: host.name, at, pcrs: quoted.pcrs, ...(ev.eventLog ? { eventLog: ev.eventLog } : {}), ...(ev.eventLogSha256 ? { eventLogSha256: ev.eventLogSha256 } : {}) } } : {}),
    }),
  );
  if (imaWrite) d.ima.remember(host.name, imaWrite);
  if (change) d.onHealthChange?.(change);
  return {
    attestationId: attestation.id,
    verdict,
    code: failure?.code ?? null,
    ...(failure ? { message: failure.message } : {}),
    host: host.name,
    hardwareClass: host.hardwareClass,
    policyVersion,
    policies: refs,
    ...(quoted ? { pcrDigestHex: quoted.pcrDigest.toString("hex") } : {}),
    ...(token ? { token: token.jwt, tokenExpiresAt: token.expiresAt } : {}),
    ...(diff ? { diff } : {}),
    explainedPcrs,
    unexplainedPcrs,
    workarounds,
    ...(ima ? { ima } : {}),
  };
}
