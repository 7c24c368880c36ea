/**
 * Marshalling of TPM 2.0 structures (Library Part 2, rev 1.59 section numbers in comments).
 * For each structure X: readX(Reader) / writeX(Writer, v) for composition, decodeX(bytes) (whole
 * input, trailing bytes rejected) / encodeX(v) for whole buffers.
 */
import { hash } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { HASH_ALGS, TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "./constants.js";
import { marshal, parseAll, Reader, Writer } from "./marshal.js";
import type {
  TpmsAttest,
  TpmsCreationData,
  TpmsEccPoint,
  TpmsIdObject,
  TpmsNvPublic,
  TpmsPcrSelection,
  TpmtPublic,
  TpmtScheme,
  TpmtSensitive,
  TpmtSignature,
  TpmtSymDefObject,
  TpmsClockInfo,
} from "./types.js";

// Size bounds of the TPM2B types (Part 2 §10.4, §11.2.4.5, §11.2.5.1), sized for the largest
// algorithms tpmtrust accepts: digests up to SHA-512, RSA up to 4096 bits, ECC up to 638 bits.
const MAX_DIGEST = 64; // sizeof(TPMU_HA)
const MAX_NAME = 2 + MAX_DIGEST; // sizeof(TPMU_NAME)
const MAX_DATA = 2 + MAX_DIGEST; // TPM2B_DATA holds a TPMT_HA
const MAX_RSA_BYTES = 512;
const MAX_ECC_BYTES = 80;
const MAX_NV_BUFFER = 2048;
const MAX_SENSITIVE = 1280;
const MAX_PCR_SELECT = 8;
const MAX_BANKS = 16; // HASH_COUNT bound for TPML_PCR_SELECTION
const MAX_DIGESTS = 8; // TPML_DIGEST: at most 8 (Part 2 §10.9.2)

export function hashOf(alg: number, ...data: Uint8Array[]): Buffer {
  const h = HASH_ALGS[alg];
  if (!h) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `unsupported hash algorithm 0x${alg.toString(16)}`, { alg });
  // one-shot crypto.hash (Node ≥ 20.12) is cheaper than a Hash object on hot paths like pcrDigest
  return hash(h.node, data.length === 1 ? data[0] : Buffer.concat(data), "buffer");
}

export function digestSize(alg: number): number {
  const h = HASH_ALGS[alg];
  if (!h) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `unsupported hash algorithm 0x${alg.toString(16)}`, { alg });
  return h.size;
}

// ---- §11.1.6 TPMT_SYM_DEF_OBJECT (and TPMT_SYM_DEF: XOR carries a hash in keyBits, no mode)

export function readTpmtSymDefObject(r: Reader): TpmtSymDefObject {
  const algorithm = r.u16("symmetric.algorithm");
  if (algorithm === TPM_ALG.NULL) return { algorithm };
  if (algorithm === TPM_ALG.XOR) return { algorithm, keyBits: r.u16("symmetric.hash") };
  return { algorithm, keyBits: r.u16("symmetric.keyBits"), mode: r.u16("symmetric.mode") };
}
export function writeTpmtSymDefObject(w: Writer, s: TpmtSymDefObject): void {
  w.u16(s.algorithm);
  if (s.algorithm === TPM_ALG.NULL) return;
  w.u16(s.keyBits ?? 0);
  if (s.algorithm !== TPM_ALG.XOR) w.u16(s.mode ?? TPM_ALG.NULL);
}

// ---- schemes: §11.2.3.2 TPMT_KEYEDHASH_SCHEME, §11.2.3.3 TPMT_KDF_SCHEME, §11.2.4.2 TPMT_RSA_SCHEME,
// §11.2.5.6 TPMT_ECC_SCHEME, §11.2.3.5 TPMT_SIG_SCHEME. All are `scheme ‖ details(scheme)`.

