import { TpmTrustError } from "../../errors.js";
import { TPM_CC } from "../constants.js";
import { objectName } from "../structures.js";
import type { TpmtPublic } from "../types.js";
import type { Command } from "./command.js";
import { readPublicRaw } from "./params.js";

/** Part 3 §12.4 TPM2_ReadPublic. The returned Name must be the Name of the returned public area. */
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
  response: (r, _, q) => {
    const out = { ...readPublicRaw(r), name: r.tpm2b("name", 66), qualifiedName: r.tpm2b("qualifiedName", 66) };
    if (!objectName(out.public).equals(out.name)) throw new TpmTrustError("ERR_NAME_MISMATCH", `TPM2_ReadPublic(0x${q.objectHandle.toString(16)}): Name does not match the public area`);
    return out;
  },
};
