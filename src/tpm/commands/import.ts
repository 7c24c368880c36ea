import { TPM_ALG, TPM_CC } from "../constants.js";
import { writeTpm2bPublic, writeTpmtSymDefObject } from "../structures.js";
import type { TpmtPublic, TpmtSymDefObject } from "../types.js";
import type { Command } from "./command.js";
import { EMPTY } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §13.3 TPM2_Import: returns the new TPM2B_PRIVATE contents, wrapped by the parent. */
export interface ImportRequest {
  parentHandle: number;
  auth?: AuthSession;
  encryptionKey?: Uint8Array;
  objectPublic: TpmtPublic;
  duplicate: Uint8Array;
  inSymSeed: Uint8Array;
  symmetricAlg?: TpmtSymDefObject;
}

export const Import: Command<ImportRequest, Buffer> = {
  name: "TPM2_Import",
  code: TPM_CC.Import,
  parameterEncryption: { command: true, response: true },
  handles: (q) => [q.parentHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.encryptionKey ?? EMPTY);
    writeTpm2bPublic(w, q.objectPublic);
    w.tpm2b(q.duplicate).tpm2b(q.inSymSeed);
    writeTpmtSymDefObject(w, q.symmetricAlg ?? { algorithm: TPM_ALG.NULL });
  },
  response: (r) => r.tpm2b("outPrivate", 4096),
};
