import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";

/** Part 3 §28.4 TPM2_FlushContext (flushHandle is a parameter, not a handle). */
export interface FlushContextRequest {
  flushHandle: number;
}

export const FlushContext: Command<FlushContextRequest, void> = {
  name: "TPM2_FlushContext",
  code: TPM_CC.FlushContext,
  params: (q, w) => void w.u32(q.flushHandle),
};
