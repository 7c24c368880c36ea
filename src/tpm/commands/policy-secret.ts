import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";
import { EMPTY, readTicket, type TpmtTicket } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §23.4 TPM2_PolicySecret: satisfies PolicySecret(authHandle) in the policy session. */
export interface PolicySecretRequest {
  authHandle: number;
  auth?: AuthSession;
  policySession: number;
  nonceTPM?: Uint8Array;
  cpHashA?: Uint8Array;
  policyRef?: Uint8Array;
  expiration?: number;
}

export const PolicySecret: Command<PolicySecretRequest, { timeout: Buffer; policyTicket: TpmtTicket }> = {
  name: "TPM2_PolicySecret",
  code: TPM_CC.PolicySecret,
  handles: (q) => [q.authHandle, q.policySession],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.tpm2b(q.nonceTPM ?? EMPTY).tpm2b(q.cpHashA ?? EMPTY).tpm2b(q.policyRef ?? EMPTY).u32(q.expiration ?? 0),
  response: (r) => ({ timeout: r.tpm2b("timeout", 8), policyTicket: readTicket(r, "policyTicket") }),
};
