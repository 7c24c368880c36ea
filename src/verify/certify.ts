/**
 * Certify verification (TPM 2.0 Part 3 §18.2 TPM2_Certify, §18.3 TPM2_CertifyCreation): the AK's
 * signature over TPMS_ATTEST, the nonce, the certified Name = Name(key), and the key's attributes.
 */
import { TpmTrustError } from "../errors.js";
import { TPM_ST } from "../tpm/constants.js";
import { objectName } from "../tpm/structures.js";
import type { TpmsAttest, TpmtPublic, TpmtSignature } from "../tpm/types.js";
import { verifySignature } from "../crypto/signature.js";
import { isTpmtPublic, type PublicKeyInput } from "../crypto/keys.js";
import { checkAkAttributes, checkCertifiedKeyAttributes } from "./keyattrs.js";
import { attributeNames } from "../tpm/describe.js";
import { checkNonce } from "./quote.js";

export interface CertifyInput {
  attestBytes: Uint8Array;
  attest: TpmsAttest;
  signature: TpmtSignature;
  ak: PublicKeyInput;
  /** The certified key's public area (its Name is what the TPM certified). */
  key: TpmtPublic;
  nonce?: Uint8Array;
  /** Accept a restricted certified key (e.g. when certifying another AK). */
  allowRestricted?: boolean;
}

export interface CertifyFacts {
  type: "certify" | "creation";
  certifiedName: Buffer;
  attributes: string[];
}

export function verifyCertify(input: CertifyInput): CertifyFacts {
  const { attest } = input;
  if (attest.type !== TPM_ST.ATTEST_CERTIFY && attest.type !== TPM_ST.ATTEST_CREATION) {
    throw new TpmTrustError("ERR_ATTEST_TYPE", `expected TPM_ST_ATTEST_CERTIFY (0x8017) or _CREATION (0x801a), got 0x${attest.type.toString(16)}`, { type: attest.type });
  }
  if (isTpmtPublic(input.ak)) checkAkAttributes(input.ak);
  verifySignature(input.signature, input.attestBytes, input.ak);
  checkNonce(attest, input.nonce);
  const certified = attest.type === TPM_ST.ATTEST_CERTIFY ? attest.attested.name : attest.attested.objectName;
  const name = objectName(input.key);
  if (!certified.equals(name)) {
    throw new TpmTrustError("ERR_NAME_MISMATCH", "the certified Name is not the Name of the given key", {
      certified: certified.toString("hex"),
      key: name.toString("hex"),
    });
  }
  checkCertifiedKeyAttributes(input.key, { allowRestricted: input.allowRestricted });
  return { type: attest.type === TPM_ST.ATTEST_CERTIFY ? "certify" : "creation", certifiedName: certified, attributes: attributeNames(input.key.objectAttributes) };
}
