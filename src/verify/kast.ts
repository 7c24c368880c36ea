/**
 * The AD CS key attestation statement ("KAST", CSR attribute szOID_ENROLL_ATTESTATION_STATEMENT
 * 1.3.6.1.4.1.311.21.24), as MS-WCCE 2.2.2.5 KeyAttestationStatement and Windows' Platform Crypto
 * Provider build it. All PCP headers are little-endian u32s; TPM structures inside are big-endian.
 *
 *   KAST: Magic "KAST" ‖ Version 1 ‖ Platform 2 ‖ HeaderSize 28 ‖ cbIdBinding ‖ cbKeyAttestation ‖ cbAIKOpaque
 *         ‖ idBinding ‖ keyAttestation ‖ aikOpaque                       (exactly filling the buffer)
 *   idBinding = TPM2B_PUBLIC(AIK) ‖ TPM2B_CREATION_DATA ‖ TPM2B_ATTEST ‖ TPMT_SIGNATURE: the AIK's
 *         TPM2_CertifyCreation of itself (Part 3 §18.3).
 *   keyAttestation = PCP_KEY_ATTESTATION_BLOB (MS-WCCE 2.2.2.5; TSS.MSR PCPTool.v11/inc/TpmAtt.h,
 *         magic PCP_KEY_ATTESTATION_MAGIC 'SDAK' = bytes "KADS"):
 *         Magic ‖ Platform 2 ‖ HeaderSize 24 ‖ cbKeyAttest ‖ cbSignature ‖ cbKeyBlob
 *         ‖ keyAttest: TPMS_ATTEST of TPM2_Certify (Part 3 §18.2), no TPM2B size
 *         ‖ signature: the raw RSASSA-PKCS1-v1_5 signature by the AIK (SHA-1 or SHA-256)
 *         ‖ keyBlob: the attested key's PCP key blob (below).
 *   PCP key blob (TpmAtt.h PCP_KEY_BLOB_WIN8: 13 u32 = 52 bytes; PCP_20_KEY_BLOB adds u16 pcrAlgId,
 *         padded to 56 as Windows 11 sends it; magic BCRYPT_PCP_KEY_MAGIC 'MPCP' = bytes "PCPM"):
 *         magic ‖ cbHeader ‖ pcpType 2 ‖ flags ‖ cbPublic ‖ cbPrivate ‖ cbMigrationPublic
 *         ‖ cbMigrationPrivate ‖ cbPolicyDigestList ‖ cbPCRBinding ‖ cbPCRDigest ‖ cbEncryptedSecret
 *         ‖ cbTpm12HostageBlob [‖ pcrAlgId ‖ pad] then the parts in that order; public = TPM2B_PUBLIC.
 * The AIK opaque part (the AIK's own PCP key blob) is kept, never interpreted. Pure.
 */
import { TpmTrustError } from "../errors.js";
import { Reader } from "../tpm/marshal.js";
import { TPM_ALG, TPM_ST } from "../tpm/constants.js";
import { hashOf, objectName, readTpm2bAttest, readTpm2bCreationData, readTpm2bPublic, readTpmsAttest, readTpmtSignature } from "../tpm/structures.js";
import type { TpmsAttest, TpmsCreationData, TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifyCertify, type CertifyFacts } from "./certify.js";

const KAST_MAGIC = 0x5453414b;
const KAST_HEADER_SIZE = 28;
/** "KADS" read as a little-endian u32 */
const KADS_MAGIC = 0x5344414b;
const KADS_HEADER_SIZE = 24;
/** "PCPM" read as a little-endian u32 */
const PCPM_MAGIC = 0x4d504350;
/** sizeof(PCP_KEY_BLOB_WIN8) */
const PCPM_MIN_HEADER = 52;
/** Bound on the whole statement (a real Windows 11 one has 3,911 bytes). */
const MAX_KAST_BYTES = 16 * 1024;

/** A TPM2_CertifyCreation binding of one object (the idBinding). */
export interface CreationBinding {
  public: TpmtPublic;
  /** TPMT_PUBLIC bytes as sent */
  publicArea: Buffer;
  name: Buffer;
  creationData: TpmsCreationData;
  /** TPMS_CREATION_DATA bytes as sent (what creationHash covers) */
  creationDataBytes: Buffer;
  attest: TpmsAttest;
  /** TPMS_ATTEST bytes as sent (what the signature covers) */
  attestBytes: Buffer;
  signature: TpmtSignature;
}