/** Schemes whose details are a TPMS_SCHEME_HASH (one hashAlg). */
const HASH_SCHEMES = new Set<number>([
  TPM_ALG.RSASSA,
  TPM_ALG.RSAPSS,
  TPM_ALG.OAEP,
  TPM_ALG.ECDSA,
  TPM_ALG.SM2,
  TPM_ALG.ECSCHNORR,
  TPM_ALG.ECDH,
  TPM_ALG.ECMQV,
  TPM_ALG.HMAC,
  TPM_ALG.MGF1,
  TPM_ALG.KDF1_SP800_56A,
  TPM_ALG.KDF2,
  TPM_ALG.KDF1_SP800_108,
]);

export function readTpmtScheme(r: Reader, what = "scheme"): TpmtScheme {
  const at = r.offset;
  const scheme = r.u16(what);
  if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme };
  if (HASH_SCHEMES.has(scheme)) return { scheme, hashAlg: r.u16(`${what}.hashAlg`) };
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg: r.u16(`${what}.hashAlg`), count: r.u16(`${what}.count`) };
  if (scheme === TPM_ALG.XOR) return { scheme, hashAlg: r.u16(`${what}.hashAlg`), kdf: r.u16(`${what}.kdf`) };
  return r.fail(what, `unknown scheme 0x${scheme.toString(16)}`, at);
}
export function writeTpmtScheme(w: Writer, s: TpmtScheme): void {
  w.u16(s.scheme);
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return;
  w.u16(s.hashAlg ?? TPM_ALG.NULL);
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0);
  if (s.scheme === TPM_ALG.XOR) w.u16(s.kdf ?? TPM_ALG.NULL);
}

// ---- §11.2.5.2 TPMS_ECC_POINT

export function readTpmsEccPoint(r: Reader): TpmsEccPoint {
  return { x: r.tpm2b("ecc.x", MAX_ECC_BYTES), y: r.tpm2b("ecc.y", MAX_ECC_BYTES) };
}
export function writeTpmsEccPoint(w: Writer, p: TpmsEccPoint): void {
  w.tpm2b(p.x).tpm2b(p.y);
}
export const decodeTpmsEccPoint = (b: Uint8Array): TpmsEccPoint => parseAll(b, "TPMS_ECC_POINT", readTpmsEccPoint);
export const encodeTpmsEccPoint = (p: TpmsEccPoint): Buffer => marshal((w) => writeTpmsEccPoint(w, p));

// ---- §12.2.4 TPMT_PUBLIC, §12.2.5 TPM2B_PUBLIC

export function readTpmtPublic(r: Reader): TpmtPublic {
  const at = r.offset;
  const type = r.u16("public.type");
  const nameAlg = r.u16("public.nameAlg");
  const objectAttributes = r.u32("public.objectAttributes");
  const authPolicy = r.tpm2b("public.authPolicy", MAX_DIGEST);
  const base = { nameAlg, objectAttributes, authPolicy };
  switch (type) {
    case TPM_ALG.RSA: {
      // §12.2.3.5 TPMS_RSA_PARMS
      const symmetric = readTpmtSymDefObject(r);
      const scheme = readTpmtScheme(r, "rsa.scheme");
      const keyBits = r.u16("rsa.keyBits");
      const exponent = r.u32("rsa.exponent");
      const unique = r.tpm2b("rsa.unique", MAX_RSA_BYTES);
      return { type, ...base, parameters: { symmetric, scheme, keyBits, exponent }, unique };
    }
    case TPM_ALG.ECC: {
      // §12.2.3.6 TPMS_ECC_PARMS
      const symmetric = readTpmtSymDefObject(r);
      const scheme = readTpmtScheme(r, "ecc.scheme");
      const curveID = r.u16("ecc.curveID");
      const kdf = readTpmtScheme(r, "ecc.kdf");
      return { type, ...base, parameters: { symmetric, scheme, curveID, kdf }, unique: readTpmsEccPoint(r) };
    }
    case TPM_ALG.KEYEDHASH: {
      const scheme = readTpmtScheme(r, "keyedHash.scheme");
      return { type, ...base, parameters: { scheme }, unique: r.tpm2b("keyedHash.unique", MAX_DIGEST) };
    }
    case TPM_ALG.SYMCIPHER: {
      const sym = readTpmtSymDefObject(r);
      return { type, ...base, parameters: { sym }, unique: r.tpm2b("sym.unique", MAX_DIGEST) };
    }
    default:
      return r.fail("public.type", `unknown object type 0x${type.toString(16)}`, at);
  }
}

