/** The EK and SRK a device presents: decoding and the checks DPS TPM attestation rests on. Pure. */
import { TpmTrustError } from "../errors.js";
import { protectorKeyBits } from "../crypto/protect.js";
import { TPMA_OBJECT, TPM_ALG } from "../tpm/constants.js";
import { decodeTpm2bPublic, decodeTpmtPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";

/** A public area sent as TPM2B_PUBLIC (DPS) or bare TPMT_PUBLIC; returns the TPMT_PUBLIC. */
export function decodePublicArea(bytes: Uint8Array): TpmtPublic {
  const sized = bytes.length >= 2 && ((bytes[0] << 8) | bytes[1]) === bytes.length - 2;
  return sized ? decodeTpm2bPublic(bytes) : decodeTpmtPublic(bytes);
}

/**
 * A key the service may protect secrets to: an RSA (≥ 2048 bits) or ECC key that is restricted,
 * decrypt, not sign, fixedTPM and fixedParent (so it never left its TPM), with AES-CFB (TPM2_Import
 * and ActivateCredential need it). `what` names it in errors ("storageRootKey", "endorsementKey").
 */
export function checkStorageKey(pub: TpmtPublic, what: string): void {
  const a = pub.objectAttributes;
  const details = { key: what, objectAttributes: `0x${a.toString(16).padStart(8, "0")}` };
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `${what} must be an RSA or ECC key`, details);
  if (!(a & TPMA_OBJECT.restricted) || !(a & TPMA_OBJECT.decrypt)) throw new TpmTrustError("ERR_KEY_NOT_RESTRICTED", `${what} must be a restricted decryption key (restricted|decrypt)`, details);
  if (a & TPMA_OBJECT.sign) throw new TpmTrustError("ERR_KEY_DECRYPT", `${what} must not be a signing key`, details);
  if (!(a & TPMA_OBJECT.fixedTPM)) throw new TpmTrustError("ERR_KEY_NOT_FIXED_TPM", `${what} must be fixedTPM`, details);
  if (!(a & TPMA_OBJECT.fixedParent)) throw new TpmTrustError("ERR_KEY_NOT_FIXED_PARENT", `${what} must be fixedParent`, details);
  if (pub.type === TPM_ALG.RSA && pub.parameters.keyBits < 2048) throw new TpmTrustError("ERR_KEY_TOO_WEAK", `${what} has ${pub.parameters.keyBits} bits, fewer than 2048`, details);
  protectorKeyBits(pub);
}
