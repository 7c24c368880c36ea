import { TPM_CC } from "../constants.js";
import type { Command } from "./command.js";

/** Part 3 §16.1 TPM2_GetRandom */
export interface GetRandomRequest {
  bytesRequested: number;
}

export const GetRandom: Command<GetRandomRequest, Buffer> = {
  name: "TPM2_GetRandom",
  code: TPM_CC.GetRandom,
  params: (q, w) => void w.u16(q.bytesRequested),
  response: (r) => r.tpm2b("randomBytes", 64),
};
