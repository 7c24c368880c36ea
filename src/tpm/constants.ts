/** TPM 2.0 Library Part 2 constants used by tpmtrust (section numbers of Part 2, rev 1.59). */

/** §6.3 TPM_ALG_ID */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;
export type TpmAlgId = number;

export function algName(alg: number): string {
  for (const [k, v] of Object.entries(TPM_ALG)) if (v === alg) return k.toLowerCase();
  return `0x${alg.toString(16).padStart(4, "0")}`;
}

/** Hash algorithms: digest size and node:crypto name. */
export const HASH_ALGS: Record<number, { name: string; node: string; size: number }> = {
  [TPM_ALG.SHA1]: { name: "sha1", node: "sha1", size: 20 },
  [TPM_ALG.SHA256]: { name: "sha256", node: "sha256", size: 32 },
  [TPM_ALG.SHA384]: { name: "sha384", node: "sha384", size: 48 },
  [TPM_ALG.SHA512]: { name: "sha512", node: "sha512", size: 64 },
  [TPM_ALG.SM3_256]: { name: "sm3_256", node: "sm3", size: 32 },
  [TPM_ALG.SHA3_256]: { name: "sha3_256", node: "sha3-256", size: 32 },
  [TPM_ALG.SHA3_384]: { name: "sha3_384", node: "sha3-384", size: 48 },
  [TPM_ALG.SHA3_512]: { name: "sha3_512", node: "sha3-512", size: 64 },
};

export function hashAlgByName(name: string): number | undefined {
  const n = name.toLowerCase().replace(/-/g, "");
  for (const [id, h] of Object.entries(HASH_ALGS)) if (h.name.replace(/_/g, "") === n.replace(/_/g, "")) return Number(id);
  return undefined;
}

/** §6.9 TPM_ST */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
} as const;

/** §6.2 TPM_GENERATED_VALUE */
export const TPM_GENERATED_VALUE = 0xff544347;

/** §6.4 TPM_ECC_CURVE */
export const TPM_ECC = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

export const ECC_CURVES: Record<number, { name: string; node: string; size: number; jwk: string }> = {
  [TPM_ECC.NIST_P256]: { name: "nist_p256", node: "prime256v1", size: 32, jwk: "P-256" },
  [TPM_ECC.NIST_P384]: { name: "nist_p384", node: "secp384r1", size: 48, jwk: "P-384" },
  [TPM_ECC.NIST_P521]: { name: "nist_p521", node: "secp521r1", size: 66, jwk: "P-521" },
};

/** §6.5 TPM_CC */
export const TPM_CC = {
  NV_UndefineSpace: 0x122,
  EvictControl: 0x120,
  HierarchyControl: 0x121,
  Clear: 0x126,
  NV_DefineSpace: 0x12a,
  PCR_Allocate: 0x12b,
  CreatePrimary: 0x131,
  NV_Write: 0x137,
  Create: 0x153,
  Certify: 0x148,
  CertifyCreation: 0x14a,
  Duplicate: 0x14b,
  NV_Read: 0x14e,
  Import: 0x156,
  Load: 0x157,
  Quote: 0x158,
  HMAC: 0x155,
  ContextLoad: 0x161,
  ContextSave: 0x162,
  FlushContext: 0x165,
  Unseal: 0x15e,
  Sign: 0x15d,
  PolicySecret: 0x151,
  ActivateCredential: 0x147,
  Startup: 0x144,
  Shutdown: 0x145,
  StartAuthSession: 0x176,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  PCR_Extend: 0x182,
  PCR_Read: 0x17e,
  PolicyCommandCode: 0x16c,
  PolicyGetDigest: 0x189,
  ReadPublic: 0x173,
  NV_ReadPublic: 0x169,
  MakeCredential: 0x168,
  CreateLoaded: 0x191,
} as const;

/** §7.4 TPM_RH / handles */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;
export const TPM_RS_PW = 0x40000009;

/** §6.11 TPM_SE */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** §6.12 TPM_CAP and §6.13 TPM_PT */
export const TPM_CAP = {
  ALGS: 0,
  HANDLES: 1,
  COMMANDS: 2,
  PP_COMMANDS: 3,
  AUDIT_COMMANDS: 4,
  PCRS: 5,
  TPM_PROPERTIES: 6,
  PCR_PROPERTIES: 7,
  ECC_CURVES: 8,
} as const;
export const TPM_PT = {
  FAMILY_INDICATOR: 0x100,
  MANUFACTURER: 0x105,
  VENDOR_STRING_1: 0x106,
  VENDOR_STRING_2: 0x107,
  VENDOR_STRING_3: 0x108,
  VENDOR_STRING_4: 0x109,
  FIRMWARE_VERSION_1: 0x10b,
  FIRMWARE_VERSION_2: 0x10c,
  MAX_COMMAND_SIZE: 0x11e,
  MAX_RESPONSE_SIZE: 0x11f,
  MAX_DIGEST: 0x120,
  NV_BUFFER_MAX: 0x12c,
} as const;

/** §8.3 TPMA_OBJECT bits */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19,
} as const;
export type TpmaObjectFlag = keyof typeof TPMA_OBJECT;

/** §8.4 TPMA_SESSION bits */
export const TPMA_SESSION = { continueSession: 0x01, auditExclusive: 0x02, auditReset: 0x04, decrypt: 0x20, encrypt: 0x40, audit: 0x80 } as const;

/** TCG EK Credential Profile §2.2.1.4: NV indices of EK certificates and templates. */
export const EK_NV = {
  RSA2048_CERT: 0x01c00002,
  RSA_NONCE: 0x01c00003,
  RSA_TEMPLATE: 0x01c00004,
  ECC_P256_CERT: 0x01c0000a,
  ECC_NONCE: 0x01c0000b,
  ECC_TEMPLATE: 0x01c0000c,
  H_RSA2048_CERT: 0x01c00012,
  H_ECC_P256_CERT: 0x01c00014,
  H_ECC_P384_CERT: 0x01c00016,
  H_ECC_P521_CERT: 0x01c00018,
  H_ECC_SM2_CERT: 0x01c0001a,
  H_RSA3072_CERT: 0x01c0001c,
  H_RSA4096_CERT: 0x01c0001e,
  PLATFORM_CERT: 0x01c08000,
} as const;
export const EK_PERSISTENT = { RSA: 0x81010001, ECC: 0x81010002 } as const;
