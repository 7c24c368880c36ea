/**
 * KMIP's TTLV encoding (KMIP 1.4 §9.1.1): every item is Tag (3 bytes), Type (1 byte), Length
 * (4 bytes, big-endian, the value's length without padding) and Value, zero-padded to a multiple of
 * 8 bytes. A Structure's value is the concatenation of its items. Decoding is bounds-checked: a
 * malformed message from a key server is ERR_PARSE_* with the byte offset, never a crash.
 */
import { TpmTrustError, type ErrorCode } from "../../errors.js";

/** Item types (KMIP 1.4 §9.1.1.2). */
const TYPE = {
  structure: 0x01,
  integer: 0x02,
  long: 0x03,
  bigInteger: 0x04,
  enumeration: 0x05,
  boolean: 0x06,
  text: 0x07,
  bytes: 0x08,
  dateTime: 0x09,
  interval: 0x0a,
} as const;

export type TtlvType = keyof typeof TYPE;

export type TtlvItem =
  | { tag: number; type: "structure"; value: TtlvItem[] }
  | { tag: number; type: "integer" | "enumeration" | "interval"; value: number }
  | { tag: number; type: "long" | "dateTime"; value: bigint }
  | { tag: number; type: "boolean"; value: boolean }
  | { tag: number; type: "text"; value: string }
  | { tag: number; type: "bytes" | "bigInteger"; value: Buffer };

export const struct = (tag: number, ...value: (TtlvItem | undefined)[]): TtlvItem => ({ tag, type: "structure", value: value.filter((v): v is TtlvItem => v !== undefined) });
export const int = (tag: number, value: number): TtlvItem => ({ tag, type: "integer", value });
export const enumeration = (tag: number, value: number): TtlvItem => ({ tag, type: "enumeration", value });
export const bool = (tag: number, value: boolean): TtlvItem => ({ tag, type: "boolean", value });
export const text = (tag: number, value: string): TtlvItem => ({ tag, type: "text", value });
export const bytes = (tag: number, value: Buffer): TtlvItem => ({ tag, type: "bytes", value });
export const dateTime = (tag: number, value: bigint): TtlvItem => ({ tag, type: "dateTime", value });

const HEADER = 8;
const pad8 = (n: number) => (n + 7) & ~7;
/** A message this client accepts at most (KMIP servers answer these few operations in a few hundred bytes). */
const MAX_MESSAGE = 1 << 20;
const MAX_DEPTH = 16;

const TYPE_NAMES = new Map<number, TtlvType>(Object.entries(TYPE).map(([k, v]) => [v, k as TtlvType]));
/** Types with a fixed value length (§9.1.1.3). */
const FIXED: Partial<Record<TtlvType, number>> = { integer: 4, enumeration: 4, interval: 4, long: 8, dateTime: 8, boolean: 8 };

function valueBytes(item: TtlvItem): Buffer {
  switch (item.type) {
    case "structure":
      return Buffer.concat(item.value.map(encodeTtlv));
    case "integer":
    case "enumeration":
    case "interval": {
      const b = Buffer.alloc(4);
      if (item.type === "integer") b.writeInt32BE(item.value);
      else b.writeUInt32BE(item.value);
      return b;
    }
    case "long":
    case "dateTime": {
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(item.value);
      return b;
    }
    case "boolean": {
      const b = Buffer.alloc(8);
      b[7] = item.value ? 1 : 0;
      return b;
    }
    case "text":
      return Buffer.from(item.value, "utf8");
    case "bytes":
    case "bigInteger":
      return item.value;
  }
}

export function encodeTtlv(item: TtlvItem): Buffer {
  const value = valueBytes(item);
  const out = Buffer.alloc(HEADER + pad8(value.length));
  out.writeUIntBE(item.tag, 0, 3);
  out[3] = TYPE[item.type];
  out.writeUInt32BE(value.length, 4);
  value.copy(out, HEADER);
  return out;
}

const parseError = (code: ErrorCode, message: string, offset: number) => new TpmTrustError(code, `KMIP message: ${message} at offset ${offset}`, { offset, structure: "TTLV" });
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The total length of the message starting at `header` (its 8-byte header read), for framing a stream. */
export function messageLength(header: Buffer): number {
  if (header.length < HEADER) throw parseError("ERR_PARSE_TRUNCATED", "header shorter than 8 bytes", 0);
  if (header[3] !== TYPE.structure) throw parseError("ERR_PARSE_BAD_VALUE", `a message is a Structure, not type 0x${header[3].toString(16)}`, 3);
  const length = header.readUInt32BE(4);
  if (length % 8) throw parseError("ERR_PARSE_BAD_VALUE", `structure length ${length} is not a multiple of 8`, 4);
  if (HEADER + length > MAX_MESSAGE) throw parseError("ERR_PARSE_TOO_LARGE", `message of ${HEADER + length} bytes exceeds ${MAX_MESSAGE}`, 4);
  return HEADER + length;
}

