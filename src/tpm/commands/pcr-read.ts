import { TPM_CC } from "../constants.js";
import { readTpmlDigest, readTpmlPcrSelection, writeTpmlPcrSelection } from "../structures.js";
import type { TpmsPcrSelection } from "../types.js";
import type { Command } from "./command.js";

/** Part 3 §22.4 TPM2_PCR_Read: at most 8 digests per call. */
export interface PcrReadRequest {
  pcrSelectionIn: TpmsPcrSelection[];
}

export interface PcrReadResponse {
  updateCounter: number;
  selection: TpmsPcrSelection[];
  digests: Buffer[];
}

export const PCR_Read: Command<PcrReadRequest, PcrReadResponse> = {
  name: "TPM2_PCR_Read",
  code: TPM_CC.PCR_Read,
  params: (q, w) => writeTpmlPcrSelection(w, q.pcrSelectionIn),
  response: (r) => ({ updateCounter: r.u32("pcrUpdateCounter"), selection: readTpmlPcrSelection(r), digests: readTpmlDigest(r) }),
};
