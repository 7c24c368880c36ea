/**
 * Which of a template's trust models a host's TPM satisfies now, judged by the service's EK trust
 * (src/trust/trust.ts) against the current configuration (a disabled host: ERR_DISABLED):
 * - `ek-key`: the EK hash of one of the host's registered EKs is allow-listed;
 * - `ek-cert`: one of the host's stored EK certificates chains to EKROOT (via EKCA) at `now`;
 * - `user-credentials`: an authenticated requester with the enroller role, admitted by the template,
 *   vouches for the TPM (AD CS: the enrolling user's domain credentials); admin and auditor tokens never vouch.
 */
import { createHash } from "node:crypto";
import type { ErrorCode } from "../errors.js";
import { requireEnabled } from "../trust/host-trust.js";
import { evaluateEk } from "../trust/trust.js";
import type { Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import { TRUST_MODELS, type TrustModel } from "./oids.js";

export interface ModelOutcome {
  passed: boolean;
  code?: ErrorCode;
  reason: string;
}

export interface TrustModelResult {
  /** the template's models that passed, strongest first */
  passed: TrustModel[];
  outcomes: Partial<Record<TrustModel, ModelOutcome>>;
  /** EK hashes of the host's EKs, and SHA-256 of their stored certificates (kept with the certificate, like AD CS) */
  ekHashes: string[];
  ekCertHashes: string[];
}

export async function evaluateTrustModels(store: Store, hostName: string, models: readonly TrustModel[], o: { userVouched: boolean; now: number }): Promise<TrustModelResult> {
  const host = await store.hosts.get(hostName);
  if (host) requireEnabled(host);
  const outcomes: TrustModelResult["outcomes"] = {};
  const ekHashes: string[] = [];
  const ekCertHashes: string[] = [];
  const best: Record<"ek-key" | "ek-cert", ModelOutcome | undefined> = { "ek-key": undefined, "ek-cert": undefined };
  for (const ek of host?.eks ?? []) {
    const d = await evaluateEk(store, { ekPublic: decodeTpmtPublic(ek.public), ekCerts: ek.cert ? [ek.cert] : [] }, new Date(o.now));
    if (d.ekHash) ekHashes.push(d.ekHash);
    if (ek.cert) ekCertHashes.push(createHash("sha256").update(ek.cert).digest("hex"));
    for (const m of ["ek-key", "ek-cert"] as const) {
      const r = d.methods[m];
      if (!best[m]?.passed) best[m] = { passed: r.passed, reason: r.reason, ...(r.code ? { code: r.code } : {}) };
    }
  }
  for (const m of models) {
    if (m === "user-credentials") {
      outcomes[m] = o.userVouched ? { passed: true, reason: "an enroller made the request and vouches for the TPM" } : { passed: false, code: "ERR_UNAUTHENTICATED", reason: "the request carries no enroller token to vouch for the TPM" };
    } else {
      outcomes[m] = best[m] ?? { passed: false, code: "ERR_EK_NOT_TRUSTED", reason: `host ${hostName} has no registered EK` };
    }
  }
  return { passed: TRUST_MODELS.filter((m) => models.includes(m) && outcomes[m]?.passed), outcomes, ekHashes, ekCertHashes };
}
