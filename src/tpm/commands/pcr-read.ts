import { TpmTrustError } from "../../errors.js";
import { TPM_CC } from "../constants.js";
import { pcrSelection, readTpmlDigest, readTpmlPcrSelection, selectedPcrs, writeTpmlPcrSelection } from "../structures.js";
import type { TpmsPcrSelection } from "../types.js";
import type { TpmClient } from "./client.js";
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

/** PCR values by bank (TPM_ALG_ID) then PCR index. */
export type PcrBankMap = Map<number, Map<number, Buffer>>;

/**
 * TPM2_PCR_Read of a whole selection: reads until everything selected was returned, starting over
 * if pcrUpdateCounter changes in between. PCRs of unallocated banks are absent from the result.
 */
export async function pcrReadAll(tpm: TpmClient, selection: TpmsPcrSelection[]): Promise<{ updateCounter: number; values: PcrBankMap }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const values: PcrBankMap = new Map();
    const remaining = new Map(selection.map((s) => [s.hash, new Set(selectedPcrs(s))]));
    let counter: number | undefined;
    let changed = false;
    while ([...remaining.values()].some((s) => s.size > 0)) {
      const ask = [...remaining].filter(([, s]) => s.size > 0).map(([hash, s]) => pcrSelection(hash, [...s]));
      const out = await tpm.run(PCR_Read, { pcrSelectionIn: ask });
      if (counter !== undefined && out.updateCounter !== counter) {
        changed = true;
        break;
      }
      counter = out.updateCounter;
      let i = 0;
      let got = 0;
      for (const sel of out.selection) {
        for (const pcr of selectedPcrs(sel)) {
          const digest = out.digests[i++];
          if (digest === undefined || !remaining.get(sel.hash)?.has(pcr)) {
            throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "TPM2_PCR_Read returned digests that do not fit its selection", { hash: sel.hash, pcr });
          }
          if (!values.has(sel.hash)) values.set(sel.hash, new Map());
          values.get(sel.hash)!.set(pcr, digest);
          remaining.get(sel.hash)!.delete(pcr);
          got++;
        }
      }
      if (i !== out.digests.length) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "TPM2_PCR_Read returned more digests than selected PCRs");
      if (got === 0) break; // the rest is in banks the TPM has not allocated
    }
    if (!changed) return { updateCounter: counter ?? 0, values };
  }
  throw new TpmTrustError("ERR_TPM_TRANSPORT", "PCRs kept changing while being read");
}
