/** Policy digests computed in software, for authPolicy values and templates (pure). */
import { TPM_CC } from "./constants.js";
import { Writer } from "./marshal.js";
import { digestSize, hashOf } from "./structures.js";

const zeros = (hashAlg: number) => Buffer.alloc(digestSize(hashAlg));

/**
 * Part 3 §23.4 TPM2_PolicySecret: H(H(old ‖ TPM_CC_PolicySecret ‖ authObject Name) ‖ policyRef).
 * With the endorsement hierarchy's Name (its handle) and no policyRef this is the EK's PolicyA.
 */
export function policySecretDigest(hashAlg: number, authName: Uint8Array, policyRef: Uint8Array = Buffer.alloc(0), old: Uint8Array = zeros(hashAlg)): Buffer {
  const first = hashOf(hashAlg, old, new Writer().u32(TPM_CC.PolicySecret).finish(), authName);
  return hashOf(hashAlg, first, policyRef);
}

/** Part 3 §23.11 TPM2_PolicyCommandCode: H(old ‖ TPM_CC_PolicyCommandCode ‖ code). */
export function policyCommandCodeDigest(hashAlg: number, commandCode: number, old: Uint8Array = zeros(hashAlg)): Buffer {
  return hashOf(hashAlg, old, new Writer().u32(TPM_CC.PolicyCommandCode).u32(commandCode).finish());
}
