/** fast-check generators for the TPM structures in src/tpm/types.ts (valid by construction). */
import fc from "fast-check";
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../../src/tpm/constants.js";
import type { TpmsAttest, TpmsClockInfo, TpmsCreationData, TpmsNvPublic, TpmsPcrSelection, TpmtPublic, TpmtScheme, TpmtSensitive, TpmtSignature, TpmtSymDefObject } from "../../src/tpm/types.js";

const buf = (max: number, min = 0) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const hashAlg = fc.constantFrom(TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512);

export const symDef: fc.Arbitrary<TpmtSymDefObject> = fc.oneof(
  fc.constant({ algorithm: TPM_ALG.NULL }),
  fc.record({ algorithm: fc.constant(TPM_ALG.AES as number), keyBits: fc.constantFrom(128, 256), mode: fc.constantFrom(TPM_ALG.CFB, TPM_ALG.CBC) }),
);
const hashScheme = (algs: number[]): fc.Arbitrary<TpmtScheme> => fc.record({ scheme: fc.constantFrom(...algs), hashAlg });
const nullScheme: fc.Arbitrary<TpmtScheme> = fc.constant({ scheme: TPM_ALG.NULL });
const rsaScheme = fc.oneof(nullScheme, fc.constant({ scheme: TPM_ALG.RSAES }), hashScheme([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP]));
const eccScheme = fc.oneof(nullScheme, hashScheme([TPM_ALG.ECDSA, TPM_ALG.ECDH, TPM_ALG.SM2]), fc.record({ scheme: fc.constant(TPM_ALG.ECDAA as number), hashAlg, count: u16 }));
const kdfScheme = fc.oneof(nullScheme, hashScheme([TPM_ALG.MGF1, TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108]));
const keyedHashScheme = fc.oneof(nullScheme, hashScheme([TPM_ALG.HMAC]), fc.record({ scheme: fc.constant(TPM_ALG.XOR as number), hashAlg, kdf: fc.constant(TPM_ALG.KDF1_SP800_108 as number) }));

const base = { nameAlg: hashAlg, objectAttributes: u32, authPolicy: buf(64) };
export const tpmtPublic: fc.Arbitrary<TpmtPublic> = fc.oneof(
  fc.record({ type: fc.constant(TPM_ALG.RSA), ...base, parameters: fc.record({ symmetric: symDef, scheme: rsaScheme, keyBits: fc.constantFrom(1024, 2048, 3072, 4096), exponent: u32 }), unique: buf(512) }),
  fc.record({ type: fc.constant(TPM_ALG.ECC), ...base, parameters: fc.record({ symmetric: symDef, scheme: eccScheme, curveID: fc.constantFrom(3, 4, 5), kdf: kdfScheme }), unique: fc.record({ x: buf(66), y: buf(66) }) }),
  fc.record({ type: fc.constant(TPM_ALG.KEYEDHASH), ...base, parameters: fc.record({ scheme: keyedHashScheme }), unique: buf(64) }),
  fc.record({ type: fc.constant(TPM_ALG.SYMCIPHER), ...base, parameters: fc.record({ sym: symDef }), unique: buf(64) }),
);

export const pcrSelectionArb: fc.Arbitrary<TpmsPcrSelection> = fc.record({ hash: hashAlg, select: buf(4) });
const clockInfo: fc.Arbitrary<TpmsClockInfo> = fc.record({ clock: u64, resetCount: u32, restartCount: u32, safe: fc.boolean() });
const name = buf(66);
const digest = buf(64);

const attestBase = { magic: fc.constant(TPM_GENERATED_VALUE), qualifiedSigner: name, extraData: buf(66), clockInfo, firmwareVersion: u64 };
export const tpmsAttest: fc.Arbitrary<TpmsAttest> = fc.oneof(
  fc.record({ type: fc.constant(TPM_ST.ATTEST_CERTIFY), ...attestBase, attested: fc.record({ name, qualifiedName: name }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_QUOTE), ...attestBase, attested: fc.record({ pcrSelect: fc.array(pcrSelectionArb, { maxLength: 4 }), pcrDigest: digest }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_CREATION), ...attestBase, attested: fc.record({ objectName: name, creationHash: digest }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_NV), ...attestBase, attested: fc.record({ indexName: name, offset: u16, nvContents: buf(256) }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_NV_DIGEST), ...attestBase, attested: fc.record({ indexName: name, nvDigest: digest }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_TIME), ...attestBase, attested: fc.record({ time: fc.record({ time: u64, clockInfo }), firmwareVersion: u64 }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_SESSION_AUDIT), ...attestBase, attested: fc.record({ exclusiveSession: fc.boolean(), sessionDigest: digest }) }),
  fc.record({ type: fc.constant(TPM_ST.ATTEST_COMMAND_AUDIT), ...attestBase, attested: fc.record({ auditCounter: u64, digestAlg: hashAlg, auditDigest: digest, commandDigest: digest }) }),
) as fc.Arbitrary<TpmsAttest>;

const hmacSig = hashAlg.chain((hash) =>
  fc.record({ sigAlg: fc.constant(TPM_ALG.HMAC), hash: fc.constant(hash), digest: buf({ [TPM_ALG.SHA1]: 20, [TPM_ALG.SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 }[hash]!, { [TPM_ALG.SHA1]: 20, [TPM_ALG.SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 }[hash]!) }),
);
export const tpmtSignature: fc.Arbitrary<TpmtSignature> = fc.oneof(
  fc.record({ sigAlg: fc.constantFrom(TPM_ALG.RSASSA, TPM_ALG.RSAPSS), hash: hashAlg, sig: buf(512) }),
  fc.record({ sigAlg: fc.constantFrom(TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR), hash: hashAlg, r: buf(66), s: buf(66) }),
  hmacSig,
  fc.constant({ sigAlg: TPM_ALG.NULL }),
) as fc.Arbitrary<TpmtSignature>;

export const tpmsCreationData: fc.Arbitrary<TpmsCreationData> = fc.record({
  pcrSelect: fc.array(pcrSelectionArb, { maxLength: 3 }),
  pcrDigest: digest,
  locality: fc.integer({ min: 0, max: 255 }),
  parentNameAlg: hashAlg,
  parentName: name,
  parentQualifiedName: name,
  outsideInfo: buf(66),
});
export const tpmtSensitive: fc.Arbitrary<TpmtSensitive> = fc.record({
  sensitiveType: fc.constantFrom(TPM_ALG.RSA, TPM_ALG.ECC, TPM_ALG.KEYEDHASH, TPM_ALG.SYMCIPHER),
  authValue: digest,
  seedValue: digest,
  sensitive: buf(640),
});
export const tpmsNvPublic: fc.Arbitrary<TpmsNvPublic> = fc.record({ nvIndex: u32, nameAlg: hashAlg, attributes: u32, authPolicy: digest, dataSize: u16 });
export const tpmlDigest = fc.array(digest, { maxLength: 8 });
export const idObject = fc.record({ integrityHMAC: digest, encIdentity: buf(66) });