export function writeTpmtPublic(w: Writer, p: TpmtPublic): void {
  w.u16(p.type).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy);
  switch (p.type) {
    case TPM_ALG.RSA:
      writeTpmtSymDefObject(w, p.parameters.symmetric);
      writeTpmtScheme(w, p.parameters.scheme);
      w.u16(p.parameters.keyBits).u32(p.parameters.exponent).tpm2b(p.unique);
      return;
    case TPM_ALG.ECC:
      writeTpmtSymDefObject(w, p.parameters.symmetric);
      writeTpmtScheme(w, p.parameters.scheme);
      w.u16(p.parameters.curveID);
      writeTpmtScheme(w, p.parameters.kdf);
      writeTpmsEccPoint(w, p.unique);
      return;
    case TPM_ALG.KEYEDHASH:
      writeTpmtScheme(w, p.parameters.scheme);
      w.tpm2b(p.unique);
      return;
    case TPM_ALG.SYMCIPHER:
      writeTpmtSymDefObject(w, p.parameters.sym);
      w.tpm2b(p.unique);
      return;
  }
}

export const decodeTpmtPublic = (b: Uint8Array): TpmtPublic => parseAll(b, "TPMT_PUBLIC", readTpmtPublic);
export const encodeTpmtPublic = (p: TpmtPublic): Buffer => marshal((w) => writeTpmtPublic(w, p));
export const readTpm2bPublic = (r: Reader): TpmtPublic => r.sized("TPM2B_PUBLIC", readTpmtPublic)!;
export const writeTpm2bPublic = (w: Writer, p: TpmtPublic): void => void w.sized((i) => writeTpmtPublic(i, p));
export const decodeTpm2bPublic = (b: Uint8Array): TpmtPublic => parseAll(b, "TPM2B_PUBLIC", readTpm2bPublic);
export const encodeTpm2bPublic = (p: TpmtPublic): Buffer => marshal((w) => writeTpm2bPublic(w, p));

// ---- §10.6.2 TPMS_PCR_SELECTION, §10.9.7 TPML_PCR_SELECTION

export function readTpmsPcrSelection(r: Reader): TpmsPcrSelection {
  const hash = r.u16("pcrSelection.hash");
  const at = r.offset;
  const size = r.u8("pcrSelection.sizeofSelect");
  if (size > MAX_PCR_SELECT) r.fail("pcrSelection.sizeofSelect", `${size} exceeds ${MAX_PCR_SELECT}`, at);
  return { hash, select: r.bytes(size, "pcrSelection.pcrSelect") };
}
export function writeTpmsPcrSelection(w: Writer, s: TpmsPcrSelection): void {
  w.u16(s.hash).u8(s.select.length).bytes(s.select);
}
export function readTpmlPcrSelection(r: Reader): TpmsPcrSelection[] {
  const at = r.offset;
  const count = r.u32("pcrSelection.count");
  if (count > MAX_BANKS) r.fail("pcrSelection.count", `${count} exceeds ${MAX_BANKS}`, at);
  const out: TpmsPcrSelection[] = [];
  for (let i = 0; i < count; i++) out.push(readTpmsPcrSelection(r));
  return out;
}
export function writeTpmlPcrSelection(w: Writer, l: TpmsPcrSelection[]): void {
  w.u32(l.length);
  for (const s of l) writeTpmsPcrSelection(w, s);
}
export const decodeTpmsPcrSelection = (b: Uint8Array) => parseAll(b, "TPMS_PCR_SELECTION", readTpmsPcrSelection);
export const encodeTpmsPcrSelection = (s: TpmsPcrSelection): Buffer => marshal((w) => writeTpmsPcrSelection(w, s));
export const decodeTpmlPcrSelection = (b: Uint8Array) => parseAll(b, "TPML_PCR_SELECTION", readTpmlPcrSelection);
export const encodeTpmlPcrSelection = (l: TpmsPcrSelection[]): Buffer => marshal((w) => writeTpmlPcrSelection(w, l));