/** A PCP key blob: its header values and the key's public area. */
export interface PcpKeyBlob {
  cbHeader: number;
  pcpType: number;
  flags: number;
  sizes: { public: number; private: number; migrationPublic: number; migrationPrivate: number; policyDigestList: number; pcrBinding: number; pcrDigest: number; encryptedSecret: number; tpm12HostageBlob: number };
  public: TpmtPublic;
  /** TPMT_PUBLIC bytes as sent */
  publicArea: Buffer;
  name: Buffer;
}

/** The PCP key attestation ("KADS"): the AIK's TPM2_Certify of the key in `keyBlob`. */
export interface PcpKeyAttestation {
  platform: number;
  attest: TpmsAttest;
  /** TPMS_ATTEST bytes as sent (what the signature covers) */
  attestBytes: Buffer;
  /** raw RSASSA signature */
  signature: Buffer;
  keyBlob: PcpKeyBlob;
}

export interface KastStatement {
  version: number;
  platform: number;
  idBinding: CreationBinding;
  /** null when the statement only binds the AIK (an AIK request) */
  keyAttestation: PcpKeyAttestation | null;
  aikOpaque: Buffer;
}

function bad(message: string, offset: number, field: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_BAD_VALUE", `KAST ${field}: ${message} at offset ${offset}`, { offset, field });
}
function truncated(what: string, need: number, have: number, offset: number): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_TRUNCATED", `${what} needs ${need} bytes, has ${have} at offset ${offset}`, { offset: offset + have, field: what });
}

/** Checks that header sizes fill `buf` exactly (`base` = its absolute offset). */
function fill(buf: Buffer, total: number, base: number, what: string): void {
  if (total > buf.length) throw truncated(what, total, buf.length, base);
  if (total < buf.length) throw new TpmTrustError("ERR_PARSE_TRAILING_BYTES", `${buf.length - total} trailing bytes after ${what}`, { offset: base + total, trailing: buf.length - total });
}

/** Reads the idBinding, which must fill `buf` exactly. */
function readBinding(buf: Buffer, base: number): CreationBinding {
  const r = new Reader(buf, base);
  const pubStart = r.offset + 2;
  const pub = readTpm2bPublic(r);
  const publicArea = Buffer.from(buf.subarray(pubStart, r.offset));
  const cdStart = r.offset + 2;
  const creationData = readTpm2bCreationData(r);
  const creationDataBytes = Buffer.from(buf.subarray(cdStart, r.offset));
  const atStart = r.offset + 2;
  const attest = readTpm2bAttest(r);
  const attestBytes = Buffer.from(buf.subarray(atStart, r.offset));
  const signature = readTpmtSignature(r);
  r.end("idBinding");
  return { public: pub, publicArea, name: objectName(pub), creationData, creationDataBytes, attest, attestBytes, signature };
}

/** Parses a PCP key blob ("PCPM") that must fill `buf` exactly. */
function parsePcpKeyBlob(input: Uint8Array, base = 0): PcpKeyBlob {
  const buf = Buffer.from(input);
  if (buf.length < PCPM_MIN_HEADER) throw truncated("PCP key blob header", PCPM_MIN_HEADER, buf.length, base);
  const u32 = (i: number) => buf.readUInt32LE(i * 4);
  if (u32(0) !== PCPM_MAGIC) throw bad(`magic 0x${u32(0).toString(16)} is not "PCPM" (0x4d504350)`, base, "keyBlob.magic");
  const [cbHeader, pcpType, flags] = [u32(1), u32(2), u32(3)];
  if (cbHeader < PCPM_MIN_HEADER) throw bad(`cbHeader ${cbHeader} is below ${PCPM_MIN_HEADER}`, base + 4, "keyBlob.cbHeader");
  if (cbHeader > buf.length) throw truncated("PCP key blob header", cbHeader, buf.length, base);
  if (pcpType !== 2) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `PCP key blob type ${pcpType} is not TPM 2.0 (2)`, { offset: base + 8, field: "keyBlob.pcpType" });
  const n = [4, 5, 6, 7, 8, 9, 10, 11, 12].map(u32);
  const sizes = { public: n[0], private: n[1], migrationPublic: n[2], migrationPrivate: n[3], policyDigestList: n[4], pcrBinding: n[5], pcrDigest: n[6], encryptedSecret: n[7], tpm12HostageBlob: n[8] };
  fill(buf, n.reduce((a, b) => a + b, cbHeader), base, "PCP key blob");
  if (sizes.public === 0) throw bad("cbPublic is 0", base + 16, "keyBlob.cbPublic");
  const r = new Reader(buf.subarray(cbHeader, cbHeader + sizes.public), base + cbHeader);
  const pub = readTpm2bPublic(r);
  r.end("keyBlob.public");
  return { cbHeader, pcpType, flags, sizes, public: pub, publicArea: Buffer.from(buf.subarray(cbHeader + 2, cbHeader + sizes.public)), name: objectName(pub) };
}

