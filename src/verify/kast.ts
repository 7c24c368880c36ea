/**
 * The AD CS key attestation statement ("KAST", CSR attribute szOID_ENROLL_ATTESTATION_STATEMENT
 * 1.3.6.1.4.1.311.21.24, MS-WCCE 2.2.2.7.6 / 3.1.1.4.3.4): a little-endian header
 *
 *   u32 Magic 0x5453414B ("KAST") ‖ u32 Version (1) ‖ u32 Platform (2 = TPM 2.0) ‖ u32 HeaderSize (28)
 *   ‖ u32 cbIdBinding ‖ u32 cbKeyAttestation ‖ u32 cbAIKOpaque
 *
 * followed by idBinding, keyAttestation and the AIK opaque blob, exactly filling the buffer.
 * idBinding = TPM2B_PUBLIC(AIK) ‖ TPM2B_CREATION_DATA ‖ TPM2B_ATTEST ‖ TPMT_SIGNATURE: the AIK's
 * TPM2_CertifyCreation of itself (Part 3 §18.3). tpmtrust reads keyAttestation in the same layout,
 * for the certified key: TPM2B_PUBLIC(key) ‖ TPM2B_CREATION_DATA ‖ TPM2B_ATTEST ‖ TPMT_SIGNATURE,
 * the CertifyCreation signed by the AIK. The AIK opaque blob is kept, never interpreted. Pure.
 */
import { TpmTrustError } from "../errors.js";
import { Reader } from "../tpm/marshal.js";
import { TPM_ST } from "../tpm/constants.js";
import { hashOf, objectName, readTpm2bAttest, readTpm2bCreationData, readTpm2bPublic, readTpmtSignature } from "../tpm/structures.js";
import type { TpmsAttest, TpmsCreationData, TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifyCertify, type CertifyFacts } from "./certify.js";

export const KAST_MAGIC = 0x5453414b;
export const KAST_HEADER_SIZE = 28;
/** Bound on the whole statement (two RSA-4096 bindings need well under 4 KiB). */
export const MAX_KAST_BYTES = 16 * 1024;

/** A TPM2_CertifyCreation binding of one object. */
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

export interface KastStatement {
  version: number;
  platform: number;
  idBinding: CreationBinding;
  /** null when the statement only binds the AIK (an AIK request) */
  keyAttestation: CreationBinding | null;
  aikOpaque: Buffer;
}

function bad(message: string, offset: number, field: string): TpmTrustError {
  return new TpmTrustError("ERR_PARSE_BAD_VALUE", `KAST ${field}: ${message} at offset ${offset}`, { offset, field });
}

/** Reads one binding that must fill `buf` exactly; `base` is its absolute offset. */
function readBinding(buf: Buffer, base: number, what: string): CreationBinding {
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
  r.end(what);
  return { public: pub, publicArea, name: objectName(pub), creationData, creationDataBytes, attest, attestBytes, signature };
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
  const idBinding = readBinding(buf.subarray(at, at + cbId), at, "idBinding");
  at += cbId;
  const keyAttestation = cbKey === 0 ? null : readBinding(buf.subarray(at, at + cbKey), at, "keyAttestation");
  at += cbKey;
  return { version, platform, idBinding, keyAttestation, aikOpaque: Buffer.from(buf.subarray(at, at + cbOpaque)) };
}

/**
 * Checks one CertifyCreation binding signed by `aik`: attestation type CREATION, the AIK's
 * signature, objectName = Name(public), creationHash = H_nameAlg(creation data), the object's
 * attributes (fixedTPM, fixedParent, sensitiveDataOrigin; restricted only for the AIK's own binding),
 * and the nonce in extraData when one is expected.
 */
export function verifyCreationBinding(b: CreationBinding, aik: TpmtPublic, o: { isAik?: boolean; nonce?: Uint8Array } = {}): CertifyFacts {
  if (b.attest.type !== TPM_ST.ATTEST_CREATION) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `a KAST binding must be TPM_ST_ATTEST_CREATION (0x801a), got 0x${b.attest.type.toString(16)}`, { type: b.attest.type });
  }
  const facts = verifyCertify({ attestBytes: b.attestBytes, attest: b.attest, signature: b.signature, ak: aik, key: b.public, nonce: o.nonce, allowRestricted: o.isAik });
  const expected = hashOf(b.public.nameAlg, b.creationDataBytes);
  if (b.attest.type === TPM_ST.ATTEST_CREATION && !b.attest.attested.creationHash.equals(expected)) {
    throw new TpmTrustError("ERR_NAME_MISMATCH", "creationHash does not cover the creation data sent", {
      creationHash: b.attest.attested.creationHash.toString("hex"),
      expected: expected.toString("hex"),
    });
  }
  return facts;
}
