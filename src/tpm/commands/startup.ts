import { TPM_CC } from "../constants.js";
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