/** Parses a PCP key attestation blob ("KADS") that must fill `buf` exactly. */
function parsePcpKeyAttestation(input: Uint8Array, base = 0): PcpKeyAttestation {
  const buf = Buffer.from(input);
  if (buf.length < KADS_HEADER_SIZE) throw truncated("key attestation header", KADS_HEADER_SIZE, buf.length, base);
  const u32 = (i: number) => buf.readUInt32LE(i * 4);
  const [magic, platform, headerSize, cbKeyAttest, cbSignature, cbKeyBlob] = [0, 1, 2, 3, 4, 5].map(u32);
  if (magic !== KADS_MAGIC) throw bad(`magic 0x${magic.toString(16)} is not "KADS" (0x5344414b)`, base, "keyAttestation.magic");
  if (platform !== 2) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `key attestation platform ${platform} is not TPM 2.0 (2)`, { offset: base + 4, field: "keyAttestation.platform" });
  if (headerSize !== KADS_HEADER_SIZE) throw bad(`HeaderSize ${headerSize} is not ${KADS_HEADER_SIZE}`, base + 8, "keyAttestation.headerSize");
  fill(buf, headerSize + cbKeyAttest + cbSignature + cbKeyBlob, base, "key attestation");
  if (cbKeyAttest === 0) throw bad("cbKeyAttest is 0", base + 12, "keyAttestation.cbKeyAttest");
  if (cbSignature === 0) throw bad("cbSignature is 0", base + 16, "keyAttestation.cbSignature");
  if (cbKeyBlob === 0) throw bad("cbKeyBlob is 0", base + 20, "keyAttestation.cbKeyBlob");
  let at = headerSize;
  const attestBytes = Buffer.from(buf.subarray(at, at + cbKeyAttest));
  const r = new Reader(attestBytes, base + at);
  const attest = readTpmsAttest(r);
  r.end("keyAttestation.keyAttest");
  at += cbKeyAttest;
  const signature = Buffer.from(buf.subarray(at, at + cbSignature));
  at += cbSignature;
  const keyBlob = parsePcpKeyBlob(buf.subarray(at, at + cbKeyBlob), base + at);
  return { platform, attest, attestBytes, signature, keyBlob };
}

/** Parses a KAST statement strictly: header values, sizes that exactly fill the buffer, each part consumed exactly. */
export function parseKast(input: Uint8Array): KastStatement {
  const buf = Buffer.from(input);
  if (buf.length > MAX_KAST_BYTES) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `KAST statement of ${buf.length} bytes exceeds ${MAX_KAST_BYTES}`, { size: buf.length, max: MAX_KAST_BYTES });
  if (buf.length < KAST_HEADER_SIZE) throw new TpmTrustError("ERR_PARSE_TRUNCATED", `KAST header needs ${KAST_HEADER_SIZE} bytes, have ${buf.length}`, { offset: buf.length, field: "header" });
  const u32 = (i: number) => buf.readUInt32LE(i * 4);
  const [magic, version, platform, headerSize, cbId, cbKey, cbOpaque] = [0, 1, 2, 3, 4, 5, 6].map(u32);
  if (magic !== KAST_MAGIC) throw bad(`magic 0x${magic.toString(16)} is not "KAST" (0x5453414b)`, 0, "magic");
  if (version !== 1) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `KAST version ${version} is not supported (only 1)`, { offset: 4, field: "version" });
  if (platform !== 2) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `KAST platform ${platform} is not TPM 2.0 (2)`, { offset: 8, field: "platform" });
  if (headerSize !== KAST_HEADER_SIZE) throw bad(`HeaderSize ${headerSize} is not ${KAST_HEADER_SIZE}`, 12, "headerSize");
  const total = headerSize + cbId + cbKey + cbOpaque;
  if (total > buf.length) throw new TpmTrustError("ERR_PARSE_TRUNCATED", `KAST sizes add up to ${total} bytes, have ${buf.length}`, { offset: buf.length, field: "sizes" });
  if (total < buf.length) throw new TpmTrustError("ERR_PARSE_TRAILING_BYTES", `${buf.length - total} trailing bytes after the KAST statement`, { offset: total, trailing: buf.length - total });
  if (cbId === 0) throw bad("idBinding is empty", 16, "cbIdBinding");
  let at = headerSize;
  const idBinding = readBinding(buf.subarray(at, at + cbId), at);
  at += cbId;
  const keyAttestation = cbKey === 0 ? null : parsePcpKeyAttestation(buf.subarray(at, at + cbKey), at);
  at += cbKey;
  return { version, platform, idBinding, keyAttestation, aikOpaque: Buffer.from(buf.subarray(at, at + cbOpaque)) };
}