/** A selection of `pcrs` in bank `hash`, with the 3-byte bitmap every PC Client TPM uses (or larger if needed). */
export function pcrSelection(hash: number, pcrs: number[]): TpmsPcrSelection {
  const size = Math.max(3, Math.ceil((Math.max(-1, ...pcrs) + 1) / 8));
  const select = Buffer.alloc(size);
  for (const p of pcrs) {
    if (!Number.isInteger(p) || p < 0 || p >= size * 8) throw new TpmTrustError("ERR_USAGE", `bad PCR index ${p}`);
    select[p >> 3] |= 1 << (p & 7);
  }
  return { hash, select };
}

/** PCR indices selected by a bitmap, ascending (the order the TPM concatenates them in, Part 3 §18.4). */
export function selectedPcrs(sel: TpmsPcrSelection): number[] {
  const out: number[] = [];
  for (let i = 0; i < sel.select.length * 8; i++) if (sel.select[i >> 3] & (1 << (i & 7))) out.push(i);
  return out;
}

// ---- §10.9.2 TPML_DIGEST

export function readTpmlDigest(r: Reader): Buffer[] {
  const at = r.offset;
  const count = r.u32("digests.count");
  if (count > MAX_DIGESTS) r.fail("digests.count", `${count} exceeds ${MAX_DIGESTS}`, at);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(r.tpm2b("digest", MAX_DIGEST));
  return out;
}
export function writeTpmlDigest(w: Writer, l: Buffer[]): void {
  w.u32(l.length);
  for (const d of l) w.tpm2b(d);
}
export const decodeTpmlDigest = (b: Uint8Array) => parseAll(b, "TPML_DIGEST", readTpmlDigest);
export const encodeTpmlDigest = (l: Buffer[]): Buffer => marshal((w) => writeTpmlDigest(w, l));

// ---- §10.12.12 TPMS_ATTEST, §10.12.13 TPM2B_ATTEST

function readClockInfo(r: Reader): TpmsClockInfo {
  // §10.11.1 TPMS_CLOCK_INFO
  const clock = r.u64("clockInfo.clock");
  const resetCount = r.u32("clockInfo.resetCount");
  const restartCount = r.u32("clockInfo.restartCount");
  const at = r.offset;
  const safe = r.u8("clockInfo.safe");
  if (safe > 1) r.fail("clockInfo.safe", `TPMI_YES_NO must be 0 or 1, is ${safe}`, at);
  return { clock, resetCount, restartCount, safe: safe === 1 };
}
function writeClockInfo(w: Writer, c: TpmsClockInfo): void {
  w.u64(c.clock).u32(c.resetCount).u32(c.restartCount).u8(c.safe ? 1 : 0);
}

