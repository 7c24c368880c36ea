/**
 * issueChallenge step: a single-use, expiring nonce bound to the AK that must sign the quote (and so
 * to its host), stored in the database so that any service instance can accept the answer, plus the
 * PCR selection the host's policies need.
 */
import { TpmTrustError } from "../errors.js";
import type { Ak, ConfigVersions, Host, Store } from "../store/index.js";
import type { AttestConfig } from "./config.js";
import { countFromSource, type SourceLimit } from "./limits.js";
import { hostPolicies, policySelection, policySets, type HostPolicy } from "./policies.js";
import { bankAlg, type Selection } from "../verify/attestation.js";

export const NONCE_PURPOSE = "attestation";

export interface Challenge {
  nonce: Buffer;
  expiresAt: number;
  pcrSelection: Selection;
}

/** A host as attestation needs it (without its EKs). */
export type AttestedHost = Omit<Host, "eks">;

/** The bound AK with this Name, its host, and the trust and policy versions; ERR_AK_NOT_BOUND otherwise. */
export async function boundAk(store: Store, akName: Buffer): Promise<{ ak: Ak; host: AttestedHost; versions: ConfigVersions }> {
  const found = await store.aks.getWithHost(akName);
  if (!found) throw new TpmTrustError("ERR_AK_NOT_BOUND", `AK ${akName.toString("hex")} is not bound to a registered host: activate it first (tpmtrust agent activate)`, { akName: akName.toString("hex") });
  return found;
}

/**
 * `banks`: the PCR banks the host's TPM reports (TPM2_GetCapability TPM_CAP_PCRS). The selection is
 * the PCRs of every policy set the host may attest with (v2 and v1) in every bank the host's baselines carry plus these; only the baselines'
 * banks are required of the answer, since what a host reports about itself proves nothing.
 * `source`: the client address, limited to `cfg.challengeLimit` challenges per window (limits.ts),
 * counted before anything else so that a flood for unknown AKs is bounded too.
 */
export async function issueChallenge(store: Store, cfg: AttestConfig, now: number, o: { akName: Buffer; banks?: string[]; source: string }): Promise<Challenge & { host: string }> {
  const subject = o.akName.toString("hex");
  const limit: SourceLimit = { source: o.source, limit: cfg.challengeLimit, windowMs: cfg.limitWindowMs };
  await countFromSource(store, "challenge", limit, { action: "attestation.challenge", subject, at: now });
  let host: AttestedHost;
  let versions: ConfigVersions;
  try {
    ({ host, versions } = await boundAk(store, o.akName));
  } catch (e) {
    const code = (e as TpmTrustError).code;
    await store.audit.append({ actor: "anonymous", action: "attestation.challenge", subject, outcome: "failure", details: { code }, at: now });
    throw e;
  }
  const policies = await hostPolicies(store, host, versions.policies);
  let judgedBy: HostPolicy[];
  try {
    judgedBy = policySets(host, policies).flatMap((s) => s.policies);
  } catch (e) {
    const code = (e as TpmTrustError).code;
    // without a baseline there is nothing to quote: say so instead of an empty PCR selection
    if (code === "ERR_NO_BASELINE") {
      await store.audit.append({ actor: `host:${host.name}`, action: "attestation.challenge", subject, outcome: "failure", details: { code, reason: (e as Error).message }, at: now });
      throw e;
    }
    // no usable policy version: the attestation is judged (and fails) on every policy's PCRs
    judgedBy = policies;
  }
  const reported = (o.banks ?? []).filter((b) => bankAlg(b) !== undefined);
  const pcrSelection = policySelection(judgedBy, reported);
  const n = await store.nonces.issue({ purpose: NONCE_PURPOSE, subject, ttlMs: cfg.nonceTtlMs, at: now });
  return { nonce: n.value, expiresAt: n.expiresAt, pcrSelection, host: host.name };
}
