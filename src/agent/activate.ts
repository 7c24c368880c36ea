/**
 * `tpmtrust agent activate` (alias `agent register`): AK activation, the AK proven by credential
 * activation (docs/api.md).
 *
 *   createAk (under the EK) → POST /v1/activations {ekPublic, ekCertificates, akPublic}
 *   → TPM2_ActivateCredential(AK, EK) with the EK's PolicySecret(TPM_RH_ENDORSEMENT) session
 *   → POST /v1/activations/{id} {secret} → persist the AK (or keep its blobs) → state file.
 *
 * Only the TPM holding both the EK and the AK can recover the secret (Part 1 §24), so the service
 * binds the AK to the host once the secret comes back.
 */
import type { Logger } from "pino";
import { decodeBase64 } from "../encoding.js";
import { samePublicKey } from "../crypto/keys.js";
import { TpmTrustError } from "../errors.js";
import { TPMA_OBJECT } from "../tpm/constants.js";
import { withEncryptedSession } from "../crypto/session.js";
import {
  ActivateCredential,
  createAk,
  ekAuth,
  type EkCertificate,
  type EkKind,
  EvictControl,
  FlushContext,
  getHandles,
  readEkCertificates,
  readEkChain,
  ReadPublic,
  type TpmClient,
} from "../tpm/commands/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, encodeTpm2bPrivate } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { certificatePublicKey, parseCertificateDer } from "../verify/ek/index.js";
import type { ServiceClient } from "./http.js";
import { writeState, type AgentState } from "./state.js";
import { tpm2bPublic, withEk, type EkChoice, type LoadedEk } from "./tpm.js";

/** Default persistent handle of the AK (the owner range 0x81000000–0x817FFFFF, next to the EKs). */
export const DEFAULT_AK_HANDLE = 0x81010003;

export interface ActivateOptions {
  stateDir: string;
  /** EK template to create the AK under (default rsa2048) */
  ekAlg?: EkKind;
  /** the template's EK or the persisted one, when the TPM has both (default auto: the persisted one) */
  ek?: EkChoice;
  akAlg?: "rsa" | "ecc";
  /** persistent handle for the AK (default 0x81010003), or null to keep its blobs in the state dir */
  akHandle?: number | null;
  log?: Logger;
}

interface ActivationChallenge {
  activationId: string;
  credentialBlob: string;
  encryptedSecret: string;
  expiresAt: number | string;
}

interface ActivationResult {
  host: string;
  akNameHex: string;
  akCertificate?: string;
}

/** The EK certificates whose key is this EK's (a TPM may hold certificates for several EKs). */
function certificatesOf(ek: TpmtPublic, certs: EkCertificate[], log?: Logger): Buffer[] {
  return certs
    .filter((c) => {
      try {
        return samePublicKey(certificatePublicKey(parseCertificateDer(c.der)), ek);
      } catch (e) {
        log?.warn({ index: c.index, err: (e as Error).message }, "EK certificate in NV could not be read; not sent");
        return false;
      }
    })
    .map((c) => c.der);
}

/** An attestation key: a restricted signing key that cannot leave the TPM. */
function isAk(pub: TpmtPublic): boolean {
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.sign | TPMA_OBJECT.fixedTPM;
  return (pub.objectAttributes & need) === need && !(pub.objectAttributes & TPMA_OBJECT.decrypt);
}

/**
 * Whether `handle` holds an AK an earlier activation left (to be replaced). Any other object
 * there is refused before anything is created.
 */
async function occupiedByAk(tpm: TpmClient, handle: number): Promise<boolean> {
  if (!(await getHandles(tpm, handle)).includes(handle)) return false;
  if (!isAk((await tpm.run(ReadPublic, { objectHandle: handle })).public)) {
    throw new TpmTrustError("ERR_CONFLICT", `persistent handle 0x${handle.toString(16)} holds an object that is not an attestation key; choose another --ak-handle`);
  }
  return true;
}

