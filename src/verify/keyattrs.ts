/** Object-attribute rules for attestation keys and certified keys (Part 2 §8.3 TPMA_OBJECT). */
import { TpmTrustError } from "../errors.js";
import { ECC_CURVES, TPMA_OBJECT, TPM_ALG } from "../tpm/constants.js";
import type { TpmtPublic } from "../tpm/types.js";

const has = (p: TpmtPublic, f: keyof typeof TPMA_OBJECT) => (p.objectAttributes & TPMA_OBJECT[f]) !== 0;

function requireTpmBound(p: TpmtPublic): void {
  if (!has(p, "fixedTPM")) throw new TpmTrustError("ERR_KEY_NOT_FIXED_TPM", "key is not fixedTPM: it can be duplicated out of the TPM");
  if (!has(p, "fixedParent")) throw new TpmTrustError("ERR_KEY_NOT_FIXED_PARENT", "key is not fixedParent");
  if (!has(p, "sensitiveDataOrigin")) throw new TpmTrustError("ERR_KEY_NOT_SENSITIVE_DATA_ORIGIN", "key was imported, not generated in the TPM");
}

function requireStrength(p: TpmtPublic): void {
  if (p.type === TPM_ALG.RSA && p.parameters.keyBits < 2048) {
    throw new TpmTrustError("ERR_KEY_TOO_WEAK", `RSA-${p.parameters.keyBits} is below RSA-2048`);
  }
  if (p.type === TPM_ALG.ECC && !ECC_CURVES[p.parameters.curveID]) {
    throw new TpmTrustError("ERR_KEY_TOO_WEAK", `ECC curve 0x${p.parameters.curveID.toString(16)} is not P-256 or stronger`);
  }
  if (p.type !== TPM_ALG.RSA && p.type !== TPM_ALG.ECC) throw new TpmTrustError("ERR_KEY_NOT_SIGNING", "an attestation or certified key must be RSA or ECC");
}

/** An AK: fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, not decrypt; RSA ≥ 2048 or P-256+. */
export function checkAkAttributes(p: TpmtPublic): void {
  requireStrength(p);
  requireTpmBound(p);
  if (!has(p, "restricted")) throw new TpmTrustError("ERR_KEY_NOT_RESTRICTED", "an attestation key must be restricted");
  if (!has(p, "sign")) throw new TpmTrustError("ERR_KEY_NOT_SIGNING", "an attestation key must be a signing key");
  if (has(p, "decrypt")) throw new TpmTrustError("ERR_KEY_DECRYPT", "an attestation key must not also decrypt");
}

/** A certified application key: fixedTPM, fixedParent, sensitiveDataOrigin, not restricted. */
export function checkCertifiedKeyAttributes(p: TpmtPublic, opts: { allowRestricted?: boolean } = {}): void {
  requireStrength(p);
  requireTpmBound(p);
  if (!opts.allowRestricted && has(p, "restricted")) throw new TpmTrustError("ERR_KEY_RESTRICTED", "a certified application key must not be restricted");
}
