import { TPM_CC } from "../constants.js";
import { writeTpmtScheme } from "../structures.js";
import type { TpmtScheme } from "../types.js";
import type { Command } from "./command.js";
import { NULL_SCHEME, readAttest, type AttestResult } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §18.2 TPM2_Certify: `signHandle` attests that `objectHandle` is loaded in this TPM. */
export interface CertifyRequest {
  objectHandle: number;
  objectAuth?: AuthSession;
  signHandle: number;
  signAuth?: AuthSession;
  qualifyingData: Uint8Array;
  inScheme?: TpmtScheme;
}

export const Certify: Command<CertifyRequest, AttestResult> = {
  name: "TPM2_Certify",
  code: TPM_CC.Certify,
  handles: (q) => [q.objectHandle, q.signHandle],
  auths: (q) => [q.objectAuth ?? password(), q.signAuth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.qualifyingData);
    writeTpmtScheme(w, q.inScheme ?? NULL_SCHEME);
  },
  response: readAttest,
};
