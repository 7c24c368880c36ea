import { TPM_ALG, TPM_CC, TPM_RH, TPM_SE } from "../constants.js";
import { digestSize, writeTpmtSymDefObject } from "../structures.js";
import type { TpmtSymDefObject } from "../types.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";
import { EMPTY } from "./params.js";
import { PolicySession } from "./session.js";

/** Part 3 §11.1 TPM2_StartAuthSession */
export interface StartAuthSessionRequest {
  /** the key the salt is encrypted to (default TPM_RH_NULL: unsalted) */
  tpmKey?: number;
  /** the entity whose authValue binds the session (default TPM_RH_NULL: unbound) */
  bind?: number;
  nonceCaller: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET contents (empty when unsalted) */
  encryptedSalt?: Uint8Array;
  /** TPM_SE */
  sessionType: number;
  symmetric?: TpmtSymDefObject;
  authHash: number;
}

export const StartAuthSession: Command<StartAuthSessionRequest, { handle: number; nonceTPM: Buffer }> = {
  name: "TPM2_StartAuthSession",
  code: TPM_CC.StartAuthSession,
  responseHandles: 1,
  handles: (q) => [q.tpmKey ?? TPM_RH.NULL, q.bind ?? TPM_RH.NULL],
  params: (q, w) => {
    w.tpm2b(q.nonceCaller).tpm2b(q.encryptedSalt ?? EMPTY).u8(q.sessionType);
    writeTpmtSymDefObject(w, q.symmetric ?? { algorithm: TPM_ALG.NULL });
    w.u16(q.authHash);
  },
  response: (r, [handle]) => ({ handle, nonceTPM: r.tpm2b("nonceTPM", 64) }),
};

/** An unbound, unsalted policy (or trial) session with symmetric NULL and `hashAlg` as its policy hash. */
export async function startPolicySession(tpm: TpmClient, opts: { hashAlg?: number; trial?: boolean; continueSession?: boolean } = {}): Promise<PolicySession> {
  const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
  const size = digestSize(hashAlg);
  const sessionType = opts.trial ? TPM_SE.TRIAL : TPM_SE.POLICY;
  const { handle, nonceTPM } = await tpm.run(StartAuthSession, { nonceCaller: tpm.random(size), sessionType, authHash: hashAlg });
  return new PolicySession(handle, hashAlg, nonceTPM, size, opts.continueSession ?? false);
}
