import { TPM_CC } from "../constants.js";
import { readTpm2bNvPublic } from "../structures.js";
import type { TpmsNvPublic } from "../types.js";
import type { Command } from "./command.js";

/** Part 3 §31.6 TPM2_NV_ReadPublic */
export interface NvReadPublicRequest {
  nvIndex: number;
}

export const NV_ReadPublic: Command<NvReadPublicRequest, { nvPublic: TpmsNvPublic; name: Buffer }> = {
  name: "TPM2_NV_ReadPublic",
  code: TPM_CC.NV_ReadPublic,
  handles: (q) => [q.nvIndex],
  response: (r) => ({ nvPublic: readTpm2bNvPublic(r), name: r.tpm2b("nvName", 66) }),
};
