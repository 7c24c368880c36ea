import { TPM_CC } from "../constants.js";
import { writeTpm2bPublic } from "../structures.js";
import type { TpmtPublic } from "../types.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §12.2 TPM2_Load */
export interface LoadRequest {
  parentHandle: number;
  auth?: AuthSession;
  /** TPM2B_PRIVATE contents */
  inPrivate: Uint8Array;
  inPublic: TpmtPublic;
}

export const Load: Command<LoadRequest, { handle: number; name: Buffer }> = {
  name: "TPM2_Load",
  code: TPM_CC.Load,
  parameterEncryption: { command: true },
  responseHandles: 1,
  handles: (q) => [q.parentHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.inPrivate);
    writeTpm2bPublic(w, q.inPublic);
  },
  response: (r, [handle]) => ({ handle, name: r.tpm2b("name", 66) }),
};
