/**
 * The `authenticationKey` of Azure DPS TPM attestation: an HMAC key only the TPM holding a given
 * EK and SRK can import, and nothing else. Pure (randomness is injectable).
 *
 *   TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET   MakeCredential to the EK over Name(SRK); the credential
 *                                              is the 16-byte AES-128 inner wrap key (TPM2_ActivateCredential)
 *   TPM2B_PRIVATE ‖ TPM2B_ENCRYPTED_SECRET     the HMAC key duplicated to the SRK with that inner wrap,
 *                                              seed label "DUPLICATE" (TPM2_Import, symmetricAlg AES-128-CFB)
 *   TPM2B_PUBLIC                               the HMAC key (KEYEDHASH, HMAC-SHA256, userWithAuth|sign)
 *   TPM2B_DATA                                 trailer, always present (`00 00` when empty): SDKs read it
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { makeCredential } from "../crypto/credential.js";
import { createDuplicate, hmacKeyObject } from "../crypto/duplicate.js";
import { tpm2b, type Random } from "../crypto/protect.js";
import { TPM_ALG } from "../tpm/constants.js";
import { Reader } from "../tpm/marshal.js";
import { objectName, readTpm2bIdObject, readTpm2bPublic } from "../tpm/structures.js";
import type { TpmsIdObject, TpmtPublic } from "../tpm/types.js";

/** AES-128: tpm2_import -k and the C SDK import with AES-128-CFB only. */
const INNER_KEY_BYTES = 16;
/** The `keyName` DPS answers with; devices echo it as `skn` in their SAS tokens. */
export const KEY_NAME = "registration";

export interface AuthenticationKey {
  blob: Buffer;
  /** Name of the HMAC key object (what TPM2_Load reports) */
  keyName: Buffer;
}

/** Builds the blob for `hmacKey` to the TPM with `ek` and `srk` (both storage-class decrypt keys with AES-CFB). */
export function buildAuthenticationKey(ek: TpmtPublic, srk: TpmtPublic, hmacKey: Uint8Array, opts: { random?: Random; trailer?: Uint8Array } = {}): AuthenticationKey {
  const random = opts.random ?? randomBytes;
  const innerKey = random(INNER_KEY_BYTES);
  const cred = makeCredential(ek, objectName(srk), innerKey, { random });
  const obj = hmacKeyObject(hmacKey, { random });
  const dup = createDuplicate(srk, obj.public, obj.sensitive, { innerKey, random });
  const blob = Buffer.concat([cred.credentialBlob, cred.secret, dup.duplicate, dup.inSymSeed, dup.public, tpm2b(opts.trailer ?? Buffer.alloc(0))]);
  return { blob, keyName: dup.name };
}

/** The parts a device hands to its TPM; byte strings are TPM2B contents (without their size). */
export interface AuthenticationKeyParts {
  credentialBlob: TpmsIdObject;
  credentialSecret: Buffer;
  duplicate: Buffer;
  inSymSeed: Buffer;
  public: TpmtPublic;
  /** TPM2B_DATA trailer contents; undefined when the blob ends after the public area */
  trailer?: Buffer;
}

const MAX_SECRET = 512 + 2;

/** Splits an authenticationKey (offsets of every parse error are absolute). Accepts the blob with or without the trailer. */
export function parseAuthenticationKey(blob: Uint8Array): AuthenticationKeyParts {
  const r = new Reader(blob);
  const credentialBlob = readTpm2bIdObject(r);
  const credentialSecret = r.tpm2b("credential TPM2B_ENCRYPTED_SECRET", MAX_SECRET);
  const duplicate = r.tpm2b("TPM2B_PRIVATE", 4096);
  const inSymSeed = r.tpm2b("duplication TPM2B_ENCRYPTED_SECRET", MAX_SECRET);
  const pub = readTpm2bPublic(r);
  if (pub.type !== TPM_ALG.KEYEDHASH) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "the authenticationKey's public area is not a KEYEDHASH object", { type: pub.type });
  }
  const trailer = r.remaining > 0 ? r.tpm2b("TPM2B_DATA trailer") : undefined;
  r.end("authenticationKey");
  return { credentialBlob, credentialSecret, duplicate, inSymSeed, public: pub, ...(trailer ? { trailer } : {}) };
}
