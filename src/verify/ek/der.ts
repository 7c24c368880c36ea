/**
 * A bounded reader of DER TLVs (X.690 §8.1), only for what the ASN.1 schemas of @peculiar/asn1-x509
 * cannot give us: the exact signed bytes of each certificate part, the outer length of a certificate
 * read from NV, and strict time values. Tolerates non-minimal long-form lengths (BER) and reports them.
 */
import { TpmTrustError } from "../../errors.js";

export interface Tlv {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the first content byte */
  contentStart: number;
  /** offset just after the contents */
  end: number;
  /** true when the length was not minimally encoded */
  berLength: boolean;
}

export function parseError(message: string, offset: number, details: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_CERT", `${message} (at byte ${offset})`, { offset, ...details });
}

/** Reads one TLV at `offset`, which must end by `limit`. Indefinite lengths and multi-byte tags are rejected. */
export function readTlv(buf: Uint8Array, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw parseError("truncated DER element", offset);
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw parseError("multi-byte DER tags are not supported", offset);
  let p = offset + 1;
  const first = buf[p++];
  let length: number;
  let berLength = false;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw parseError("indefinite length is not DER", offset);
    if (n > 4) throw parseError("DER length field too long", offset);
    if (p + n > limit) throw parseError("truncated DER length", offset);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[p++];
    // minimal: no leading zero octet, and long form only for lengths >= 128
    berLength = buf[offset + 2] === 0 || length < 0x80;
  }
  const end = p + length;
  if (end > limit) throw parseError(`DER element of ${length} bytes overruns its container`, offset, { length });
  return { tag, start: offset, contentStart: p, end, berLength };
}

/** The TLVs inside a constructed element, in order; they must fill it exactly. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.contentStart;
  while (p < parent.end) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

export function contents(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.contentStart, t.end);
}

export function whole(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.start, t.end);
}

export function expectTag(t: Tlv, tag: number, what: string): void {
  if (t.tag !== tag) throw parseError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`, t.start, { field: what });
}

/** True when any TLV in the subtree of `t` (constructed tags are descended) has a BER length. */
export function hasBerLength(buf: Uint8Array, t: Tlv): boolean {
  const stack = [t];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.berLength) return true;
    if (n.tag & 0x20) stack.push(...children(buf, n));
  }
  return false;
}
