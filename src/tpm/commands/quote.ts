import { TPM_CC } from "../constants.js";
import { writeTpmlPcrSelection, writeTpmtScheme } from "../structures.js";
import type { TpmsPcrSelection, TpmtScheme } from "../types.js";
import type { Command } from "./command.js";
import { NULL_SCHEME, readAttest, type AttestResult } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §18.4 TPM2_Quote. `inScheme` NULL (default) uses the key's own scheme. */
export interface QuoteRequest {
  signHandle: number;
  auth?: AuthSession;
  qualifyingData: Uint8Array;
  inScheme?: TpmtScheme;
  PCRselect: TpmsPcrSelection[];
}

export const Quote: Command<QuoteRequest, AttestResult> = {
  name: "TPM2_Quote",
  code: TPM_CC.Quote,
  handles: (q) => [q.signHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.qualifyingData);
    writeTpmtScheme(w, q.inScheme ?? NULL_SCHEME);
    writeTpmlPcrSelection(w, q.PCRselect);
  },
  response: readAttest,
};
