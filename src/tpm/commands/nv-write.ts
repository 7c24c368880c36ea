import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §31.7 TPM2_NV_Write of one chunk (at most TPM_PT_NV_BUFFER_MAX bytes). */
export interface NvWriteRequest {
  authHandle: number;
  auth?: AuthSession;
  nvIndex: number;
  data: Uint8Array;
  offset: number;
}

export const NV_Write: Command<NvWriteRequest, void> = {
  name: "TPM2_NV_Write",
  code: TPM_CC.NV_Write,
  parameterEncryption: { command: true },
  handles: (q) => [q.authHandle, q.nvIndex],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.tpm2b(q.data).u16(q.offset),
};
