import { TpmTrustError } from "../../errors.js";
import type { ImaDigest, ImaEntry, ImaList } from "./types.js";

/**
 * Parser for the kernel's IMA measurement lists (security/integrity/ima/ima_fs.c, ima_template_lib.c).
 *
 * Binary (`binary_runtime_measurements[_ALG]`), little-endian, one record per entry:
 *   u32 pcr | template hash (20 bytes, or the bank's size in per-bank lists) | u32 name length | name |
 *   u32 template data length (absent for the `ima` template) | fields, each u32 length + data
 *   (`ima`: the 20-byte digest without length, then u32 length + the name without NUL).
 * ASCII (`ascii_runtime_measurements`): "PCR TEMPLATE-HASH NAME FIELD…", one space before each field
 *   (empty trailing fields keep their space); digests "alg:hex", names as text, bytes as hex.
 */

/** Template names and their field lists (Documentation/security/IMA-templates.rst). */
export const IMA_TEMPLATES: Readonly<Record<string, readonly string[]>> = {
  ima: ["d", "n"],
  "ima-ng": ["d-ng", "n-ng"],
  "ima-ngv2": ["d-ngv2", "n-ng"],
  "ima-sig": ["d-ng", "n-ng", "sig"],
  "ima-sigv2": ["d-ngv2", "n-ng", "sig"],
  "ima-buf": ["d-ng", "n-ng", "buf"],
  "ima-modsig": ["d-ng", "n-ng", "sig", "d-modsig", "modsig"],
};

const KNOWN_FIELDS = new Set(["d", "n", "d-ng", "d-ngv2", "n-ng", "sig", "buf", "d-modsig", "modsig"]);

/** Sizes of the template hash per list algorithm. */
const HASH_SIZES: Record<string, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64, sm3: 32 };
const BY_SIZE: Record<number, string> = { 20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512" };

const MAX_NAME = 255;
const MAX_TEMPLATE_DATA = 1 << 20;
/** `ima` template: the name is hashed padded with zeros to IMA_EVENT_NAME_LEN_MAX + 1. */
const IMA_NAME_PAD = 256;
const IMA_DIGEST = 20;

function imaError(message: string, offset: number, index: number, extra: Record<string, unknown> = {}): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_IMA", `IMA entry ${index} at offset ${offset}: ${message}`, { offset, index, ...extra });
}

/** The fields of a template name: a known template, or a custom format ("d-ng|n-ng|sig") of known fields. */
export function templateFields(name: string, offset: number, index: number): readonly string[] {
  const known = IMA_TEMPLATES[name];
  if (known) return known;
  const parts = name.split("|");
  const ok = parts.every((f) => KNOWN_FIELDS.has(f)) && parts.some((f) => f.startsWith("d")) && parts.some((f) => f.startsWith("n"));
  if (!ok || new Set(parts).size !== parts.length) {
    throw new TpmTrustError("ERR_PARSE_IMA_TEMPLATE", `IMA entry ${index} at offset ${offset}: unknown template "${name}"`, { offset, index, template: name });
  }
  return parts;
}

const isZero = (b: Buffer) => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
};

/** d-ng / d-modsig data: "alg:\0" + digest (d-ngv2: "type:alg:\0" + digest). */
function algDigest(data: Buffer, field: string, offset: number, index: number): ImaDigest {
  const nul = data.indexOf(0);
  if (nul < 2 || data[nul - 1] !== 0x3a) throw imaError(`field ${field} lacks its "alg:" prefix`, offset, index);
  const prefix = data.toString("latin1", 0, nul - 1);
  const alg = field === "d-ngv2" ? prefix.slice(prefix.indexOf(":") + 1) : prefix;
  if (!/^[a-z0-9_-]{2,32}$/.test(alg)) throw imaError(`field ${field} names hash algorithm "${alg}"`, offset, index);
  const digest = data.subarray(nul + 1);
  const size = HASH_SIZES[alg];
  if (size !== undefined && digest.length !== size) throw imaError(`field ${field}: a ${alg} digest of ${digest.length} bytes`, offset, index);
  return { alg, digest };
}

function plainDigest(data: Buffer, offset: number, index: number): ImaDigest {
  if (data.length === 16) return { alg: "md5", digest: data };
  if (data.length === IMA_DIGEST) return { alg: "sha1", digest: data };
  throw imaError(`field d holds ${data.length} bytes`, offset, index);
}

