/**
 * Builds IMA entries the way the kernel lays them out (ima_template_lib.c, ima_fs.c), written here
 * independently of the parser: template data = each field as u32 LE length + bytes, template hash =
 * SHA-1 of it; ASCII "10 HASH TEMPLATE FIELD…".
 */
import { hash } from "node:crypto";

export const FIXTURES = new URL("../fixtures/ima/", import.meta.url).pathname;

function le32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export interface Built {
  line: string;
  binary: Buffer;
  templateData: Buffer;
  templateHash: Buffer;
}

export interface EntrySpec {
  template?: "ima-ng" | "ima-sig" | "ima-buf" | "ima-modsig";
  path: string;
  alg?: string;
  digest: Buffer;
  sig?: Buffer;
  buf?: Buffer;
  modsigDigest?: { alg: string; digest: Buffer };
  modsig?: Buffer;
  pcr?: number;
}

export function entry(s: EntrySpec): Built {
  const template = s.template ?? "ima-ng";
  const alg = s.alg ?? "sha256";
  const dng = (a: string, d: Buffer) => Buffer.concat([Buffer.from(`${a}:\0`, "latin1"), d]);
  const fields: [Buffer, string][] = [
    [dng(alg, s.digest), `${alg}:${s.digest.toString("hex")}`],
    [Buffer.from(s.path + "\0"), s.path],
  ];
  if (template === "ima-sig" || template === "ima-modsig") fields.push([s.sig ?? Buffer.alloc(0), (s.sig ?? Buffer.alloc(0)).toString("hex")]);
  if (template === "ima-buf") fields.push([s.buf ?? Buffer.alloc(0), (s.buf ?? Buffer.alloc(0)).toString("hex")]);
  if (template === "ima-modsig") {
    const md = s.modsigDigest ? dng(s.modsigDigest.alg, s.modsigDigest.digest) : Buffer.alloc(0);
    fields.push([md, s.modsigDigest ? `${s.modsigDigest.alg}:${s.modsigDigest.digest.toString("hex")}` : ""]);
    fields.push([s.modsig ?? Buffer.alloc(0), (s.modsig ?? Buffer.alloc(0)).toString("hex")]);
  }
  const templateData = Buffer.concat(fields.flatMap(([b]) => [le32(b.length), b]));
  const templateHash = hash("sha1", templateData, "buffer");
  const pcr = s.pcr ?? 10;
  const line = `${pcr} ${templateHash.toString("hex")} ${template} ${fields.map(([, a]) => a).join(" ")}`;
  const name = Buffer.from(template);
  const binary = Buffer.concat([le32(pcr), templateHash, le32(name.length), name, le32(templateData.length), templateData]);
  return { line, binary, templateData, templateHash };
}

export const sha = (alg: string, s: string | Buffer) => hash(alg, s, "buffer");

/** PCR 10 after extending `values` in order (TPM2_PCR_Extend), from `start` or zeros. */
export function fold(alg: string, values: Buffer[], start?: Buffer): Buffer {
  let v = start ?? Buffer.alloc(sha(alg, "").length);
  for (const x of values) v = sha(alg, Buffer.concat([v, x]));
  return v;
}

/** An ima-sig `sig` field: type 3, version 2, hash_algo, key id, size, signature (signature_v2_hdr). */
export function sigField(hashAlgo: number, keyId: Buffer, signature: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h[0] = 3;
  h[1] = 2;
  h[2] = hashAlgo;
  keyId.copy(h, 3);
  h.writeUInt16BE(signature.length, 7);
  return Buffer.concat([h, signature]);
}
