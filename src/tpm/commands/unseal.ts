import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §12.7 TPM2_Unseal: the data of a loaded sealed data object. */
export interface UnsealRequest {
  itemHandle: number;
  auth?: AuthSession;
}

export const Unseal: Command<UnsealRequest, Buffer> = {
  name: "TPM2_Unseal",
  code: TPM_CC.Unseal,
  parameterEncryption: { response: true },
  handles: (q) => [q.itemHandle],
  auths: (q) => [q.auth ?? password()],
  response: (r) => r.tpm2b("outData", 128),
};