/** Decodes exactly one item filling `buf`. */
export function decodeTtlv(buf: Buffer): TtlvItem {
  const { item, end } = decodeAt(buf, 0, buf.length, 0);
  if (end !== buf.length) throw parseError("ERR_PARSE_TRAILING_BYTES", `${buf.length - end} bytes after the message`, end);
  return item;
}

function decodeAt(buf: Buffer, at: number, limit: number, depth: number): { item: TtlvItem; end: number } {
  if (limit - at < HEADER) throw parseError("ERR_PARSE_TRUNCATED", "an item header runs past its container", at);
  const tag = buf.readUIntBE(at, 3);
  const typeByte = buf[at + 3];
  const type = TYPE_NAMES.get(typeByte);
  if (!type) throw parseError("ERR_PARSE_BAD_VALUE", `unknown item type 0x${typeByte.toString(16)}`, at + 3);
  const length = buf.readUInt32BE(at + 4);
  const v = at + HEADER;
  const fixed = FIXED[type];
  if (fixed !== undefined && length !== fixed) throw parseError("ERR_PARSE_BAD_VALUE", `${type} of length ${length}, not ${fixed}`, at + 4);
  if ((type === "structure" || type === "bigInteger") && length % 8) throw parseError("ERR_PARSE_BAD_VALUE", `${type} length ${length} is not a multiple of 8`, at + 4);
  const end = v + pad8(length);
  if (end > limit) throw parseError("ERR_PARSE_TRUNCATED", `${type} of ${length} bytes runs past its container`, at + 4);
  switch (type) {
    case "structure": {
      if (depth >= MAX_DEPTH) throw parseError("ERR_PARSE_TOO_LARGE", `structures nested deeper than ${MAX_DEPTH}`, at);
      const items: TtlvItem[] = [];
      let p = v;
      while (p < v + length) {
        const r = decodeAt(buf, p, v + length, depth + 1);
        items.push(r.item);
        p = r.end;
      }
      return { item: { tag, type, value: items }, end };
    }
    case "integer":
      return { item: { tag, type, value: buf.readInt32BE(v) }, end };
    case "enumeration":
    case "interval":
      return { item: { tag, type, value: buf.readUInt32BE(v) }, end };
    case "long":
    case "dateTime":
      return { item: { tag, type, value: buf.readBigInt64BE(v) }, end };
    case "boolean": {
      const n = buf.readBigUInt64BE(v);
      if (n > 1n) throw parseError("ERR_PARSE_BAD_VALUE", `boolean value ${n}`, v);
      return { item: { tag, type, value: n === 1n }, end };
    }
    case "text":
      try {
        return { item: { tag, type, value: utf8.decode(buf.subarray(v, v + length)) }, end };
      } catch {
        throw parseError("ERR_PARSE_BAD_VALUE", "text string is not UTF-8", v);
      }
    case "bytes":
    case "bigInteger":
      return { item: { tag, type, value: Buffer.from(buf.subarray(v, v + length)) }, end };
  }
}

/** The children of a structure with `tag`. */
export function children(item: TtlvItem, tag: number): TtlvItem[] {
  return item.type === "structure" ? item.value.filter((c) => c.tag === tag) : [];
}

interface Values {
  structure: TtlvItem[];
  integer: number;
  enumeration: number;
  interval: number;
  long: bigint;
  dateTime: bigint;
  boolean: boolean;
  text: string;
  bytes: Buffer;
  bigInteger: Buffer;
}
type ValueOf<T extends TtlvType> = Values[T];

/** The value of the first child with `tag`, which must have `type`; undefined when absent. */
export function field<T extends TtlvType>(item: TtlvItem, tag: number, type: T): ValueOf<T> | undefined {
  const c = children(item, tag)[0];
  if (!c) return undefined;
  if (c.type !== type) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `KMIP item 0x${tag.toString(16)} is ${c.type}, expected ${type}`, { tag, structure: "TTLV" });
  return c.value as ValueOf<T>;
}

/** Like `field`, for an item the message must have. */
export function required<T extends TtlvType>(item: TtlvItem, tag: number, type: T): ValueOf<T> {
  const v = field(item, tag, type);
  if (v === undefined) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `KMIP message lacks item 0x${tag.toString(16)}`, { tag, structure: "TTLV" });
  return v;
}