const text = (data: Buffer) => data.toString("utf8", 0, data.length && data[data.length - 1] === 0 ? data.length - 1 : data.length);

/** Sets the entry's typed field `f` from its raw data (the first d and n fields count). */
function assignField(e: ImaEntry, f: string, v: Buffer): void {
  switch (f) {
    case "d":
      e.digest ??= plainDigest(v, e.offset, e.index);
      break;
    case "d-ng":
    case "d-ngv2":
      e.digest ??= algDigest(v, f, e.offset, e.index);
      break;
    case "n":
    case "n-ng":
      e.path ??= text(v);
      break;
    case "sig":
      if (v.length) e.sig = v;
      break;
    case "buf":
      e.buf = v;
      break;
    case "d-modsig":
      if (v.length) e.modsigDigest = algDigest(v, f, e.offset, e.index);
      break;
    case "modsig":
      if (v.length) e.modsig = v;
      break;
  }
}

/** Fills the entry's typed fields from the raw field data. */
function assign(e: ImaEntry, fields: readonly string[], values: Buffer[]): void {
  for (let i = 0; i < fields.length; i++) assignField(e, fields[i], values[i]);
}

function u32le(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n, 0);
  return b;
}

/** What the kernel hashes for the `ima` template: the 20-byte digest and the name padded to 256 bytes. */
function imaHashed(digest: Buffer, name: Buffer): Buffer {
  const b = Buffer.alloc(IMA_DIGEST + IMA_NAME_PAD);
  digest.copy(b, 0, 0, IMA_DIGEST);
  name.copy(b, IMA_DIGEST, 0, Math.min(name.length, IMA_NAME_PAD - 1));
  return b;
}

/** The template hash size of a binary list, from its first record: the size after which a plausible template name follows. */
function detectHashSize(buf: Buffer, at: number): number {
  for (const size of [20, 32, 48, 64]) {
    if (at + 8 + size > buf.length) break;
    const n = buf.readUInt32LE(at + 4 + size);
    if (n < 2 || n > MAX_NAME || at + 8 + size + n > buf.length) continue;
    if (/^[a-z0-9|_-]+$/.test(buf.toString("latin1", at + 8 + size, at + 8 + size + n))) return size;
  }
  throw new TpmTrustError("ERR_PARSE_IMA", "not an IMA measurement list: no template name follows a 20, 32, 48 or 64-byte template hash", { offset: at });
}

export interface ParseOptions {
  /** Index of the first entry (incremental lists start after the last verified entry). */
  startIndex?: number;
  /** Algorithm of the template hashes in a binary list (default: detected from the size; 32 bytes is sha256). */
  templateHashAlg?: string;
}

/** Known hash algorithm prefixes of d-ng ("sha256:" + NUL), as bytes: matched without decoding text. */
const ALG_PREFIXES = Object.keys(HASH_SIZES).map((alg) => ({ alg, bytes: Buffer.from(`${alg}:\0`, "latin1"), size: HASH_SIZES[alg] }));

/** d-ng data whose prefix is a known algorithm: its digest, else undefined (the general parser decides). */
function knownAlgDigest(buf: Buffer, at: number, n: number): ImaDigest | undefined {
  for (const a of ALG_PREFIXES) {
    const b = a.bytes;
    if (n !== b.length + a.size) continue;
    let i = 0;
    while (i < b.length && buf[at + i] === b[i]) i++;
    if (i === b.length) return { alg: a.alg, digest: buf.subarray(at + i, at + n) };
  }
  return undefined;
}

/** A template name as read last: lists rarely switch templates, so its fields are looked up once. */
interface TemplateCache {
  name: string;
  bytes: Buffer;
  fields: readonly string[];
}

function templateAt(buf: Buffer, p: number, n: number, cache: TemplateCache | undefined, offset: number, index: number): TemplateCache {
  if (cache && cache.bytes.length === n) {
    let i = 0;
    while (i < n && buf[p + i] === cache.bytes[i]) i++;
    if (i === n) return cache;
  }
  const name = buf.toString("latin1", p, p + n);
  return { name, bytes: Buffer.from(name, "latin1"), fields: templateFields(name, offset, index) };
}

function truncated(index: number, offset: number, what: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_TRUNCATED", `IMA entry ${index} at offset ${offset}: the list ends inside its ${what}`, { offset, index });
}