export function readTpmsAttest(r: Reader): TpmsAttest {
  const magicAt = r.offset;
  const magic = r.u32("attest.magic");
  if (magic !== TPM_GENERATED_VALUE) {
    // Part 2 §10.12.12: a structure without TPM_GENERATED_VALUE was not produced by a TPM.
    throw new TpmTrustError("ERR_MAGIC", `attest.magic is 0x${magic.toString(16)}, not TPM_GENERATED_VALUE at offset ${r.base + magicAt}`, {
      offset: r.base + magicAt,
      magic,
    });
  }
  const typeAt = r.offset;
  const type = r.u16("attest.type");
  const qualifiedSigner = r.tpm2b("attest.qualifiedSigner", MAX_NAME);
  const extraData = r.tpm2b("attest.extraData", MAX_DATA);
  const clockInfo = readClockInfo(r);
  const firmwareVersion = r.u64("attest.firmwareVersion");
  const base = { magic, qualifiedSigner, extraData, clockInfo, firmwareVersion };
  switch (type) {
    case TPM_ST.ATTEST_CERTIFY: // §10.12.3 TPMS_CERTIFY_INFO
      return { type, ...base, attested: { name: r.tpm2b("certify.name", MAX_NAME), qualifiedName: r.tpm2b("certify.qualifiedName", MAX_NAME) } };
    case TPM_ST.ATTEST_QUOTE: // §10.12.4 TPMS_QUOTE_INFO
      return { type, ...base, attested: { pcrSelect: readTpmlPcrSelection(r), pcrDigest: r.tpm2b("quote.pcrDigest", MAX_DIGEST) } };
    case TPM_ST.ATTEST_CREATION: // §10.12.8 TPMS_CREATION_INFO
      return { type, ...base, attested: { objectName: r.tpm2b("creation.objectName", MAX_NAME), creationHash: r.tpm2b("creation.creationHash", MAX_DIGEST) } };
    case TPM_ST.ATTEST_NV: // §10.12.9 TPMS_NV_CERTIFY_INFO
      return {
        type,
        ...base,
        attested: { indexName: r.tpm2b("nv.indexName", MAX_NAME), offset: r.u16("nv.offset"), nvContents: r.tpm2b("nv.nvContents", MAX_NV_BUFFER) },
      };
    case TPM_ST.ATTEST_NV_DIGEST: // §10.12.10 TPMS_NV_DIGEST_CERTIFY_INFO
      return { type, ...base, attested: { indexName: r.tpm2b("nvDigest.indexName", MAX_NAME), nvDigest: r.tpm2b("nvDigest.nvDigest", MAX_DIGEST) } };
    case TPM_ST.ATTEST_TIME: {
      // §10.12.7 TPMS_TIME_ATTEST_INFO = TPMS_TIME_INFO ‖ firmwareVersion
      const time = r.u64("time.time");
      const clock = readClockInfo(r);
      return { type, ...base, attested: { time: { time, clockInfo: clock }, firmwareVersion: r.u64("time.firmwareVersion") } };
    }
    case TPM_ST.ATTEST_SESSION_AUDIT: {
      // §10.12.6 TPMS_SESSION_AUDIT_INFO
      const at = r.offset;
      const ex = r.u8("sessionAudit.exclusiveSession");
      if (ex > 1) r.fail("sessionAudit.exclusiveSession", `TPMI_YES_NO must be 0 or 1, is ${ex}`, at);
      return { type, ...base, attested: { exclusiveSession: ex === 1, sessionDigest: r.tpm2b("sessionAudit.sessionDigest", MAX_DIGEST) } };
    }
    case TPM_ST.ATTEST_COMMAND_AUDIT: // §10.12.5 TPMS_COMMAND_AUDIT_INFO
      return {
        type,
        ...base,
        attested: {
          auditCounter: r.u64("commandAudit.auditCounter"),
          digestAlg: r.u16("commandAudit.digestAlg"),
          auditDigest: r.tpm2b("commandAudit.auditDigest", MAX_DIGEST),
          commandDigest: r.tpm2b("commandAudit.commandDigest", MAX_DIGEST),
        },
      };
    default:
      return r.fail("attest.type", `unknown TPMI_ST_ATTEST 0x${type.toString(16)}`, typeAt);
  }
}

export function writeTpmsAttest(w: Writer, a: TpmsAttest): void {
  w.u32(a.magic).u16(a.type).tpm2b(a.qualifiedSigner).tpm2b(a.extraData);
  writeClockInfo(w, a.clockInfo);
  w.u64(a.firmwareVersion);
  switch (a.type) {
    case TPM_ST.ATTEST_CERTIFY:
      w.tpm2b(a.attested.name).tpm2b(a.attested.qualifiedName);
      return;
    case TPM_ST.ATTEST_QUOTE:
      writeTpmlPcrSelection(w, a.attested.pcrSelect);
      w.tpm2b(a.attested.pcrDigest);
      return;
    case TPM_ST.ATTEST_CREATION:
      w.tpm2b(a.attested.objectName).tpm2b(a.attested.creationHash);
      return;
    case TPM_ST.ATTEST_NV:
      w.tpm2b(a.attested.indexName).u16(a.attested.offset).tpm2b(a.attested.nvContents);
      return;
    case TPM_ST.ATTEST_NV_DIGEST:
      w.tpm2b(a.attested.indexName).tpm2b(a.attested.nvDigest);
      return;
    case TPM_ST.ATTEST_TIME:
      w.u64(a.attested.time.time);
      writeClockInfo(w, a.attested.time.clockInfo);
      w.u64(a.attested.firmwareVersion);
      return;
    case TPM_ST.ATTEST_SESSION_AUDIT:
      w.u8(a.attested.exclusiveSession ? 1 : 0).tpm2b(a.attested.sessionDigest);
      return;
    case TPM_ST.ATTEST_COMMAND_AUDIT:
      w.u64(a.attested.auditCounter).u16(a.attested.digestAlg).tpm2b(a.attested.auditDigest).tpm2b(a.attested.commandDigest);
      return;
  }
}

