import { HASH_ALGS, TPM_CC } from "../constants.js";
import { digestSize } from "../structures.js";
import type { Command } from "./command.js";
import { usage } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §22.2 TPM2_PCR_Extend: extends `pcrHandle` in every bank given (TPML_DIGEST_VALUES). */
export interface PcrExtendRequest {
  pcrHandle: number;
  auth?: AuthSession;
  digests: { hashAlg: number; digest: Uint8Array }[];
}

export const PCR_Extend: Command<PcrExtendRequest, void> = {
  name: "TPM2_PCR_Extend",
  code: TPM_CC.PCR_Extend,
  handles: (q) => [q.pcrHandle],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.u32(q.digests.length);
    for (const d of q.digests) {
      if (d.digest.length !== digestSize(d.hashAlg)) throw usage(`PCR_Extend: a ${HASH_ALGS[d.hashAlg]?.name} digest has ${digestSize(d.hashAlg)} bytes, not ${d.digest.length}`);
      w.u16(d.hashAlg).bytes(d.digest); // TPMT_HA: hashAlg ‖ fixed-size digest (Part 2 §10.3.2)
    }
  },
};
