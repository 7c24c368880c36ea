import { TPM_CC } from "../constants.js";
import { writeTpmtScheme } from "../structures.js";
import type { TpmtScheme } from "../types.js";
import type { Command } from "./command.js";
import { NULL_SCHEME, readAttest, writeTicket, type AttestResult, type TpmtTicket } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §18.3 TPM2_CertifyCreation: binds `objectHandle` to the creation data behind `creationHash`. */
export interface CertifyCreationRequest {
  signHandle: number;
  auth?: AuthSession;
  objectHandle: number;
  qualifyingData: Uint8Array;
  creationHash: Uint8Array;
  inScheme?: TpmtScheme;
  creationTicket: TpmtTicket;
}

export const CertifyCreation: Command<CertifyCreationRequest, AttestResult> = {
  name: "TPM2_CertifyCreation",
  code: TPM_CC.CertifyCreation,
  handles: (q) => [q.signHandle, q.objectHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.qualifyingData).tpm2b(q.creationHash);
    writeTpmtScheme(w, q.inScheme ?? NULL_SCHEME);
    writeTicket(w, q.creationTicket);
  },
  response: readAttest,
};
