import { TpmTrustError } from "../../errors.js";
import { TPM_CAP, TPM_CC } from "../constants.js";
import type { Reader } from "../marshal.js";
import { readTpmlPcrSelection } from "../structures.js";
import type { TpmsPcrSelection } from "../types.js";
import type { Command } from "./command.js";
import { readList } from "./params.js";

/** Part 3 §30.2 TPM2_GetCapability */
export interface GetCapabilityRequest {
  capability: number;
  property: number;
  propertyCount: number;
}

/** Part 2 §10.10 capability lists, discriminated by TPM_CAP. */
export type CapabilityData =
  | { capability: typeof TPM_CAP.ALGS; algs: { alg: number; attributes: number }[] }
  | { capability: typeof TPM_CAP.HANDLES; handles: number[] }
  | { capability: typeof TPM_CAP.COMMANDS; commands: number[] }
  | { capability: typeof TPM_CAP.PCRS; pcrs: TpmsPcrSelection[] }
  | { capability: typeof TPM_CAP.TPM_PROPERTIES; properties: { property: number; value: number }[] }
  | { capability: typeof TPM_CAP.ECC_CURVES; curves: number[] };

export interface GetCapabilityResponse {
  moreData: boolean;
  /** the capability as returned; the client checks it is the one asked for */
  data: CapabilityData;
}

export const GetCapability: Command<GetCapabilityRequest, GetCapabilityResponse> = {
  name: "TPM2_GetCapability",
  code: TPM_CC.GetCapability,
  params: (q, w) => void w.u32(q.capability).u32(q.property).u32(q.propertyCount),
  response: (r) => {
    const moreData = r.u8("moreData") === 1;
    return { moreData, data: readCapability(r) };
  },
};

// Part 2 §10.10 TPMS_CAPABILITY_DATA union members tpmtrust reads.
function readCapability(r: Reader): CapabilityData {
  const cap = r.u32("capabilityData.capability");
  switch (cap) {
    case TPM_CAP.ALGS:
      return { capability: cap, algs: readList(r, "algs", () => ({ alg: r.u16("alg"), attributes: r.u32("algProperties") })) };
    case TPM_CAP.HANDLES:
      return { capability: cap, handles: readList(r, "handles", () => r.u32("handle")) };
    case TPM_CAP.COMMANDS:
      return { capability: cap, commands: readList(r, "commands", () => r.u32("commandAttributes")) };
    case TPM_CAP.PCRS:
      return { capability: cap, pcrs: readTpmlPcrSelection(r) };
    case TPM_CAP.TPM_PROPERTIES:
      return { capability: cap, properties: readList(r, "properties", () => ({ property: r.u32("property"), value: r.u32("value") })) };
    case TPM_CAP.ECC_CURVES:
      return { capability: cap, curves: readList(r, "curves", () => r.u16("curve")) };
    default:
      throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `capability ${cap} is not supported`, { capability: cap });
  }
}
