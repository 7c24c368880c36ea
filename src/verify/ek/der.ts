/**
 * A bounded reader of DER TLVs (X.690 §8.1): the exact signed bytes of each certificate part, the
 * outer length of a certificate read from NV, strict time values, and the plain shapes of names,
 * algorithms and extensions (below). Tolerates non-minimal long-form lengths (BER) and reports them.
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

/*
 * Direct decoding of the common shapes, with exactly the values @peculiar/asn1-x509 (over asn1js)
 * yields for them; `undefined` means "not a plain shape": the caller then decodes with the schema,
 * which stays the authority on everything unusual (and on every error). Inputs of FAST_LIMIT bytes or
 * more also go to the schema, which refuses structures of over 10,000 nodes (each node is 2 bytes at least).
 */
export const FAST_LIMIT = 20_000;

/** The TLVs of a constructed element, or undefined when they do not parse. */
export function childrenOrUndefined(buf: Uint8Array, parent: Tlv): Tlv[] | undefined {
  try {
    return children(buf, parent);
  } catch {
    return undefined;
  }
}

/** One TLV filling `buf` exactly, or undefined. */
export function onlyTlv(buf: Uint8Array): Tlv | undefined {
  if (buf.length >= FAST_LIMIT) return undefined;
  try {
    const t = readTlv(buf, 0);
    return t.end === buf.length ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Dotted OBJECT IDENTIFIER; undefined when empty, truncated, non-minimal, or an arc is over 49 bits. */
export function oidText(buf: Uint8Array, t: Tlv): string | undefined {
  if (t.tag !== 0x06 || t.end === t.contentStart) return undefined;
  let s = "";
  let v = 0;
  let n = 0;
  for (let p = t.contentStart; p < t.end; p++) {
    const b = buf[p];
    if ((n === 0 && b === 0x80) || ++n > 7) return undefined;
    v = v * 128 + (b & 0x7f);
    if (b & 0x80) continue;
    // X.690 §8.19.4: the first subidentifier packs two arcs
    s = s === "" ? (v < 40 ? `0.${v}` : v < 80 ? `1.${v - 40}` : `2.${v - 80}`) : `${s}.${v}`;
    v = 0;
    n = 0;
  }
  return n === 0 ? s : undefined;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A directory string's value: UTF8String (invalid UTF-8 read byte by byte), PrintableString,
 * TeletexString and IA5String byte by byte, BMPString as UTF-16BE; undefined for other tags.
 */
export function stringText(buf: Buffer, t: Tlv): string | undefined {
  const c = buf.subarray(t.contentStart, t.end);
  switch (t.tag) {
    case 0x0c:
      try {
        return utf8.decode(c);
      } catch {
        return c.toString("latin1");
      }
    case 0x13:
    case 0x14:
    case 0x16:
      return c.toString("latin1");
    case 0x1e: {
      if (c.length % 2) return undefined;
      let s = "";
      for (let i = 0; i < c.length; i += 2) s += String.fromCharCode((c[i] << 8) | c[i + 1]);
      return s;
    }
    default:
      return undefined;
  }
}

/** A DER BOOLEAN (one octet, 00 or FF), or undefined. */
export function booleanValue(buf: Uint8Array, t: Tlv): boolean | undefined {
  if (t.tag !== 0x01 || t.end - t.contentStart !== 1) return undefined;
  const b = buf[t.contentStart];
  return b === 0xff ? true : b === 0 ? false : undefined;
}
