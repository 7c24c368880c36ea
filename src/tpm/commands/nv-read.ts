import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §31.13 TPM2_NV_Read of one chunk (at most TPM_PT_NV_BUFFER_MAX bytes). */
export interface NvReadRequest {
  /** the index itself (AUTHREAD), TPM_RH_OWNER or TPM_RH_PLATFORM */
  authHandle: number;
  auth?: AuthSession;
  nvIndex: number;
  size: number;
  offset: number;
}

export const NV_Read: Command<NvReadRequest, Buffer> = {
  name: "TPM2_NV_Read",
  code: TPM_CC.NV_Read,
  parameterEncryption: { response: true },
  handles: (q) => [q.authHandle, q.nvIndex],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.u16(q.size).u16(q.offset),
  response: (r) => r.tpm2b("data", 2048),
};