/**
 * Checks the AIK's CertifyCreation of itself (idBinding) with `aik`: attestation type CREATION, the
 * signature, objectName = Name(public), creationHash = H_nameAlg(creation data), AIK attributes.
 */
export function verifyIdBinding(b: CreationBinding, aik: TpmtPublic): CertifyFacts {
  if (b.attest.type !== TPM_ST.ATTEST_CREATION) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `the KAST idBinding must be TPM_ST_ATTEST_CREATION (0x801a), got 0x${b.attest.type.toString(16)}`, { type: b.attest.type });
  }
  const facts = verifyCertify({ attestBytes: b.attestBytes, attest: b.attest, signature: b.signature, ak: aik, key: b.public, allowRestricted: true });
  const expected = hashOf(b.public.nameAlg, b.creationDataBytes);
  if (!b.attest.attested.creationHash.equals(expected)) {
    throw new TpmTrustError("ERR_NAME_MISMATCH", "creationHash does not cover the creation data sent", {
      creationHash: b.attest.attested.creationHash.toString("hex"),
      expected: expected.toString("hex"),
    });
  }
  return facts;
}

export interface KeyAttestationFacts extends CertifyFacts {
  /** "rsassa-sha256" or "rsassa-sha1" */
  signatureScheme: string;
}

const HASH_NAMES: Record<number, string> = { [TPM_ALG.SHA1]: "sha1", [TPM_ALG.SHA256]: "sha256", [TPM_ALG.SHA384]: "sha384", [TPM_ALG.SHA512]: "sha512" };

/**
 * Checks a KADS key attestation with the AIK: TPM2_Certify (TPM_ST_ATTEST_CERTIFY), the AIK's raw
 * RSASSA signature (with the hash the AIK's scheme fixes: SHA-1 or SHA-256 on Windows), certified Name = Name(key blob's public), the key's attributes (fixedTPM,
 * fixedParent, sensitiveDataOrigin, not restricted), and extraData = `nonce` when one is expected.
 */
export function verifyKeyAttestation(ka: PcpKeyAttestation, aik: TpmtPublic, o: { nonce?: Uint8Array } = {}): KeyAttestationFacts {
  if (ka.attest.type !== TPM_ST.ATTEST_CERTIFY) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `a KADS key attestation must be TPM_ST_ATTEST_CERTIFY (0x8017), got 0x${ka.attest.type.toString(16)}`, { type: ka.attest.type });
  }
  if (aik.type !== TPM_ALG.RSA) throw new TpmTrustError("ERR_SIGNATURE_SCHEME", "a KADS signature is raw RSASSA: the AIK must be an RSA key", { aikType: aik.type });
  const scheme = aik.parameters.scheme;
  // a restricted signing key has a fixed scheme (Part 1 §25.3): the TPM signed with its hash
  if (scheme.scheme !== TPM_ALG.RSASSA || scheme.hashAlg === undefined) throw new TpmTrustError("ERR_SIGNATURE_SCHEME", "the AIK's scheme is not RSASSA: it cannot have made a KADS signature", { scheme: scheme.scheme });
  const signature: TpmtSignature = { sigAlg: TPM_ALG.RSASSA, hash: scheme.hashAlg, sig: ka.signature };
  const facts = verifyCertify({ attestBytes: ka.attestBytes, attest: ka.attest, signature, ak: aik, key: ka.keyBlob.public, nonce: o.nonce });
  return { ...facts, signatureScheme: `rsassa-${HASH_NAMES[scheme.hashAlg] ?? scheme.hashAlg}` };
}
