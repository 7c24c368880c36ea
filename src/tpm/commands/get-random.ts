import { TpmTrustError } from "../../errors.js";
import { TPM_CC } from "../constants.js";
import type { TpmClient } from "./client.js";
import type { Command } from "./command.js";

/** Part 3 §16.1 TPM2_GetRandom: at most one digest's worth of bytes per call. */
export interface GetRandomRequest {
  bytesRequested: number;
}

export const GetRandom: Command<GetRandomRequest, Buffer> = {
  name: "TPM2_GetRandom",
  code: TPM_CC.GetRandom,
  params: (q, w) => void w.u16(q.bytesRequested),
  response: (r) => r.tpm2b("randomBytes", 64),
};

/** TPM2_GetRandom, repeated until `n` bytes are collected. */
export async function getRandomBytes(tpm: TpmClient, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const got = await tpm.run(GetRandom, { bytesRequested: Math.min(n - have, 64) });
    if (got.length === 0) throw new TpmTrustError("ERR_TPM_TRANSPORT", "TPM2_GetRandom returned no bytes");
    parts.push(got);
    have += got.length;
  }
  return Buffer.concat(parts).subarray(0, n);
}
