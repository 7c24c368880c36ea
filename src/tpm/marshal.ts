import { TpmTrustError } from "../errors.js";

/**
 * Bounds-checked big-endian reader for TPM wire structures (TPM 2.0 Part 1 §18: all integers are
 * big-endian, TPM2B sizes are u16). Every failure is a typed ERR_PARSE_* error with the byte offset.
 */
export class Reader {
  private pos = 0;
  constructor(
    readonly buf: Uint8Array,
    /** Offset of buf[0] within the outermost input, so errors name absolute positions. */
    readonly base = 0,
  ) {}

  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw new TpmTrustError("ERR_PARSE_TRUNCATED", `truncated reading ${what}: need ${n} bytes at offset ${this.base + this.pos}, have ${this.remaining}`, {
        offset: this.base + this.pos,
        field: what,
      });
    }
  }

  u8(what = "u8"): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }
  u16(what = "u16"): number {
    this.need(2, what);
    const v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    return v;
  }
  u32(what = "u32"): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
  }
  u64(what = "u64"): bigint {
    const hi = this.u32(what);
    const lo = this.u32(what);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  /** A view of the next n bytes (no copy: parsed values share memory with the input, which callers must not mutate). */
  bytes(n: number, what = "bytes"): Buffer {
    this.need(n, what);
    const out = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return out;
  }
  /** TPM2B: u16 size then that many bytes; `max` enforces the type's bound. */
  tpm2b(what = "TPM2B", max = 0xffff): Buffer {
    const at = this.base + this.pos;
    const n = this.u16(`${what}.size`);
    if (n > max) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `${what}.size ${n} exceeds ${max} at offset ${at}`, { offset: at, field: what, size: n, max });
    return this.bytes(n, what);
  }
  /** Reads a TPM2B and parses its contents with `inner`, which must consume it exactly. */
  sized<T>(what: string, inner: (r: Reader) => T, allowEmpty = false): T | undefined {
    const at = this.base + this.pos;
    const body = this.tpm2b(what);
    if (body.length === 0) {
      if (allowEmpty) return undefined;
      throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `${what} is empty at offset ${at}`, { offset: at, field: what });
    }
    const r = new Reader(body, at + 2);
    const v = inner(r);
    r.end(what);
    return v;
  }
  end(what = "structure"): void {
    if (this.pos !== this.buf.length) {
      throw new TpmTrustError("ERR_PARSE_TRAILING_BYTES", `${this.buf.length - this.pos} trailing bytes after ${what} at offset ${this.base + this.pos}`, {
        offset: this.base + this.pos,
        field: what,
        trailing: this.buf.length - this.pos,
      });
    }
  }
  fail(what: string, message: string, at = this.pos): never {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `${what}: ${message} at offset ${this.base + at}`, { offset: this.base + at, field: what });
  }
}

/** Growable big-endian writer, the mirror of Reader. */
export class Writer {
  private chunks: Buffer[] = [];
  private len = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.len += b.length;
    return this;
  }
  get length(): number {
    return this.len;
  }
  u8(v: number): this {
    return this.push(Buffer.of(v & 0xff));
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v & 0xffff);
    return this.push(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }
  bytes(b: Uint8Array): this {
    return this.push(Buffer.from(b));
  }
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `TPM2B of ${b.length} bytes cannot be marshalled`);
    return this.u16(b.length).bytes(b);
  }
  /** Writes `inner` prefixed by its u16 size. */
  sized(inner: (w: Writer) => void): this {
    const w = new Writer();
    inner(w);
    return this.tpm2b(w.finish());
  }
  finish(): Buffer {
    return Buffer.concat(this.chunks, this.len);
  }
}

/** Parses the whole of `buf` with `fn` and rejects trailing bytes. */
export function parseAll<T>(buf: Uint8Array, what: string, fn: (r: Reader) => T): T {
  const r = new Reader(buf);
  const v = fn(r);
  r.end(what);
  return v;
}

export function marshal(fn: (w: Writer) => void): Buffer {
  const w = new Writer();
  fn(w);
  return w.finish();
}
