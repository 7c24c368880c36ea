import { TPM_CC } from "../constants.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";
import { maxNvBuffer } from "./nv.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §31.7 TPM2_NV_Write of one chunk (at most TPM_PT_NV_BUFFER_MAX bytes). */
export interface NvWriteRequest {
  authHandle: number;
  auth?: AuthSession;
  nvIndex: number;
  data: Uint8Array;
  offset: number;
}

export const NV_Write: Command<NvWriteRequest, void> = {
  name: "TPM2_NV_Write",
  code: TPM_CC.NV_Write,
  parameterEncryption: { command: true },
  handles: (q) => [q.authHandle, q.nvIndex],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.tpm2b(q.data).u16(q.offset),
};

/** TPM2_NV_Write of `data` at `offset`, in chunks of TPM_PT_NV_BUFFER_MAX. */
export async function nvWriteAll(tpm: TpmClient, index: number, data: Uint8Array, opts: { authHandle?: number; auth?: AuthSession; offset?: number } = {}): Promise<void> {
  const offset = opts.offset ?? 0;
  const chunk = await maxNvBuffer(tpm);
  for (let done = 0; done < data.length; done += chunk) {
    const part = data.subarray(done, Math.min(done + chunk, data.length));
    await tpm.run(NV_Write, { authHandle: opts.authHandle ?? index, auth: opts.auth, nvIndex: index, data: part, offset: offset + done });
  }
}