export const decodeTpmsAttest = (b: Uint8Array): TpmsAttest => parseAll(b, "TPMS_ATTEST", readTpmsAttest);
export const encodeTpmsAttest = (a: TpmsAttest): Buffer => marshal((w) => writeTpmsAttest(w, a));
export const readTpm2bAttest = (r: Reader): TpmsAttest => r.sized("TPM2B_ATTEST", readTpmsAttest)!;
export const writeTpm2bAttest = (w: Writer, a: TpmsAttest): void => void w.sized((i) => writeTpmsAttest(i, a));
export const decodeTpm2bAttest = (b: Uint8Array): TpmsAttest => parseAll(b, "TPM2B_ATTEST", readTpm2bAttest);
export const encodeTpm2bAttest = (a: TpmsAttest): Buffer => marshal((w) => writeTpm2bAttest(w, a));

// ---- §11.3.4 TPMT_SIGNATURE

export function readTpmtSignature(r: Reader): TpmtSignature {
  const at = r.offset;
  const sigAlg = r.u16("signature.sigAlg");
  switch (sigAlg) {
    case TPM_ALG.RSASSA:
    case TPM_ALG.RSAPSS: // §11.3.1 TPMS_SIGNATURE_RSA
      return { sigAlg, hash: r.u16("signature.hash"), sig: r.tpm2b("signature.sig", MAX_RSA_BYTES) };
    case TPM_ALG.ECDSA:
    case TPM_ALG.ECDAA:
    case TPM_ALG.SM2:
    case TPM_ALG.ECSCHNORR: // §11.3.2 TPMS_SIGNATURE_ECC
      return { sigAlg, hash: r.u16("signature.hash"), r: r.tpm2b("signature.r", MAX_ECC_BYTES), s: r.tpm2b("signature.s", MAX_ECC_BYTES) };
    case TPM_ALG.HMAC: {
      // TPMT_HA: hashAlg then a digest of that algorithm's fixed size (§10.3.2)
      const hashAt = r.offset;
      const hash = r.u16("signature.hashAlg");
      const h = HASH_ALGS[hash];
      if (!h) r.fail("signature.hashAlg", `unknown hash 0x${hash.toString(16)}`, hashAt);
      return { sigAlg, hash, digest: r.bytes(h.size, "signature.digest") };
    }
    case TPM_ALG.NULL:
      return { sigAlg };
    default:
      return r.fail("signature.sigAlg", `unknown signature algorithm 0x${sigAlg.toString(16)}`, at);
  }
}

export function writeTpmtSignature(w: Writer, s: TpmtSignature): void {
  w.u16(s.sigAlg);
  if (s.sigAlg === TPM_ALG.NULL) return;
  w.u16(s.hash);
  if ("sig" in s) w.tpm2b(s.sig);
  else if ("r" in s) w.tpm2b(s.r).tpm2b(s.s);
  else w.bytes(s.digest);
}
export const decodeTpmtSignature = (b: Uint8Array): TpmtSignature => parseAll(b, "TPMT_SIGNATURE", readTpmtSignature);
export const encodeTpmtSignature = (s: TpmtSignature): Buffer => marshal((w) => writeTpmtSignature(w, s));

// ---- §15.1 TPMS_CREATION_DATA, §15.2 TPM2B_CREATION_DATA

