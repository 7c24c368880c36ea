/**
 * Duplication blobs for TPM2_Import (Part 1 §23.3, Part 3 §13.3): an object made outside any TPM
 * (an HMAC key, a sealed secret) wrapped so that only the TPM holding `parent` can import it.
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { TPMA_OBJECT, TPM_ALG } from "../tpm/constants.js";
import { encodeTpm2bPublic, encodeTpm2bSensitive, hashOf, objectName } from "../tpm/structures.js";
import type { TpmsKeyedHashParms, TpmtPublic, TpmtSensitive } from "../tpm/types.js";
import { hashAlgorithm } from "./kdf.js";
import { aesCfbEncrypt, outerWrap, protectorKeyBits, shareSeed, tpm2b, type Random } from "./protect.js";

export interface DuplicateOptions {
  /**
   * Inner wrap key (the `encryptionKey` of TPM2_Import; 16, 24 or 32 bytes for AES-128/192/256-CFB,
   * which the importer names in `symmetricAlg`). Absent: outer wrap only (symmetricAlg NULL).
   */
  innerKey?: Uint8Array;
  random?: Random;
}

/** The TPM2_Import parameters, each marshalled with its size field. */
export interface DuplicationBlob {
  /** TPM2B_PUBLIC objectPublic */
  public: Buffer;
  /** TPM2B_PRIVATE duplicate */
  duplicate: Buffer;
  /** TPM2B_ENCRYPTED_SECRET inSymSeed */
  inSymSeed: Buffer;
  /** Name of the object (nameAlg ‖ H(TPMT_PUBLIC)) */
  name: Buffer;
}

/**
 * Wraps `sensitive` for import under `parent` (an RSA or ECC storage key with AES-CFB).
 * Inner wrap (optional, §23.3.2): innerIntegrity = H_nameAlg(TPM2B_SENSITIVE ‖ Name),
 * encSensitive = AES-CFB(innerKey, IV 0, TPM2B(innerIntegrity) ‖ TPM2B_SENSITIVE).
 * Outer wrap (§23.3.2): seed to the parent with label "DUPLICATE", then TPM2B(outerHMAC) ‖
 * AES-CFB(symKey, encSensitive) with KDFs and HMAC over the parent's nameAlg.
 */
export function createDuplicate(parent: TpmtPublic, pub: TpmtPublic, sensitive: TpmtSensitive, opts: DuplicateOptions = {}): DuplicationBlob {
  protectorKeyBits(parent);
  if (pub.objectAttributes & (TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent)) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "an object with fixedTPM or fixedParent cannot be imported", { objectAttributes: pub.objectAttributes });
  }
  if (pub.objectAttributes & TPMA_OBJECT.encryptedDuplication && !opts.innerKey) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "an object with encryptedDuplication needs an inner wrap key", { objectAttributes: pub.objectAttributes });
  }
  if (sensitive.sensitiveType !== pub.type) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the sensitive area's type differs from the public area's", { sensitiveType: sensitive.sensitiveType, type: pub.type });
  }
  const name = objectName(pub);
  const sens = encodeTpm2bSensitive(sensitive);
  let encSensitive = sens;
  if (opts.innerKey) {
    const innerIntegrity = hashOf(pub.nameAlg, sens, name);
    encSensitive = aesCfbEncrypt(opts.innerKey, Buffer.concat([tpm2b(innerIntegrity), sens]));
  }
  const { seed, encryptedSecret } = shareSeed(parent, "DUPLICATE", opts.random ?? randomBytes);
  return {
    public: encodeTpm2bPublic(pub),
    duplicate: tpm2b(outerWrap(parent, seed, name, encSensitive)),
    inSymSeed: tpm2b(encryptedSecret),
    name,
  };
}

export interface KeyedHashObject {
  public: TpmtPublic;
  sensitive: TpmtSensitive;
}

export interface KeyedHashOptions {
  /** nameAlg of the object (default SHA-256) */
  nameAlg?: number;
  /** the object's authValue (default empty); at most a digest of nameAlg */
  authValue?: Uint8Array;
  random?: Random;
}

/** Largest data a sealed data object holds (MAX_SYM_DATA). */
const MAX_SYM_DATA = 128;

/**
 * A KEYEDHASH object: unique = H_nameAlg(seedValue ‖ data) with a seedValue of one nameAlg digest
 * (else TPM2_Import fails with TPM_RC_BINDING / TPM_RC_KEY_SIZE).
 */
function keyedHash(data: Uint8Array, parameters: TpmsKeyedHashParms, objectAttributes: number, opts: KeyedHashOptions): KeyedHashObject {
  const nameAlg = opts.nameAlg ?? TPM_ALG.SHA256;
  const { size } = hashAlgorithm(nameAlg);
  const authValue = Buffer.from(opts.authValue ?? Buffer.alloc(0));
  if (authValue.length > size) {
    throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `authValue of ${authValue.length} bytes exceeds the ${size}-byte digest of nameAlg`, { size: authValue.length, max: size });
  }
  const seedValue = (opts.random ?? randomBytes)(size);
  return {
    public: { type: TPM_ALG.KEYEDHASH, nameAlg, objectAttributes, authPolicy: Buffer.alloc(0), parameters, unique: hashOf(nameAlg, seedValue, data) },
    sensitive: { sensitiveType: TPM_ALG.KEYEDHASH, authValue, seedValue, sensitive: Buffer.from(data) },
  };
}

/**
 * An HMAC key (KEYEDHASH, scheme HMAC(hashAlg), userWithAuth|sign; not fixedTPM/fixedParent, so it
 * can be imported) as Azure DPS hands to a device. The key may be at most one hash block long.
 */
export function hmacKeyObject(key: Uint8Array, opts: KeyedHashOptions & { hashAlg?: number } = {}): KeyedHashObject {
  const hashAlg = opts.hashAlg ?? TPM_ALG.SHA256;
  const block = hashAlgorithm(hashAlg).size > 32 ? 128 : 64;
  if (key.length === 0 || key.length > block) {
    throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `an HMAC key has 1 to ${block} bytes, not ${key.length}`, { size: key.length, max: block });
  }
  return keyedHash(key, { scheme: { scheme: TPM_ALG.HMAC, hashAlg } }, TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign, opts);
}

/** A sealed data object (KEYEDHASH, scheme NULL, userWithAuth): TPM2_Unseal returns `data` (1 to 128 bytes). */
export function sealedDataObject(data: Uint8Array, opts: KeyedHashOptions = {}): KeyedHashObject {
  if (data.length === 0 || data.length > MAX_SYM_DATA) {
    throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `sealed data has 1 to ${MAX_SYM_DATA} bytes, not ${data.length}`, { size: data.length, max: MAX_SYM_DATA });
  }
  return keyedHash(data, { scheme: { scheme: TPM_ALG.NULL } }, TPMA_OBJECT.userWithAuth, opts);
}
