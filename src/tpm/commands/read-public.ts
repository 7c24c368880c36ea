import { TPM_CC } from "../constants.js";
import type { TpmtPublic } from "../types.js";
import type { Command } from "./command.js";
import { readPublicRaw } from "./params.js";

/** Part 3 §12.4 TPM2_ReadPublic */
export interface ReadPublicRequest {
  objectHandle: number;
}

export interface ReadPublicResult {
  public: TpmtPublic;
  publicArea: Buffer;
  name: Buffer;
  qualifiedName: Buffer;
}

export const ReadPublic: Command<ReadPublicRequest, ReadPublicResult> = {
  name: "TPM2_ReadPublic",
  code: TPM_CC.ReadPublic,
  handles: (q) => [q.objectHandle],
  response: (r) => ({ ...readPublicRaw(r), name: r.tpm2b("name", 66), qualifiedName: r.tpm2b("qualifiedName", 66) }),
};
