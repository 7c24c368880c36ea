import { TpmTrustError } from "../../errors.js";
import { TPM_CAP, TPM_CC } from "../constants.js";
import type { Reader } from "../marshal.js";
import { readTpmlPcrSelection, selectedPcrs } from "../structures.js";
import type { TpmsPcrSelection } from "../types.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";
import { readList } from "./params.js";

/** Part 3 §30.2 TPM2_GetCapability; the answer must be the capability asked for. */
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
  data: CapabilityData;
}

export const GetCapability: Command<GetCapabilityRequest, GetCapabilityResponse> = {
  name: "TPM2_GetCapability",
  code: TPM_CC.GetCapability,
  params: (q, w) => void w.u32(q.capability).u32(q.property).u32(q.propertyCount),
  response: (r, _, q) => {
    const moreData = r.u8("moreData") === 1;
    const data = readCapability(r);
    if (data.capability !== q.capability) {
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `capabilityData.capability: asked for ${q.capability}, got ${data.capability}`, { capability: data.capability });
    }
    return { moreData, data };
  },
};

/** TPM properties (TPM_CAP_TPM_PROPERTIES) from `first` on, following moreData. */
export async function getProperties(tpm: TpmClient, first: number, count: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  let next = first;
  for (;;) {
    const { moreData, data } = await tpm.run(GetCapability, { capability: TPM_CAP.TPM_PROPERTIES, property: next, propertyCount: first + count - next });
    if (data.capability !== TPM_CAP.TPM_PROPERTIES) break;
    for (const p of data.properties) if (p.property < first + count) out.set(p.property, p.value);
    const last = data.properties.at(-1)?.property;
    if (!moreData || last === undefined || last + 1 >= first + count) break;
    next = last + 1;
  }
  return out;
}

/** All handles from `first` within its handle type (TPM_CAP_HANDLES), following moreData. */
export async function getHandles(tpm: TpmClient, first: number): Promise<number[]> {
  const type = first >>> 24;
  const out: number[] = [];
  let next = first;
  for (;;) {
    const { moreData, data } = await tpm.run(GetCapability, { capability: TPM_CAP.HANDLES, property: next, propertyCount: 256 });
    if (data.capability !== TPM_CAP.HANDLES) break;
    const mine = data.handles.filter((h) => h >>> 24 === type);
    out.push(...mine);
    if (!moreData || mine.length === 0) break;
    next = mine[mine.length - 1] + 1;
  }
  return out;
}

/** The allocated PCR banks (TPM_CAP_PCRS), banks with an empty selection left out. */
export async function getPcrBanks(tpm: TpmClient): Promise<TpmsPcrSelection[]> {
  const { data } = await tpm.run(GetCapability, { capability: TPM_CAP.PCRS, property: 0, propertyCount: 1 });
  return data.capability === TPM_CAP.PCRS ? data.pcrs.filter((s) => selectedPcrs(s).length > 0) : [];
}

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
