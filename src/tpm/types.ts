/**
 * TPM 2.0 structures as plain TypeScript data, named as in TPM 2.0 Library Part 2.
 * Byte strings are Buffers; u64 values are bigints. Marshalling lives in structures.ts.
 */
import type { TPM_ALG } from "./constants.js";

type Alg<K extends keyof typeof TPM_ALG> = (typeof TPM_ALG)[K];

/** §11.1.6 TPMT_SYM_DEF_OBJECT (algorithm NULL carries no keyBits/mode). */
export interface TpmtSymDefObject {
  algorithm: number;
  keyBits?: number;
  mode?: number;
}

/**
 * Asymmetric/keyed-hash schemes (§11.2.3.2 TPMT_KEYEDHASH_SCHEME, §11.2.4.2 TPMT_RSA_SCHEME,
 * §11.2.5.6 TPMT_ECC_SCHEME, §11.2.3.3 TPMT_KDF_SCHEME). `hashAlg` absent for NULL;
 * `count` only for ECDAA; `kdf` only for keyed-hash XOR.
 */
export interface TpmtScheme {
  scheme: number;
  hashAlg?: number;
  count?: number;
  kdf?: number;
}

/** §12.2.3.5 TPMS_RSA_PARMS */
export interface TpmsRsaParms {
  symmetric: TpmtSymDefObject;
  scheme: TpmtScheme;
  keyBits: number;
  /** 0 means the default 65537 */
  exponent: number;
}

/** §12.2.3.6 TPMS_ECC_PARMS */
export interface TpmsEccParms {
  symmetric: TpmtSymDefObject;
  scheme: TpmtScheme;
  curveID: number;
  kdf: TpmtScheme;
}

/** §12.2.3.3 TPMS_KEYEDHASH_PARMS */
export interface TpmsKeyedHashParms {
  scheme: TpmtScheme;
}

/** §12.2.3.4 TPMS_SYMCIPHER_PARMS */
export interface TpmsSymCipherParms {
  sym: TpmtSymDefObject;
}

/** §11.2.5.2 TPMS_ECC_POINT */
export interface TpmsEccPoint {
  x: Buffer;
  y: Buffer;
}

interface TpmtPublicBase {
  nameAlg: number;
  /** TPMA_OBJECT bit field (§8.3) */
  objectAttributes: number;
  authPolicy: Buffer;
}
/** §12.2.4 TPMT_PUBLIC, discriminated by `type`. */
export type TpmtPublic =
  | (TpmtPublicBase & { type: Alg<"RSA">; parameters: TpmsRsaParms; unique: Buffer })
  | (TpmtPublicBase & { type: Alg<"ECC">; parameters: TpmsEccParms; unique: TpmsEccPoint })
  | (TpmtPublicBase & { type: Alg<"KEYEDHASH">; parameters: TpmsKeyedHashParms; unique: Buffer })
  | (TpmtPublicBase & { type: Alg<"SYMCIPHER">; parameters: TpmsSymCipherParms; unique: Buffer });

export type RsaPublic = Extract<TpmtPublic, { type: Alg<"RSA"> }>;
export type EccPublic = Extract<TpmtPublic, { type: Alg<"ECC"> }>;

/** §10.6.2 TPMS_PCR_SELECTION: `select` is the raw bitmap (sizeofSelect = select.length). */
export interface TpmsPcrSelection {
  hash: number;
  select: Buffer;
}

/** §10.11.1 TPMS_CLOCK_INFO */
export interface TpmsClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

/** §10.12.x attested bodies, discriminated by the TPMI_ST_ATTEST type. */
export interface TpmsCertifyInfo {
  name: Buffer;
  qualifiedName: Buffer;
}
export interface TpmsQuoteInfo {
  pcrSelect: TpmsPcrSelection[];
  pcrDigest: Buffer;
}
export interface TpmsCreationInfo {
  objectName: Buffer;
  creationHash: Buffer;
}
export interface TpmsNvCertifyInfo {
  indexName: Buffer;
  offset: number;
  nvContents: Buffer;
}
export interface TpmsNvDigestCertifyInfo {
  indexName: Buffer;
  nvDigest: Buffer;
}
export interface TpmsTimeAttestInfo {
  time: { time: bigint; clockInfo: TpmsClockInfo };
  firmwareVersion: bigint;
}
export interface TpmsSessionAuditInfo {
  exclusiveSession: boolean;
  sessionDigest: Buffer;
}
export interface TpmsCommandAuditInfo {
  auditCounter: bigint;
  digestAlg: number;
  auditDigest: Buffer;
  commandDigest: Buffer;
}

interface TpmsAttestBase {
  magic: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clockInfo: TpmsClockInfo;
  firmwareVersion: bigint;
}
/** §10.12.12 TPMS_ATTEST */
export type TpmsAttest =
  | (TpmsAttestBase & { type: 0x8017; attested: TpmsCertifyInfo })
  | (TpmsAttestBase & { type: 0x8018; attested: TpmsQuoteInfo })
  | (TpmsAttestBase & { type: 0x801a; attested: TpmsCreationInfo })
  | (TpmsAttestBase & { type: 0x8014; attested: TpmsNvCertifyInfo })
  | (TpmsAttestBase & { type: 0x801c; attested: TpmsNvDigestCertifyInfo })
  | (TpmsAttestBase & { type: 0x8019; attested: TpmsTimeAttestInfo })
  | (TpmsAttestBase & { type: 0x8016; attested: TpmsSessionAuditInfo })
  | (TpmsAttestBase & { type: 0x8015; attested: TpmsCommandAuditInfo });

export type QuoteAttest = Extract<TpmsAttest, { type: 0x8018 }>;
export type CertifyAttest = Extract<TpmsAttest, { type: 0x8017 }>;
export type CreationAttest = Extract<TpmsAttest, { type: 0x801a }>;

/** §11.3.4 TPMT_SIGNATURE, discriminated by sigAlg. */
export type TpmtSignature =
  | { sigAlg: Alg<"RSASSA"> | Alg<"RSAPSS">; hash: number; sig: Buffer }
  | { sigAlg: Alg<"ECDSA"> | Alg<"ECDAA"> | Alg<"SM2"> | Alg<"ECSCHNORR">; hash: number; r: Buffer; s: Buffer }
  | { sigAlg: Alg<"HMAC">; hash: number; digest: Buffer }
  | { sigAlg: Alg<"NULL"> };

/** §15.1 TPMS_CREATION_DATA */
export interface TpmsCreationData {
  pcrSelect: TpmsPcrSelection[];
  pcrDigest: Buffer;
  locality: number;
  parentNameAlg: number;
  parentName: Buffer;
  parentQualifiedName: Buffer;
  outsideInfo: Buffer;
}

/** §12.3.2.5 TPMT_SENSITIVE; `sensitive` is the TPMU_SENSITIVE_COMPOSITE's TPM2B payload. */
export interface TpmtSensitive {
  sensitiveType: number;
  authValue: Buffer;
  seedValue: Buffer;
  sensitive: Buffer;
}

/** §12.4.3 TPMS_ID_OBJECT (inside TPM2B_ID_OBJECT). */
export interface TpmsIdObject {
  integrityHMAC: Buffer;
  encIdentity: Buffer;
}

/** §13.5 TPMS_NV_PUBLIC */
export interface TpmsNvPublic {
  nvIndex: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Buffer;
  dataSize: number;
}