export function readTpmsCreationData(r: Reader): TpmsCreationData {
  const pcrSelect = readTpmlPcrSelection(r);
  const pcrDigest = r.tpm2b("creation.pcrDigest", MAX_DIGEST);
  const locality = r.u8("creation.locality");
  const parentNameAlg = r.u16("creation.parentNameAlg");
  const parentName = r.tpm2b("creation.parentName", MAX_NAME);
  const parentQualifiedName = r.tpm2b("creation.parentQualifiedName", MAX_NAME);
  const outsideInfo = r.tpm2b("creation.outsideInfo", MAX_DATA);
  return { pcrSelect, pcrDigest, locality, parentNameAlg, parentName, parentQualifiedName, outsideInfo };
}
export function writeTpmsCreationData(w: Writer, c: TpmsCreationData): void {
  writeTpmlPcrSelection(w, c.pcrSelect);
  w.tpm2b(c.pcrDigest).u8(c.locality).u16(c.parentNameAlg).tpm2b(c.parentName).tpm2b(c.parentQualifiedName).tpm2b(c.outsideInfo);
}
export const decodeTpmsCreationData = (b: Uint8Array) => parseAll(b, "TPMS_CREATION_DATA", readTpmsCreationData);
export const encodeTpmsCreationData = (c: TpmsCreationData): Buffer => marshal((w) => writeTpmsCreationData(w, c));
export const readTpm2bCreationData = (r: Reader): TpmsCreationData => r.sized("TPM2B_CREATION_DATA", readTpmsCreationData)!;
export const decodeTpm2bCreationData = (b: Uint8Array) => parseAll(b, "TPM2B_CREATION_DATA", readTpm2bCreationData);
export const encodeTpm2bCreationData = (c: TpmsCreationData): Buffer => marshal((w) => w.sized((i) => writeTpmsCreationData(i, c)));

// ---- §12.3.2.5 TPMT_SENSITIVE, §12.3.3 TPM2B_SENSITIVE

export function readTpmtSensitive(r: Reader): TpmtSensitive {
  const at = r.offset;
  const sensitiveType = r.u16("sensitive.type");
  if (![TPM_ALG.RSA, TPM_ALG.ECC, TPM_ALG.KEYEDHASH, TPM_ALG.SYMCIPHER].includes(sensitiveType as 1)) {
    r.fail("sensitive.type", `unknown object type 0x${sensitiveType.toString(16)}`, at);
  }
  return {
    sensitiveType,
    authValue: r.tpm2b("sensitive.authValue", MAX_DIGEST),
    seedValue: r.tpm2b("sensitive.seedValue", MAX_DIGEST),
    sensitive: r.tpm2b("sensitive.sensitive", MAX_SENSITIVE),
  };
}
export function writeTpmtSensitive(w: Writer, s: TpmtSensitive): void {
  w.u16(s.sensitiveType).tpm2b(s.authValue).tpm2b(s.seedValue).tpm2b(s.sensitive);
}
export const decodeTpmtSensitive = (b: Uint8Array) => parseAll(b, "TPMT_SENSITIVE", readTpmtSensitive);
export const encodeTpmtSensitive = (s: TpmtSensitive): Buffer => marshal((w) => writeTpmtSensitive(w, s));
export const readTpm2bSensitive = (r: Reader): TpmtSensitive => r.sized("TPM2B_SENSITIVE", readTpmtSensitive)!;
export const decodeTpm2bSensitive = (b: Uint8Array) => parseAll(b, "TPM2B_SENSITIVE", readTpm2bSensitive);
export const encodeTpm2bSensitive = (s: TpmtSensitive): Buffer => marshal((w) => w.sized((i) => writeTpmtSensitive(i, s)));

// ---- §12.3.7 TPM2B_PRIVATE, §11.4.33 TPM2B_ENCRYPTED_SECRET: opaque to everyone but the TPM.

export const decodeTpm2bPrivate = (b: Uint8Array): Buffer => parseAll(b, "TPM2B_PRIVATE", (r) => r.tpm2b("TPM2B_PRIVATE", 4096));
export const encodeTpm2bPrivate = (b: Uint8Array): Buffer => marshal((w) => w.tpm2b(b));
export const decodeTpm2bEncryptedSecret = (b: Uint8Array): Buffer => parseAll(b, "TPM2B_ENCRYPTED_SECRET", (r) => r.tpm2b("TPM2B_ENCRYPTED_SECRET", MAX_RSA_BYTES));
export const encodeTpm2bEncryptedSecret = (b: Uint8Array): Buffer => marshal((w) => w.tpm2b(b));