function parseBinary(buf: Buffer, o: ParseOptions): ImaList {
  const start = o.startIndex ?? 0;
  const size = o.templateHashAlg ? HASH_SIZES[o.templateHashAlg] : buf.length ? detectHashSize(buf, 0) : 20;
  if (!size) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `template hash algorithm ${o.templateHashAlg} is not known`);
  const templateHashAlg = o.templateHashAlg ?? BY_SIZE[size];
  const entries: ImaEntry[] = [];
  const len = buf.length;
  let cache: TemplateCache | undefined;
  let p = 0;
  while (p < len) {
    const offset = p;
    const index = start + entries.length;
    if (p + 8 + size > len) throw truncated(index, offset, "header");
    const pcr = buf.readUInt32LE(p);
    const templateHash = buf.subarray(p + 4, p + 4 + size);
    const nameLen = buf.readUInt32LE(p + 4 + size);
    p += 8 + size;
    if (nameLen === 0 || nameLen > MAX_NAME) throw imaError(`template name length ${nameLen}`, offset, index);
    if (p + nameLen > len) throw truncated(index, offset, "template name");
    cache = templateAt(buf, p, nameLen, cache, offset, index);
    p += nameLen;
    const e: ImaEntry = { index, offset, pcr, templateHash, template: cache.name, fields: cache.fields, hashed: templateHash, violation: isZero(templateHash), digest: undefined!, path: undefined! };
    if (cache.name === "ima") {
      if (p + IMA_DIGEST + 4 > len) throw truncated(index, offset, "digest");
      const digest = buf.subarray(p, p + IMA_DIGEST);
      const n = buf.readUInt32LE(p + IMA_DIGEST);
      p += IMA_DIGEST + 4;
      if (n > MAX_NAME) throw imaError(`file name length ${n}`, offset, index);
      if (p + n > len) throw truncated(index, offset, "file name");
      const name = buf.subarray(p, p + n);
      p += n;
      e.hashed = imaHashed(digest, name);
      assign(e, cache.fields, [digest, name]);
    } else {
      if (p + 4 > len) throw truncated(index, offset, "template data length");
      const dataLen = buf.readUInt32LE(p);
      p += 4;
      if (dataLen > MAX_TEMPLATE_DATA) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `IMA entry ${index} at offset ${offset}: template data of ${dataLen} bytes`, { offset, index });
      if (p + dataLen > len) throw truncated(index, offset, "template data");
      e.hashed = buf.subarray(p, p + dataLen);
      const end = p + dataLen;
      // each field: u32 length + data (ima_template_lib.c); the common ones read in place
      for (const f of cache.fields) {
        if (p + 4 > end) throw imaError(`template data ends before field ${f}`, offset, index);
        const n = buf.readUInt32LE(p);
        p += 4;
        if (p + n > end) throw imaError(`field ${f} (${n} bytes) overruns the template data`, offset, index);
        if (f === "d-ng" && e.digest === undefined) e.digest = knownAlgDigest(buf, p, n) ?? algDigest(buf.subarray(p, p + n), f, offset, index);
        else if (f === "n-ng" && e.path === undefined) e.path = buf.toString("utf8", p, n && buf[p + n - 1] === 0 ? p + n - 1 : p + n);
        else assignField(e, f, buf.subarray(p, p + n));
        p += n;
      }
      if (p !== end) throw imaError(`${end - p} bytes after the last field`, offset, index);
    }
    entries.push(e);
  }
  return { format: "binary", templateHashAlg, entries };
}

const HEX = /^(?:[0-9a-f]{2})*$/;

function hexField(v: string, f: string, offset: number, index: number): Buffer {
  if (!HEX.test(v)) throw imaError(`field ${f} is not hex`, offset, index);
  return Buffer.from(v, "hex");
}

/** The binary data of one field from its ASCII form. */
function asciiField(f: string, v: string, offset: number, index: number): Buffer {
  switch (f) {
    case "d":
      return hexField(v, f, offset, index);
    case "d-ng":
    case "d-ngv2":
    case "d-modsig": {
      if (f === "d-modsig" && v === "") return Buffer.alloc(0);
      const colon = v.lastIndexOf(":");
      if (colon < 1) throw imaError(`field ${f} "${v.slice(0, 40)}" is not alg:hex`, offset, index);
      return Buffer.concat([Buffer.from(v.slice(0, colon + 1) + "\0", "latin1"), hexField(v.slice(colon + 1), f, offset, index)]);
    }
    case "n":
    case "n-ng":
      return Buffer.from(v + "\0", "utf8");
    default:
      return hexField(v, f, offset, index);
  }
}

