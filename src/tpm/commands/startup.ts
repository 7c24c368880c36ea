import { TPM_CC } from "../constants.js";
import { TpmRcError } from "../rc.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";

/** Part 3 §9.3 TPM2_Startup */
export interface StartupRequest {
  startupType: "clear" | "state";
}

export const Startup: Command<StartupRequest, void> = {
  name: "TPM2_Startup",
  code: TPM_CC.Startup,
  params: (q, w) => void w.u16(q.startupType === "clear" ? 0 : 1), // TPM_SU_CLEAR / TPM_SU_STATE
};

/** TPM2_Startup unless the TPM was already started: false then (TPM_RC_INITIALIZE). */
export async function startupOnce(tpm: TpmClient, type: StartupRequest["startupType"] = "clear"): Promise<boolean> {
  try {
    await tpm.run(Startup, { startupType: type });
    return true;
  } catch (e) {
    if (e instanceof TpmRcError && e.rc.rc === 0x100) return false;
    throw e;
  }
}
