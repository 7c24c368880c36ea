import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";

/** Part 3 §23.11 TPM2_PolicyCommandCode */
export interface PolicyCommandCodeRequest {
  policySession: number;
  code: number;
}

export const PolicyCommandCode: Command<PolicyCommandCodeRequest, void> = {
  name: "TPM2_PolicyCommandCode",
  code: TPM_CC.PolicyCommandCode,
  handles: (q) => [q.policySession],
  params: (q, w) => void w.u32(q.code),
};
