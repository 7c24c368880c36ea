import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";

/** Part 3 §23.19 TPM2_PolicyGetDigest */
export interface PolicyGetDigestRequest {
  policySession: number;
}

export const PolicyGetDigest: Command<PolicyGetDigestRequest, Buffer> = {
  name: "TPM2_PolicyGetDigest",
  code: TPM_CC.PolicyGetDigest,
  handles: (q) => [q.policySession],
  response: (r) => r.tpm2b("policyDigest", 64),
};
