/**
 * Which of a template's trust models a TPM satisfies now, judged by the service's EK trust
 * (src/trust/trust.ts) against the current configuration. The TPM is a registered host (its EKs; a
 * disabled host: ERR_DISABLED), or an EK a Windows request sent in its EK info (MS-WCCE
 * 3.2.2.6.2.1.2.5 step 3: the EK certificates it carries, the EKpub against the allow-list):
 * - `ek-key`: the EK hash of one of the host's registered EKs (or of the sent EK) is allow-listed;
 * - `ek-cert`: one of the host's stored EK certificates (or of the sent ones) chains to EKROOT (via EKCA) at `now`;
 * - `user-credentials`: an authenticated requester with the enroller role, admitted by the template,
 *   vouches for the TPM (AD CS: the enrolling user's domain credentials); admin and auditor tokens never vouch.
 */
import { createHash } from "node:crypto";
import type { PublicKeyInput } from "../crypto/keys.js";
import type { ErrorCode } from "../errors.js";
import { requireEnabled } from "../trust/host-trust.js";
import { evaluateEk } from "../trust/trust.js";
import type { Store } from "../store/index.js";
import { decodeTpmtPublic } from "../tpm/structures.js";
import type { HardwareKeyInfo } from "../verify/ek-info.js";
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

/** The TPM judged: a registered host by name, or the EK a request sent. */
export type TpmSubject = { host: string } | { ek: HardwareKeyInfo };

export async function evaluateTrustModels(store: Store, tpm: TpmSubject, models: readonly TrustModel[], o: { userVouched: boolean; now: number }): Promise<TrustModelResult> {
  let eks: { public: PublicKeyInput; certs: Buffer[] }[];
  let who: string;
  if ("host" in tpm) {
    const host = await store.hosts.get(tpm.host);
    if (host) requireEnabled(host);
    eks = (host?.eks ?? []).map((ek) => ({ public: decodeTpmtPublic(ek.public), certs: ek.cert ? [ek.cert] : [] }));
    who = `host ${tpm.host}`;
  } else {
    eks = [{ public: tpm.ek.publicKey, certs: tpm.ek.certificates }];
    who = "the request's EK info";
  }
  const outcomes: TrustModelResult["outcomes"] = {};
  const ekHashes: string[] = [];
  const ekCertHashes: string[] = [];
  const best: Record<"ek-key" | "ek-cert", ModelOutcome | undefined> = { "ek-key": undefined, "ek-cert": undefined };
  for (const ek of eks) {
    const d = await evaluateEk(store, { ekPublic: ek.public, ekCerts: ek.certs }, new Date(o.now));
    if (d.ekHash) ekHashes.push(d.ekHash);
    for (const c of ek.certs) ekCertHashes.push(createHash("sha256").update(c).digest("hex"));
    for (const m of ["ek-key", "ek-cert"] as const) {
      const r = d.methods[m];
      if (!best[m]?.passed) best[m] = { passed: r.passed, reason: r.reason, ...(r.code ? { code: r.code } : {}) };
    }
  }
  for (const m of models) {
    if (m === "user-credentials") {
      outcomes[m] = o.userVouched ? { passed: true, reason: "an enroller made the request and vouches for the TPM" } : { passed: false, code: "ERR_UNAUTHENTICATED", reason: "the request carries no enroller token to vouch for the TPM" };
    } else {
      outcomes[m] = best[m] ?? { passed: false, code: "ERR_EK_NOT_TRUSTED", reason: `${who} has no EK` };
    }
  }
  return { passed: TRUST_MODELS.filter((m) => models.includes(m) && outcomes[m]?.passed), outcomes, ekHashes, ekCertHashes };
}
