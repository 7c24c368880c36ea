/**
 * TPM2_MakeCredential done in software (Part 1 §24, Part 3 §12.6): a credential only the TPM
 * holding `ek` can recover, and only for the object named `objectName` (TPM2_ActivateCredential).
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import { Reader } from "../tpm/marshal.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, readTpm2bIdObject } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { hashAlgorithm } from "./kdf.js";
import { outerWrap, protectorKeyBits, shareSeed, tpm2b, type Random } from "./protect.js";

export interface CredentialBlob {
  /** marshalled TPM2B_ID_OBJECT (with its size) */
  credentialBlob: Buffer;
  /** marshalled TPM2B_ENCRYPTED_SECRET (with its size) */
  secret: Buffer;
}

const MAX_NAME = 2 + 64;

/**
 * MakeCredential to an RSA or ECC EK (any nameAlg; AES-128/192/256-CFB). The seed goes to the EK
 * with label "IDENTITY"; encIdentity = AES-CFB(symKey, TPM2B_DIGEST(credential)), and the outer HMAC
 * binds it to objectName. `credential` may be at most one digest of the EK's nameAlg (Part 3 §12.6).
 */
export function makeCredential(ek: TpmtPublic, objectName: Uint8Array, credential: Uint8Array, opts: { random?: Random } = {}): CredentialBlob {
  const { size } = hashAlgorithm(ek.nameAlg);
  protectorKeyBits(ek);
  if (credential.length === 0 || credential.length > size) {
    throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `the credential must have 1 to ${size} bytes (a digest of the EK's nameAlg), not ${credential.length}`, {
      size: credential.length,
      max: size,
    });
  }
  if (objectName.length < 2 || objectName.length > MAX_NAME) {
    throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `an object Name has 2 to ${MAX_NAME} bytes, not ${objectName.length}`, { size: objectName.length });
  }
  const { seed, encryptedSecret } = shareSeed(ek, "IDENTITY", opts.random ?? randomBytes);
  const idObject = outerWrap(ek, seed, objectName, tpm2b(credential));
  return { credentialBlob: tpm2b(idObject), secret: tpm2b(encryptedSecret) };
}

/** tpm2-tools credential file header: magic 0xBADCC0DE, version 1 (tpm2_makecredential/activatecredential). */
const CREDENTIAL_MAGIC = 0xbadcc0de;
const CREDENTIAL_VERSION = 1;

/** The tpm2-tools credential file: BADCC0DE ‖ 00000001 ‖ TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET. */
export function encodeCredentialFile(c: CredentialBlob): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(CREDENTIAL_MAGIC, 0);
  head.writeUInt32BE(CREDENTIAL_VERSION, 4);
  // only well-formed parts are written
  decodeTpm2bIdObject(c.credentialBlob);
  decodeTpm2bEncryptedSecret(c.secret);
  return Buffer.concat([head, c.credentialBlob, c.secret]);
}

/** Parses a tpm2-tools credential file; the parts keep their TPM2B size fields. */
export function decodeCredentialFile(file: Uint8Array): CredentialBlob {
  const r = new Reader(file);
  const magic = r.u32("credential.magic");
  if (magic !== CREDENTIAL_MAGIC) {
    throw new TpmTrustError("ERR_PARSE_FORMAT", `not a tpm2-tools credential file (magic 0x${magic.toString(16)}, expected 0xbadcc0de)`, { offset: 0 });
  }
  const version = r.u32("credential.version");
  if (version !== CREDENTIAL_VERSION) {
    throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `credential file version ${version} is not supported`, { offset: 4, version });
  }
  const idStart = r.offset;
  readTpm2bIdObject(r);
  const credentialBlob = Buffer.from(file.subarray(idStart, r.offset));
  const secret = Buffer.from(file.subarray(r.offset));
  decodeTpm2bEncryptedSecret(secret);
  return { credentialBlob, secret };
}
