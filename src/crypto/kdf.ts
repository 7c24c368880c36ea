import { createHash, createHmac } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, algName } from "../tpm/constants.js";

/** Digest size and node:crypto name of a TPM hash algorithm; anything else is ERR_PARSE_UNSUPPORTED. */
export function hashAlgorithm(alg: number): { node: string; size: number } {
  const h = HASH_ALGS[alg];
  if (!h) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `hash algorithm ${algName(alg)} is not supported`, { alg });
  return h;
}

/** Largest output tpmtrust derives (far above any key or seed size the spec uses). */
const MAX_KDF_BITS = 1 << 16;

function checkBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > MAX_KDF_BITS) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `KDF output of ${bits} bits is not possible`, { bits });
  }
  return (bits + 7) >>> 3;
}

const ZERO = Buffer.of(0);
const EMPTY = Buffer.alloc(0);

/**
 * The label as hashed, with its terminating 0x00 (Part 1 §11.4.10.2: "the TPM shall include the
 * terminating NULL"). A label that already ends in 0x00 gets no second one.
 */
function labelBytes(label: string | Uint8Array): Buffer[] {
  const b = typeof label === "string" ? Buffer.from(label, "latin1") : Buffer.from(label.buffer, label.byteOffset, label.length);
  return b.length > 0 && b[b.length - 1] === 0 ? [b] : [b, ZERO];
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** Keeps the first ⌈bits/8⌉ octets and clears the unused high bits of the first (Part 1 §11.4.10.1). */
function truncate(stream: Buffer, bits: number, bytes: number): Buffer {
  if (bytes === 0) return EMPTY;
  const out = stream.length === bytes ? stream : stream.subarray(0, bytes);
  if (bits % 8) out[0] &= (1 << bits % 8) - 1;
  return out;
}

/**
 * KDFa (Part 1 §11.4.10.2): SP 800-108 KDF in counter mode with HMAC_hashAlg as PRF;
 * each block is HMAC(key, [i]32 ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ [bits]32), i = 1, 2, …
 */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string | Uint8Array,
  contextU: Uint8Array = EMPTY,
  contextV: Uint8Array = EMPTY,
  bits: number,
): Buffer {
  const { node, size } = hashAlgorithm(hashAlg);
  const bytes = checkBits(bits);
  const lab = labelBytes(label);
  const len = u32(bits);
  const blocks = Math.ceil(bytes / size);
  const out: Buffer[] = [];
  for (let i = 1; i <= blocks; i++) {
    const h = createHmac(node, key).update(u32(i));
    for (const part of lab) h.update(part);
    out.push(h.update(contextU).update(contextV).update(len).digest());
  }
  return truncate(out.length === 1 ? out[0] : Buffer.concat(out), bits, bytes);
}

/**
 * KDFe (Part 1 §11.4.10.3): SP 800-56A concatenation KDF with hashAlg;
 * each block is H([i]32 ‖ Z ‖ label ‖ 00 ‖ partyUInfo ‖ partyVInfo), i = 1, 2, …
 */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string | Uint8Array,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Buffer {
  const { node, size } = hashAlgorithm(hashAlg);
  const bytes = checkBits(bits);
  const lab = labelBytes(label);
  const blocks = Math.ceil(bytes / size);
  const out: Buffer[] = [];
  for (let i = 1; i <= blocks; i++) {
    const h = createHash(node).update(u32(i)).update(z);
    for (const part of lab) h.update(part);
    out.push(h.update(partyUInfo).update(partyVInfo).digest());
  }
  return truncate(out.length === 1 ? out[0] : Buffer.concat(out), bits, bytes);
}
