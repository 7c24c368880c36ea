import { TpmTrustError } from "../../errors.js";
import { TPM_CC } from "../constants.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";
import { NV_ReadPublic } from "./nv-read-public.js";
import { maxNvBuffer } from "./nv.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §31.13 TPM2_NV_Read of one chunk (at most TPM_PT_NV_BUFFER_MAX bytes); all `size` bytes must come back. */
export interface NvReadRequest {
  /** the index itself (AUTHREAD), TPM_RH_OWNER or TPM_RH_PLATFORM */
  authHandle: number;
  auth?: AuthSession;
  nvIndex: number;
  size: number;
  offset: number;
}

export const NV_Read: Command<NvReadRequest, Buffer> = {
  name: "TPM2_NV_Read",
  code: TPM_CC.NV_Read,
  parameterEncryption: { response: true },
  handles: (q) => [q.authHandle, q.nvIndex],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.u16(q.size).u16(q.offset),
  response: (r, _, q) => {
    const data = r.tpm2b("data", 2048);
    if (data.length !== q.size) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `TPM2_NV_Read returned ${data.length} bytes, asked for ${q.size}`, { index: q.nvIndex, offset: q.offset });
    return data;
  },
};

/**
 * TPM2_NV_Read of `size` bytes from `offset` (default: the whole index), in chunks of
 * TPM_PT_NV_BUFFER_MAX. `authHandle` defaults to the index itself (AUTHREAD).
 */
export async function nvReadAll(tpm: TpmClient, index: number, opts: { authHandle?: number; auth?: AuthSession; offset?: number; size?: number } = {}): Promise<Buffer> {
  const offset = opts.offset ?? 0;
  const size = opts.size ?? (await tpm.run(NV_ReadPublic, { nvIndex: index })).nvPublic.dataSize - offset;
  const chunk = await maxNvBuffer(tpm);
  const parts: Buffer[] = [];
  for (let done = 0; done < size; ) {
    const n = Math.min(chunk, size - done);
    parts.push(await tpm.run(NV_Read, { authHandle: opts.authHandle ?? index, auth: opts.auth, nvIndex: index, size: n, offset: offset + done }));
    done += n;
  }
  return Buffer.concat(parts);
}