async function activateUnder(tpm: TpmClient, service: ServiceClient, ek: LoadedEk, o: ActivateOptions): Promise<AgentState> {
  const akAlg = o.akAlg ?? "rsa";
  const akHandle = o.akHandle === undefined ? DEFAULT_AK_HANDLE : o.akHandle;
  const replace = akHandle !== null && (await occupiedByAk(tpm, akHandle));
  const ekCertificates = certificatesOf(ek.public, await readEkCertificates(tpm), o.log);
  const intermediates = (await readEkChain(tpm)).flatMap((c) => c.certificates);
  const ak = await createAk(tpm, ek, { type: akAlg });
  try {
    const akPublic = tpm2bPublic(ak.publicArea);
    o.log?.info({ ek: ek.kind, ekPersistent: ek.persistent, ekCertificates: ekCertificates.length, ak: ak.name.toString("hex") }, "AK created; asking for a credential");
    const challenge = await service.post<ActivationChallenge>("/v1/activations", {
      ekPublic: tpm2bPublic(ek.publicArea).toString("base64"),
      ekCertificates: ekCertificates.map((c) => c.toString("base64")),
      ...(intermediates.length ? { intermediates: intermediates.map((c) => c.toString("base64")) } : {}),
      akPublic: akPublic.toString("base64"),
    });
    const blob = decodeTpm2bIdObject(decodeBase64(challenge.credentialBlob, "credentialBlob"));
    const encSecret = decodeTpm2bEncryptedSecret(decodeBase64(challenge.encryptedSecret, "encryptedSecret"));
    // salted to the EK: the credential crosses the TPM bus only encrypted
    const secret = await withEncryptedSession(tpm, ek, async () => tpm.run(ActivateCredential, {
      activateHandle: ak.handle,
      keyHandle: ek.handle,
      credentialBlob: blob,
      secret: encSecret,
      keyAuth: await ekAuth(tpm, ek.public),
    }));
    const bound = await service.post<ActivationResult>(`/v1/activations/${encodeURIComponent(challenge.activationId)}`, { secret: secret.toString("base64") });
    if (typeof bound.akNameHex !== "string" || bound.akNameHex.toLowerCase() !== ak.name.toString("hex")) {
      throw new TpmTrustError("ERR_NAME_MISMATCH", `the service bound AK ${bound.akNameHex}, not this AK ${ak.name.toString("hex")}`);
    }
    // TPM2_EvictControl (owner authorization): the old AK out, the new one in
    if (replace) await tpm.run(EvictControl, { objectHandle: akHandle, persistentHandle: akHandle });
    if (akHandle !== null) await tpm.run(EvictControl, { objectHandle: ak.handle, persistentHandle: akHandle });
    const state: AgentState = {
      version: 1,
      server: service.base.href,
      host: bound.host,
      ekAlg: ek.kind,
      ekSource: ek.persistent ? "persistent" : "template",
      akAlg,
      akNameHex: bound.akNameHex.toLowerCase(),
      akPublic: akPublic.toString("base64"),
      ...(akHandle !== null ? { akHandle } : { akPrivate: encodeTpm2bPrivate(ak.private).toString("base64") }),
      ...(bound.akCertificate ? { akCertificate: bound.akCertificate } : {}),
      registeredAt: new Date().toISOString(),
    };
    writeState(o.stateDir, state);
    o.log?.info({ host: state.host, ak: state.akNameHex, akHandle: akHandle === null ? null : `0x${akHandle.toString(16)}` }, "AK activated and bound");
    return state;
  } finally {
    await tpm.run(FlushContext, { flushHandle: ak.handle }).catch(() => undefined);
  }
}

/** Activates a new AK under the EK of `ekAlg` and records it in the state directory. */
export async function activate(tpm: TpmClient, service: ServiceClient, o: ActivateOptions): Promise<AgentState> {
  if (o.akHandle != null && !(Number.isInteger(o.akHandle) && o.akHandle >>> 24 === 0x81)) {
    throw new TpmTrustError("ERR_USAGE", `--ak-handle 0x${o.akHandle.toString(16)} is not a persistent handle (0x81xxxxxx)`);
  }
  return withEk(tpm, o.ekAlg ?? "rsa2048", (ek) => activateUnder(tpm, service, ek, o), o.ek);
}
