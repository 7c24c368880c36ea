/**
 * The Azure DPS default registration id of a TPM device: lowercase RFC 4648 base32 of
 * SHA-256(EK as TPM2B_PUBLIC, its u16 size included), '=' padding removed (52 characters).
 * Pure.
 */
import { createHash } from "node:crypto";
import { encodeTpm2bPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 §6 base32, lowercase, without padding. */
export function base32Lower(data: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const byte of data) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/** The default registration id for an EK (TPMT_PUBLIC, or the TPM2B_PUBLIC bytes as the TPM returns them). */
export function defaultRegistrationId(ek: TpmtPublic | Uint8Array): string {
  const tpm2b = ek instanceof Uint8Array ? ek : encodeTpm2bPublic(ek);
  return base32Lower(createHash("sha256").update(tpm2b).digest());
}
