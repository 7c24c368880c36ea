/**
 * Recognises the encodings operators hand to the offline verifier: keys as TPM2B_PUBLIC,
 * TPMT_PUBLIC, SubjectPublicKeyInfo (PEM/DER) or X.509 certificate (PEM/DER); attestations as
 * TPMS_ATTEST or TPM2B_ATTEST; PCR values as tpm2_pcrread YAML, tpm2_quote's PCR file or JSON.
 * Pure: bytes in, typed values out.
 */
import { createPublicKey, X509Certificate, type KeyObject } from "node:crypto";
import { createRequire } from "node:module";
import { pemBlocks } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, hashAlgByName } from "../tpm/constants.js";
import { decodeTpm2bAttest, decodeTpm2bPublic, decodeTpmsAttest, decodeTpmtPublic, selectedPcrs } from "../tpm/structures.js";
import type { TpmsAttest, TpmsPcrSelection, TpmtPublic } from "../tpm/types.js";
import { publicKeyFromTpmt } from "../crypto/keys.js";
import type { PcrValues } from "./eventlog/types.js";

export type KeyFormat = "TPM2B_PUBLIC" | "TPMT_PUBLIC" | "SPKI" | "X509";
export interface KeyInput {
  format: KeyFormat;
  key: KeyObject;
  /** The TPM public area, when the input carried one (needed for Names and attribute checks). */
  public?: TpmtPublic;
  certificate?: X509Certificate;
}

function tryOr<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

export function parseKeyInput(bytes: Uint8Array, what = "key"): KeyInput {
  const pem = pemBlocks(bytes)[0];
  if (pem) {
    if (pem.label === "CERTIFICATE") return certInput(pem.der, what);
    if (pem.label === "PUBLIC KEY" || pem.label === "RSA PUBLIC KEY") {
      const key = tryOr(() => createPublicKey({ key: pem.der, format: "der", type: pem.label === "PUBLIC KEY" ? "spki" : "pkcs1" }));
      if (key) return { format: "SPKI", key };
    }
    throw new TpmTrustError("ERR_PARSE_FORMAT", `${what}: PEM block "${pem.label}" is neither a certificate nor a public key`);
  }
  const buf = Buffer.from(bytes);
  // DER SEQUENCE: certificate or SubjectPublicKeyInfo.
  if (buf[0] === 0x30) {
    const cert = tryOr(() => new X509Certificate(buf));
    if (cert) return certInput(buf, what, cert);
    const key = tryOr(() => createPublicKey({ key: buf, format: "der", type: "spki" }));
    if (key) return { format: "SPKI", key };
  }
  const pub2b = tryOr(() => decodeTpm2bPublic(buf));
  if (pub2b) return { format: "TPM2B_PUBLIC", key: publicKeyFromTpmt(pub2b), public: pub2b };
  const pub = tryOr(() => decodeTpmtPublic(buf));
  if (pub) return { format: "TPMT_PUBLIC", key: publicKeyFromTpmt(pub), public: pub };
  throw new TpmTrustError("ERR_PARSE_FORMAT", `${what}: not a TPM2B_PUBLIC, TPMT_PUBLIC, SubjectPublicKeyInfo or X.509 certificate`);
}

function certInput(der: Buffer, what: string, parsed?: X509Certificate): KeyInput {
  const certificate = parsed ?? tryOr(() => new X509Certificate(der));
  if (!certificate) throw new TpmTrustError("ERR_PARSE_CERT", `${what}: the certificate could not be parsed`);
  // node parses the SubjectPublicKeyInfo only when the key is asked for
  const key = tryOr(() => certificate.publicKey);
  if (!key) throw new TpmTrustError("ERR_PARSE_CERT", `${what}: the certificate's public key could not be parsed`);
  return { format: "X509", key, certificate };
}

/** TPMS_ATTEST or TPM2B_ATTEST. A bad magic stays a bad magic (ERR_MAGIC), not "unknown format". */
export function parseAttestInput(bytes: Uint8Array): { format: "TPMS_ATTEST" | "TPM2B_ATTEST"; attest: TpmsAttest } {
  const buf = Buffer.from(bytes);
  if (buf.length >= 2 && buf.readUInt16BE(0) === buf.length - 2 && buf.length >= 6 && buf.readUInt32BE(2) === 0xff544347) {
    return { format: "TPM2B_ATTEST", attest: decodeTpm2bAttest(buf) };
  }
  return { format: "TPMS_ATTEST", attest: decodeTpmsAttest(buf) };
}


function hexValue(v: unknown, where: string): Buffer {
  const s = String(v).trim().replace(/^0x/i, "");
  if (!/^([0-9a-fA-F]{2})+$/.test(s)) throw new TpmTrustError("ERR_PARSE_FORMAT", `PCR value at ${where} is not hex`);
  return Buffer.from(s, "hex");
}

