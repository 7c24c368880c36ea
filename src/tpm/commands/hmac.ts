import { TPM_ALG, TPM_CC } from "../constants.js";
import type { Command } from "./command.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §15.4 TPM2_HMAC with a loaded keyed-hash key; `hashAlg` NULL (default) uses the key's scheme. */
export interface HmacRequest {
  handle: number;
  auth?: AuthSession;
  buffer: Uint8Array;
  hashAlg?: number;
}

export const HMAC: Command<HmacRequest, Buffer> = {
  name: "TPM2_HMAC",
  code: TPM_CC.HMAC,
  handles: (q) => [q.handle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => void w.tpm2b(q.buffer).u16(q.hashAlg ?? TPM_ALG.NULL),
  response: (r) => r.tpm2b("outHMAC", 64),
};