function parseAscii(input: string, o: ParseOptions): ImaList {
  const start = o.startIndex ?? 0;
  const entries: ImaEntry[] = [];
  let templateHashAlg: string | undefined = o.templateHashAlg;
  let lineStart = 0;
  while (lineStart < input.length) {
    let lineEnd = input.indexOf("\n", lineStart);
    if (lineEnd < 0) lineEnd = input.length;
    const offset = lineStart;
    const line = input.slice(lineStart, lineEnd).replace(/\r$/, "");
    lineStart = lineEnd + 1;
    if (line.trim() === "") continue;
    const index = start + entries.length;
    const tokens = line.replace(/^ +/, "").split(" ");
    if (tokens.length < 4) throw imaError(`"${line.slice(0, 60)}" is not "PCR TEMPLATE-HASH TEMPLATE FIELD…"`, offset, index);
    const [pcrText, hashHex, template] = tokens;
    if (!/^\d{1,2}$/.test(pcrText)) throw imaError(`PCR "${pcrText}"`, offset, index);
    if (!HEX.test(hashHex) || !BY_SIZE[hashHex.length / 2]) throw imaError(`template hash "${hashHex.slice(0, 40)}"`, offset, index);
    templateHashAlg ??= BY_SIZE[hashHex.length / 2];
    if (HASH_SIZES[templateHashAlg] !== hashHex.length / 2) throw imaError(`a ${hashHex.length / 2}-byte template hash in a ${templateHashAlg} list`, offset, index);
    const fields = templateFields(template, offset, index);
    let values = tokens.slice(3);
    if (values.length > fields.length) {
      // a name with spaces (kernels before names had spaces replaced): the extra tokens belong to it
      const n = fields.findIndex((f) => f === "n" || f === "n-ng");
      const extra = values.length - fields.length;
      values = [...values.slice(0, n), values.slice(n, n + extra + 1).join(" "), ...values.slice(n + extra + 1)];
    }
    if (values.length !== fields.length) throw imaError(`${values.length} fields where template ${template} has ${fields.length}`, offset, index);
    const data = fields.map((f, i) => asciiField(f, values[i], offset, index));
    const e = { index, offset, pcr: Number(pcrText), templateHash: Buffer.from(hashHex, "hex"), template, fields } as ImaEntry;
    e.violation = isZero(e.templateHash);
    if (template === "ima") {
      e.hashed = imaHashed(data[0], data[1].subarray(0, data[1].length - 1));
    } else {
      const parts: Buffer[] = [];
      for (const d of data) parts.push(u32le(d.length), d);
      e.hashed = Buffer.concat(parts);
    }
    assign(e, fields, template === "ima" ? [data[0], data[1].subarray(0, data[1].length - 1)] : data);
    entries.push(e);
  }
  return { format: "ascii", templateHashAlg: templateHashAlg ?? "sha1", entries };
}

/** ASCII when the input starts like "10 <hex> ", binary otherwise. */
export function isAsciiList(buf: Buffer): boolean {
  return /^ ?\d{1,2} [0-9a-f]{40}/.test(buf.toString("latin1", 0, Math.min(buf.length, 48)));
}

/** Parses a measurement list in either form (ERR_PARSE_IMA, ERR_PARSE_IMA_TEMPLATE, ERR_PARSE_TRUNCATED with offset and index). */
export function parseImaList(input: Buffer, o: ParseOptions = {}): ImaList {
  return isAsciiList(input) ? parseAscii(input.toString("utf8"), o) : parseBinary(input, o);
}

/** The binary form of parsed entries (what the kernel writes to binary_runtime_measurements). */
export function encodeBinary(entries: readonly ImaEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const name = Buffer.from(e.template, "latin1");
    parts.push(u32le(e.pcr), e.templateHash, u32le(name.length), name);
    if (e.template === "ima") {
      const path = Buffer.from(e.path, "utf8");
      parts.push(e.digest.digest, u32le(path.length), path);
    } else parts.push(u32le(e.hashed.length), e.hashed);
  }
  return Buffer.concat(parts);
}
