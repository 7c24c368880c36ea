import { TPM_CC } from "../constants.js";
import type { TpmsPcrSelection, TpmtPublic } from "../types.js";
import type { Command } from "./command.js";
import { readCreation, readPublicRaw, writeCreationParams, type CreationResult, type SensitiveCreate } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §12.1 TPM2_Create under a loaded parent. */
export interface CreateRequest {
  parentHandle: number;
  /** authorization of the parent (default: empty password) */
  auth?: AuthSession;
  inSensitive?: SensitiveCreate;
  inPublic: TpmtPublic;
  outsideInfo?: Uint8Array;
  creationPCR?: TpmsPcrSelection[];
}

export interface CreateResult extends CreationResult {
  /** TPM2B_PRIVATE contents (without the size) */
  private: Buffer;
}

export const Create: Command<CreateRequest, CreateResult> = {
  name: "TPM2_Create",
  code: TPM_CC.Create,
  parameterEncryption: { command: true, response: true },
  handles: (q) => [q.parentHandle],
  auths: (q) => [q.auth ?? password()],
  params: writeCreationParams,
  response: (r) => {
    const priv = r.tpm2b("outPrivate", 4096);
    return { private: priv, ...readPublicRaw(r), ...readCreation(r) };
  },
};