// ---- §12.4.3 TPMS_ID_OBJECT / TPM2B_ID_OBJECT. encIdentity is an encrypted TPM2B_DIGEST whose
// size field is encrypted too, so on the wire it is simply the bytes after integrityHMAC.

export function readTpmsIdObject(r: Reader): TpmsIdObject {
  const integrityHMAC = r.tpm2b("idObject.integrityHMAC", MAX_DIGEST);
  return { integrityHMAC, encIdentity: r.bytes(r.remaining, "idObject.encIdentity") };
}
export const readTpm2bIdObject = (r: Reader): TpmsIdObject => r.sized("TPM2B_ID_OBJECT", readTpmsIdObject)!;
export const writeTpm2bIdObject = (w: Writer, o: TpmsIdObject): void => void w.sized((i) => i.tpm2b(o.integrityHMAC).bytes(o.encIdentity));
export const decodeTpm2bIdObject = (b: Uint8Array) => parseAll(b, "TPM2B_ID_OBJECT", readTpm2bIdObject);
export const encodeTpm2bIdObject = (o: TpmsIdObject): Buffer => marshal((w) => writeTpm2bIdObject(w, o));

// ---- §13.5 TPMS_NV_PUBLIC, §13.6 TPM2B_NV_PUBLIC

export function readTpmsNvPublic(r: Reader): TpmsNvPublic {
  return {
    nvIndex: r.u32("nv.nvIndex"),
    nameAlg: r.u16("nv.nameAlg"),
    attributes: r.u32("nv.attributes"),
    authPolicy: r.tpm2b("nv.authPolicy", MAX_DIGEST),
    dataSize: r.u16("nv.dataSize"),
  };
}
export function writeTpmsNvPublic(w: Writer, n: TpmsNvPublic): void {
  w.u32(n.nvIndex).u16(n.nameAlg).u32(n.attributes).tpm2b(n.authPolicy).u16(n.dataSize);
}
export const decodeTpmsNvPublic = (b: Uint8Array) => parseAll(b, "TPMS_NV_PUBLIC", readTpmsNvPublic);
export const encodeTpmsNvPublic = (n: TpmsNvPublic): Buffer => marshal((w) => writeTpmsNvPublic(w, n));
export const readTpm2bNvPublic = (r: Reader): TpmsNvPublic => r.sized("TPM2B_NV_PUBLIC", readTpmsNvPublic)!;
export const writeTpm2bNvPublic = (w: Writer, n: TpmsNvPublic): void => void w.sized((i) => writeTpmsNvPublic(i, n));
export const decodeTpm2bNvPublic = (b: Uint8Array) => parseAll(b, "TPM2B_NV_PUBLIC", readTpm2bNvPublic);
export const encodeTpm2bNvPublic = (n: TpmsNvPublic): Buffer => marshal((w) => writeTpm2bNvPublic(w, n));

// ---- Names (Part 1 §16): Name = nameAlg ‖ H_nameAlg(public area); handles name themselves.

export function objectName(pub: TpmtPublic): Buffer {
  return nameOf(pub.nameAlg, encodeTpmtPublic(pub));
}
export function nvName(nv: TpmsNvPublic): Buffer {
  return nameOf(nv.nameAlg, encodeTpmsNvPublic(nv));
}
function nameOf(nameAlg: number, area: Buffer): Buffer {
  const w = new Writer().u16(nameAlg).bytes(hashOf(nameAlg, area));
  return w.finish();
}
/** The Name of a permanent handle (e.g. a hierarchy) is the handle itself (Part 1 §16). */
export function handleName(handle: number): Buffer {
  return new Writer().u32(handle).finish();
}
/** Qualified Name (Part 1 §16.6): nameAlg ‖ H_nameAlg(parentQualifiedName ‖ Name). */
export function qualifiedName(parentQualifiedName: Uint8Array, name: Uint8Array): Buffer {
  const nameAlg = (name[0] << 8) | name[1];
  return new Writer().u16(nameAlg).bytes(hashOf(nameAlg, parentQualifiedName, name)).finish();
}
