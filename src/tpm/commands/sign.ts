import { TPM_CC, TPM_RH, TPM_ST } from "../constants.js";
import { readTpmtSignature, writeTpmtScheme } from "../structures.js";
import type { TpmtScheme, TpmtSignature } from "../types.js";
import type { Command } from "./command.js";
import { EMPTY, NULL_SCHEME, writeTicket, type TpmtTicket } from "./params.js";
import { password, type AuthSession } from "./session.js";

/**
 * Part 3 §20.2 TPM2_Sign of a digest. Without `validation` a NULL hashcheck ticket is sent,
 * which a restricted key refuses (Part 3 §20.2.1).
 */
export interface SignRequest {
  keyHandle: number;
  auth?: AuthSession;
  digest: Uint8Array;
  inScheme?: TpmtScheme;
  validation?: TpmtTicket;
}

export const Sign: Command<SignRequest, TpmtSignature> = {
  name: "TPM2_Sign",
  code: TPM_CC.Sign,
  handles: (q) => [q.keyHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.digest);
    writeTpmtScheme(w, q.inScheme ?? NULL_SCHEME);
    writeTicket(w, q.validation ?? { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY });
  },
  response: (r) => readTpmtSignature(r),
};
