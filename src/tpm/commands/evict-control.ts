import { TPM_CC, TPM_RH } from "../constants.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/**
 * Part 3 §28.5 TPM2_EvictControl: makes a loaded object persistent at `persistentHandle`, or
 * removes a persistent object when `objectHandle` is that persistent handle.
 */
export interface EvictControlRequest {
  /** TPM_RH_OWNER (default) or TPM_RH_PLATFORM */
  authHandle?: number;
  auth?: AuthSession;
  objectHandle: number;
  persistentHandle: number;
}

export const EvictControl: Command<EvictControlRequest, void> = {
  name: "TPM2_EvictControl",
  code: TPM_CC.EvictControl,
  handles: (q) => [q.authHandle ?? TPM_RH.OWNER, q.objectHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.u32(q.persistentHandle),
};
