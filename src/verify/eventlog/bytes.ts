import { TpmTrustError } from "../../errors.js";

/** Why an event log was rejected: the stable `details.reason` of ERR_PARSE_EVENTLOG. */
export type EventLogParseReason = "empty" | "truncated" | "too-large" | "bad-value";

export function eventLogError(reason: EventLogParseReason, message: string, offset: number, extra: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_EVENTLOG", `${message} at offset ${offset}`, { reason, offset, ...extra });
}

/**
 * Bounds-checked little-endian cursor over event log bytes (TCG logs are little-endian, PFP §10.2).
 * `base` is the absolute offset of buf[0] so errors name positions in the whole log.
 * Slices are views into the input, not copies.
 */
export class LeCursor {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly base = 0,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }
  get offset(): number {
    return this.base + this.pos;
  }

  need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw eventLogError("truncated", `truncated reading ${what}: need ${n} bytes, have ${this.remaining}`, this.offset, { field: what });
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  /** A u64 that must fit a JS number: used for lengths and counts, which are then bounded by the data. */
  u64(what: string): number {
    this.need(8, what);
    const lo = this.buf.readUInt32LE(this.pos);
    const hi = this.buf.readUInt32LE(this.pos + 4);
    if (hi > 0x1fffff) throw eventLogError("too-large", `${what} ${hi.toString(16)}${lo.toString(16).padStart(8, "0")}h is out of range`, this.offset, { field: what });
    this.pos += 8;
    return hi * 0x1_0000_0000 + lo;
  }
  /** A u64 address, as 0x-prefixed hex (addresses are facts to show, never sizes to trust). */
  address(what: string): string {
    this.need(8, what);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return `0x${v.toString(16)}`;
  }
  /** UINTN of the Spec ID event's uintnSize (4 or 8 bytes). */
  uintn(size: 4 | 8, what: string): number {
    return size === 4 ? this.u32(what) : this.u64(what);
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  rest(): Buffer {
    const out = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return out;
  }
  guid(what: string): string {
    return formatGuid(this.bytes(16, what));
  }
  /** Reads a length-prefixed sub-structure (length already read) as its own cursor. */
  sub(n: number, what: string): LeCursor {
    const at = this.offset;
    return new LeCursor(this.bytes(n, what), at);
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** EFI_GUID: u32, u16, u16 little-endian, then 8 bytes in order (UEFI §Appendix A). */
export function formatGuid(b: Buffer): string {
  const x = HEX;
  return `${x[b[3]]}${x[b[2]]}${x[b[1]]}${x[b[0]]}-${x[b[5]]}${x[b[4]]}-${x[b[7]]}${x[b[6]]}-${x[b[8]]}${x[b[9]]}-${x[b[10]]}${x[b[11]]}${x[b[12]]}${x[b[13]]}${x[b[14]]}${x[b[15]]}`;
}

/** UTF-16LE text up to the first NUL (or the end). */
export function utf16z(b: Buffer): string {
  let end = b.length & ~1;
  for (let i = 0; i + 1 < end; i += 2) {
    if (b[i] === 0 && b[i + 1] === 0) {
      end = i;
      break;
    }
  }
  return b.toString("utf16le", 0, end);
}

/** Printable ASCII (tab/newline allowed) with at most trailing NULs: the shape of an ASCII event string. */
export function asciiText(b: Buffer): string | undefined {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  if (end === 0) return undefined;
  for (let i = 0; i < end; i++) {
    const c = b[i];
    if (c < 0x20 ? c !== 0x09 && c !== 0x0a && c !== 0x0d : c > 0x7e) return undefined;
  }
  return b.toString("latin1", 0, end);
}

/** UTF-16LE text whose every unit is printable BMP, with at most trailing NULs. */
export function utf16Text(b: Buffer): string | undefined {
  if (b.length < 2 || b.length % 2) return undefined;
  let end = b.length;
  while (end >= 2 && b[end - 1] === 0 && b[end - 2] === 0) end -= 2;
  if (end === 0) return undefined;
  for (let i = 0; i < end; i += 2) {
    const u = b[i] | (b[i + 1] << 8);
    if (u < 0x20 ? u !== 0x09 && u !== 0x0a && u !== 0x0d : u === 0xfffe || u === 0xffff || (u >= 0xd800 && u <= 0xdfff)) return undefined;
  }
  return b.toString("utf16le", 0, end);
}
