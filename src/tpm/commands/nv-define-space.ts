import { TPM_CC, TPM_RH } from "../constants.js";
import { writeTpm2bNvPublic } from "../structures.js";
import type { TpmsNvPublic } from "../types.js";
import type { Command } from "./command.js";
import { EMPTY } from "./params.js";
import { password, type AuthSession } from "./session.js";

/** Part 3 §31.3 TPM2_NV_DefineSpace (authHandle TPM_RH_OWNER, the default, or TPM_RH_PLATFORM). */
export interface NvDefineSpaceRequest {
  authHandle?: number;
  auth?: AuthSession;
  /** the index's authValue */
  indexAuth?: Uint8Array;
  publicInfo: TpmsNvPublic;
}

export const NV_DefineSpace: Command<NvDefineSpaceRequest, void> = {
  name: "TPM2_NV_DefineSpace",
  code: TPM_CC.NV_DefineSpace,
  handles: (q) => [q.authHandle ?? TPM_RH.OWNER],
  auths: (q) => [q.auth ?? password()],
  params: (q, w) => {
    w.tpm2b(q.indexAuth ?? EMPTY);
    writeTpm2bNvPublic(w, q.publicInfo);
  },
};
