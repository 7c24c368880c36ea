import { TPM_PT } from "../constants.js";
import type { TpmClient } from "./client.js";
import { getProperties } from "./get-capability.js";

/** Part 2 §13.4 TPMA_NV bits (TPM_NT, the index type, is bits 4..7). */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  OWNERWRITE: 1 << 1,
  AUTHWRITE: 1 << 2,
  POLICYWRITE: 1 << 3,
  POLICY_DELETE: 1 << 10,
  WRITELOCKED: 1 << 11,
  WRITEALL: 1 << 12,
  WRITEDEFINE: 1 << 13,
  WRITE_STCLEAR: 1 << 14,
  GLOBALLOCK: 1 << 15,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  ORDERLY: 1 << 26,
  CLEAR_STCLEAR: 1 << 27,
  READLOCKED: 1 << 28,
  WRITTEN: 1 << 29,
  PLATFORMCREATE: 1 << 30,
  READ_STCLEAR: 2 ** 31,
} as const;

/** Part 2 §13.4 TPM_NT values, stored in TPMA_NV bits 4..7. */
export const TPM_NT = { ORDINARY: 0x0, COUNTER: 0x1, BITS: 0x2, EXTEND: 0x4, PIN_FAIL: 0x8, PIN_PASS: 0x9 } as const;

const nvBufferMax = new WeakMap<TpmClient, number>();

/** TPM_PT_NV_BUFFER_MAX: the largest NV_Read/NV_Write chunk this TPM takes (asked once per client). */
export async function maxNvBuffer(tpm: TpmClient): Promise<number> {
  let max = nvBufferMax.get(tpm);
  if (max === undefined) {
    const v = (await getProperties(tpm, TPM_PT.NV_BUFFER_MAX, 1)).get(TPM_PT.NV_BUFFER_MAX);
    max = v && v > 0 ? Math.min(v, 2048) : 512;
    nvBufferMax.set(tpm, max);
  }
  return max;
}
