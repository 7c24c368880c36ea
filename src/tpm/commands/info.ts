/** What a TPM says about itself (TPM_CAP_TPM_PROPERTIES, fixed group, Part 2 §6.13). */
import { algName, TPM_PT } from "../constants.js";
import { selectedPcrs } from "../structures.js";
import type { TpmClient } from "./client.js";
import { getPcrBanks, getProperties } from "./get-capability.js";

const PT_FIXED = 0x100;
const PT = { LEVEL: 0x101, REVISION: 0x102, DAY_OF_YEAR: 0x103, YEAR: 0x104, VENDOR_TPM_TYPE: 0x10a } as const;

export interface TpmInfo {
  /** TPM_PT_FAMILY_INDICATOR as text, "2.0" */
  family: string;
  level: number;
  /** specification revision, e.g. 1.64 */
  revision: number;
  /** specification date */
  specYear: number;
  specDayOfYear: number;
  /** TPM_PT_MANUFACTURER: the 4-character vendor ID (e.g. "IFX", "STM", "IBM") and its raw value */
  manufacturer: string;
  manufacturerId: number;
  /** TPM_PT_VENDOR_STRING_1..4 */
  vendorString: string;
  vendorTpmType: number;
  /** TPM_PT_FIRMWARE_VERSION_1 ‖ _2, as in TPMS_ATTEST.firmwareVersion */
  firmwareVersion: bigint;
  /** FIRMWARE_VERSION_1 as major.minor (upper and lower 16 bits), the form most vendors publish */
  firmware: string;
  maxNvBuffer: number;
  /** allocated PCR banks and their PCRs */
  pcrBanks: { hash: string; pcrs: number[] }[];
}

function ascii(values: (number | undefined)[]): string {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v ?? 0, i * 4));
  return b.toString("latin1").replace(/\0/g, "").trim();
}

export async function tpmInfo(client: TpmClient): Promise<TpmInfo> {
  const p = await getProperties(client, PT_FIXED, 0x80);
  const get = (pt: number) => p.get(pt) ?? 0;
  const fw1 = get(TPM_PT.FIRMWARE_VERSION_1);
  const fw2 = get(TPM_PT.FIRMWARE_VERSION_2);
  const banks = await getPcrBanks(client);
  return {
    family: ascii([get(TPM_PT.FAMILY_INDICATOR)]),
    level: get(PT.LEVEL),
    revision: get(PT.REVISION) / 100,
    specYear: get(PT.YEAR),
    specDayOfYear: get(PT.DAY_OF_YEAR),
    manufacturer: ascii([get(TPM_PT.MANUFACTURER)]),
    manufacturerId: get(TPM_PT.MANUFACTURER),
    vendorString: ascii([TPM_PT.VENDOR_STRING_1, TPM_PT.VENDOR_STRING_2, TPM_PT.VENDOR_STRING_3, TPM_PT.VENDOR_STRING_4].map((pt) => p.get(pt))),
    vendorTpmType: get(PT.VENDOR_TPM_TYPE),
    firmwareVersion: (BigInt(fw1) << 32n) | BigInt(fw2),
    firmware: `${fw1 >>> 16}.${fw1 & 0xffff}`,
    maxNvBuffer: get(TPM_PT.NV_BUFFER_MAX),
    pcrBanks: banks.map((s) => ({ hash: algName(s.hash), pcrs: selectedPcrs(s) })),
  };
}
