/** Builders for synthetic event logs (tests only): the byte layouts of PFP §10.2 written independently of the parser. */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../../fixtures/eventlogs/", import.meta.url));

export function fixture(name: string): Buffer {
  return readFileSync(FIXTURES + name);
}

export const expected: Record<string, { events: number; format: string; expected_pcrs: Record<string, Record<string, string>>; event_types: Record<string, number>; no_action_kinds: string[] }> =
  JSON.parse(readFileSync(FIXTURES + "expected.json", "utf8"));

export const LOGS = Object.keys(expected);

/** expected.json's PCRs as the quoted-PCR input type. */
export function quotedOf(name: string): Record<string, Record<number, Buffer>> {
  const out: Record<string, Record<number, Buffer>> = {};
  for (const [bank, pcrs] of Object.entries(expected[name].expected_pcrs)) {
    out[bank] = {};
    for (const [pcr, hex] of Object.entries(pcrs)) out[bank][Number(pcr)] = Buffer.from(hex, "hex");
  }
  return out;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
const u64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
export { u16, u32, u64 };

export const ALG = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d } as const;
const SIZE: Record<number, number> = { 0x0004: 20, 0x000b: 32, 0x000c: 48, 0x000d: 64 };
const NODE: Record<number, string> = { 0x0004: "sha1", 0x000b: "sha256", 0x000c: "sha384", 0x000d: "sha512" };

export function h(alg: number, data: Buffer | string): Buffer {
  return createHash(NODE[alg]).update(data).digest();
}

/** TCG_PCR_EVENT. */
export function sha1Record(pcr: number, type: number, data: Buffer, digest = h(ALG.sha1, data)): Buffer {
  return Buffer.concat([u32(pcr), u32(type), digest, u32(data.length), data]);
}

/** The "Spec ID Event03" first record for the given {algId, size} list. */
export function specId03(algs: { alg: number; size?: number }[], opts: { uintn?: number; vendor?: Buffer } = {}): Buffer {
  const vendor = opts.vendor ?? Buffer.alloc(0);
  const body = Buffer.concat([
    Buffer.from("Spec ID Event03\0", "latin1"),
    u32(0),
    Buffer.from([0, 2, 0, opts.uintn ?? 2]),
    u32(algs.length),
    ...algs.map((a) => Buffer.concat([u16(a.alg), u16(a.size ?? SIZE[a.alg])])),
    Buffer.from([vendor.length]),
    vendor,
  ]);
  return sha1Record(0, 3, body, Buffer.alloc(20));
}

/** TCG_PCR_EVENT2 with explicit digests (default: hash of data in each listed bank). */
export function agileRecord(pcr: number, type: number, data: Buffer, digests: (number | [number, Buffer])[]): Buffer {
  const list = digests.map((d) => (typeof d === "number" ? ([d, h(d, data)] as [number, Buffer]) : d));
  return Buffer.concat([u32(pcr), u32(type), u32(list.length), ...list.map(([alg, dg]) => Buffer.concat([u16(alg), dg])), u32(data.length), data]);
}

/** UEFI_VARIABLE_DATA. */
export function variableData(guidBytes: Buffer, name: string, value: Buffer): Buffer {
  return Buffer.concat([guidBytes, u64(name.length), u64(value.length), Buffer.from(name, "utf16le"), value]);
}

/** EFI_GLOBAL_VARIABLE in its on-disk byte order. */
export const EFI_GLOBAL = Buffer.from("61dfe48bca93d211aa0d00e098032b8c", "hex");

/** The records of a log as byte ranges, from the parser's offsets (for splicing real logs). */
export function split(log: Buffer, offsets: number[]): Buffer[] {
  return offsets.map((o, i) => log.subarray(o, i + 1 < offsets.length ? offsets[i + 1] : log.length));
}