function banksFromObject(obj: unknown): PcrValues {
  if (!obj || typeof obj !== "object") throw new TpmTrustError("ERR_PARSE_FORMAT", "PCR document is not a mapping of banks");
  const out: PcrValues = {};
  for (const [bank, values] of Object.entries(obj as Record<string, unknown>)) {
    const alg = hashAlgByName(bank);
    if (alg === undefined) throw new TpmTrustError("ERR_PARSE_FORMAT", `unknown PCR bank "${bank}"`);
    if (!values || typeof values !== "object") throw new TpmTrustError("ERR_PARSE_FORMAT", `bank ${bank} is not a mapping of PCR index to value`);
    const name = HASH_ALGS[alg].name;
    out[name] = {};
    for (const [idx, v] of Object.entries(values as Record<string, unknown>)) {
      const i = Number(idx);
      if (!Number.isInteger(i) || i < 0 || i > 31) throw new TpmTrustError("ERR_PARSE_FORMAT", `bad PCR index "${idx}" in bank ${bank}`);
      const value = hexValue(v, `${bank}:${idx}`);
      if (value.length !== HASH_ALGS[alg].size) throw new TpmTrustError("ERR_PARSE_FORMAT", `PCR ${bank}:${i} has ${value.length} bytes, expected ${HASH_ALGS[alg].size}`);
      out[name][i] = value;
    }
  }
  return out;
}

/** The YAML parser, loaded on first use: most inputs are binary or JSON. */
const yamlParser = (): typeof import("yaml").parse => createRequire(import.meta.url)("yaml").parse;

/**
 * PCR values from JSON ({"sha256":{"0":"hex"}}), tpm2_pcrread YAML (optionally under `pcrs:` as
 * tpm2_quote prints it), or the binary PCR file of `tpm2_quote -o` (serialized, or plain values
 * in selection order — the latter needs the quote's selection).
 */
export function parsePcrsInput(bytes: Uint8Array, selection?: TpmsPcrSelection[]): PcrValues {
  const buf = Buffer.from(bytes);
  const text = buf.toString("utf8");
  if (/^\s*[{[]/.test(text)) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new TpmTrustError("ERR_PARSE_FORMAT", "PCR file looks like JSON but does not parse");
    }
    return banksFromObject(doc);
  }
  if (/^[\x09\x0a\x0d\x20-\x7e]*$/.test(text) && /:/.test(text)) {
    // failsafe schema: every scalar stays a string, so 0x… values are not read as numbers.
    let doc: unknown;
    try {
      doc = yamlParser()(text, { schema: "failsafe" });
    } catch {
      throw new TpmTrustError("ERR_PARSE_FORMAT", "PCR file looks like YAML but does not parse");
    }
    const d = doc as Record<string, unknown>;
    return banksFromObject(d && typeof d === "object" && "pcrs" in d ? d.pcrs : doc);
  }
  return parseSerializedPcrs(buf) ?? parseValuesPcrs(buf, selection);
}

/**
 * tpm2-tools' "serialized" PCR file: a little-endian memory image of TPML_PCR_SELECTION
 * (count u32, 16 × {hash u16, sizeofSelect u8, pcrSelect[4], pad u8}), a u32 count and that many
 * TPML_DIGEST (count u32, 8 × {size u16, buffer[64]}) = 132 + 4 + n × 532 bytes.
 */
function parseSerializedPcrs(buf: Buffer): PcrValues | undefined {
  if (buf.length < 136 || (buf.length - 136) % 532 !== 0) return undefined;
  const nSel = buf.readUInt32LE(0);
  const nDig = buf.readUInt32LE(132);
  if (nSel > 16 || nDig !== (buf.length - 136) / 532) return undefined;
  const digests: Buffer[] = [];
  for (let i = 0; i < nDig; i++) {
    const base = 136 + i * 532;
    const count = buf.readUInt32LE(base);
    if (count > 8) return undefined;
    for (let j = 0; j < count; j++) {
      const off = base + 4 + j * 66;
      const size = buf.readUInt16LE(off);
      if (size > 64) return undefined;
      digests.push(buf.subarray(off + 2, off + 2 + size));
    }
  }
  const out: PcrValues = {};
  let k = 0;
  for (let i = 0; i < nSel; i++) {
    const off = 4 + i * 8;
    const hash = buf.readUInt16LE(off);
    const size = buf[off + 2];
    if (size > 4 || !HASH_ALGS[hash]) return undefined;
    const bank = (out[HASH_ALGS[hash].name] ??= {});
    for (const p of selectedPcrs({ hash, select: buf.subarray(off + 3, off + 3 + size) })) {
      if (k >= digests.length) return undefined;
      bank[p] = Buffer.from(digests[k++]);
    }
  }
  return k === digests.length ? out : undefined;
}

function parseValuesPcrs(buf: Buffer, selection?: TpmsPcrSelection[]): PcrValues {
  if (!selection) throw new TpmTrustError("ERR_PARSE_FORMAT", "PCR file is not JSON, YAML or a serialized tpm2-tools PCR file");
  const expected = selection.reduce((n, s) => n + selectedPcrs(s).length * (HASH_ALGS[s.hash]?.size ?? 0), 0);
  if (buf.length !== expected) throw new TpmTrustError("ERR_PARSE_FORMAT", `PCR values file has ${buf.length} bytes; the quoted selection needs ${expected}`);
  const out: PcrValues = {};
  let off = 0;
  for (const s of selection) {
    const h = HASH_ALGS[s.hash];
    const bank = (out[h.name] ??= {});
    for (const p of selectedPcrs(s)) {
      bank[p] = buf.subarray(off, off + h.size);
      off += h.size;
    }
  }
  return out;
}
