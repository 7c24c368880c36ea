import { TPM_CC } from "../constants.js";
import type { TpmsPcrSelection, TpmtPublic } from "../types.js";
import type { Command } from "./command.js";
import { readCreation, readPublicRaw, writeCreationParams, type CreationResult, type SensitiveCreate } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §24.1 TPM2_CreatePrimary under a hierarchy (TPM_RH_OWNER / ENDORSEMENT / PLATFORM / NULL). */
export interface CreatePrimaryRequest {
  primaryHandle: number;
  /** authorization of the hierarchy (default: empty password) */
  auth?: AuthSession;
  inSensitive?: SensitiveCreate;
  inPublic: TpmtPublic;
  outsideInfo?: Uint8Array;
  creationPCR?: TpmsPcrSelection[];
}

export interface CreatePrimaryResult extends CreationResult {
  handle: number;
  name: Buffer;
}

export const CreatePrimary: Command<CreatePrimaryRequest, CreatePrimaryResult> = {
  name: "TPM2_CreatePrimary",
  code: TPM_CC.CreatePrimary,
  parameterEncryption: { command: true },
  responseHandles: 1,
  handles: (q) => [q.primaryHandle],
  auths: (q) => [q.auth ?? password()],
  params: writeCreationParams,
  response: (r, [handle]) => {
    const pub = readPublicRaw(r);
    const creation = readCreation(r);
    return { handle, ...pub, ...creation, name: r.tpm2b("name", 66) };
  },
};
