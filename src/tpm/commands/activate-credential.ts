import { TPM_CC } from "../constants.js";
import { writeTpm2bIdObject } from "../structures.js";
import type { TpmsIdObject } from "../types.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §12.5 TPM2_ActivateCredential: `activateHandle` is the credentialed object, `keyHandle` the EK. */
export interface ActivateCredentialRequest {
  activateHandle: number;
  activateAuth?: AuthSession;
  keyHandle: number;
  keyAuth?: AuthSession;
  credentialBlob: TpmsIdObject;
  secret: Uint8Array;
}

/** Returns certInfo, the decrypted credential. */
export const ActivateCredential: Command<ActivateCredentialRequest, Buffer> = {
  name: "TPM2_ActivateCredential",
  code: TPM_CC.ActivateCredential,
  parameterEncryption: { command: true, response: true },
  handles: (q) => [q.activateHandle, q.keyHandle],
  auths: (q) => [q.activateAuth ?? password(), q.keyAuth ?? password()],
  params: (q, w) => {
    writeTpm2bIdObject(w, q.credentialBlob);
    w.tpm2b(q.secret);
  },
  response: (r) => r.tpm2b("certInfo", 64),
};
