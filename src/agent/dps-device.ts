/**
 * The device side of DPS provisioning with TPM attestation (`tpmtrust device provision`), as the
 * Azure device SDKs do it, with tpmtrust's TPM client:
 *
 *   EK (persistent 0x81010001 / 0x81010002, else from the template) and SRK (0x81000001, created and
 *   persisted from the standard template if absent) → PUT …/register → 401 {authenticationKey}
 *   → PolicySecret(TPM_RH_ENDORSEMENT) session → TPM2_ActivateCredential(activate = SRK, key = EK)
 *   → TPM2_Import(SRK, inner key, AES-128-CFB) → TPM2_Load → TPM2_EvictControl (the HMAC key stays in
 *   the TPM at `handle`) → TPM2_HMAC(sr + "\n" + se) → PUT …/register with the SAS token → 202
 *   → GET …/operations/{id} until assigned (the assigned state's authenticationKey is imported
 *   in place of the first, as the SDKs do).
 */
import { TpmTrustError } from "../errors.js";
import { TPM_ALG, TPM_RH } from "../tpm/constants.js";
import { withEncryptedSession } from "../crypto/session.js";
import {
  ActivateCredential,
  CreatePrimary,
  ekAuth,
  type EkKind,
  EvictControl,
  FlushContext,
  getHandles,
  HMAC,
  Import,
  Load,
  readEkCertificates,
  ReadPublic,
  type TpmClient,
} from "../tpm/commands/index.js";
import { TpmRcError } from "../tpm/rc.js";
import { encodeTpm2bPublic } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import { parseAuthenticationKey } from "../provisioning/authentication-key.js";
import { defaultRegistrationId } from "../provisioning/registration-id.js";
import { encodeSasScope, formatSasToken, sasScope, stringToSign } from "../provisioning/sas.js";
import { checkStorageKey } from "../provisioning/tpm-keys.js";
import type { ServiceClient } from "./http.js";
import { SRK_HANDLE, srkTemplate } from "./keys.js";
import { loadEk, tpm2bPublic, type LoadedEk } from "./tpm.js";

/** Where the Azure C SDK persists the DPS device key (TPM_20_DPS_ID_KEY). */
export const DEVICE_KEY_HANDLE = 0x81000100;
const DPS_API_VERSION = "2021-06-01";

export interface ProvisionOptions {
  idScope: string;
  /** default: the DPS default registration id of the EK */
  registrationId?: string;
  /** persistent handle for the HMAC key (default 0x81000100) */
  handle?: number;
  ek?: EkKind;
  /** custom data for the custom allocation webhook */
  payload?: unknown;
  /** SAS token lifetime, seconds (default 3600) */
  tokenLifetime?: number;
  /** how `sr` is URL-encoded: "c" (`%2f`, default) or "dotnet" (`%2F`) */
  sasStyle?: "c" | "dotnet";
  /** give up polling after this long, ms (default 60 s) */
  timeoutMs?: number;
  now?: () => number;
}

export interface RegistrationState {
  registrationId: string;
  status: string;
  assignedHub?: string;
  deviceId?: string;
  substatus?: string;
  errorCode?: number;
  errorMessage?: string;
  createdDateTimeUtc?: string;
  lastUpdatedDateTimeUtc?: string;
  etag?: string;
  payload?: unknown;
  tpm?: { authenticationKey: string };
}

export interface ProvisionResult {
  registrationId: string;
  operationId: string;
  status: string;
  registrationState: RegistrationState;
  /** where the HMAC key is persisted */
  keyHandle: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The DPS error an answer carries, as a TpmTrustError (ERR_UNREACHABLE when it is not DPS-shaped). */
function dpsError(what: string, status: number, json: unknown): TpmTrustError {
  const e = json as { errorCode?: unknown; message?: unknown; trackingId?: unknown } | undefined;
  const details = { status, ...(e && typeof e.errorCode === "number" ? { errorCode: e.errorCode } : {}), ...(e && typeof e.trackingId === "string" ? { trackingId: e.trackingId } : {}) };
  const message = `${what}: HTTP ${status}${e && typeof e.message === "string" ? `: ${e.message}` : ""}`;
  const code = status === 401 ? "ERR_UNAUTHENTICATED" : status === 403 ? "ERR_DISABLED" : status === 404 ? "ERR_NOT_FOUND" : status === 429 ? "ERR_TOO_MANY_ATTEMPTS" : status === 400 ? "ERR_VALIDATION" : "ERR_UNREACHABLE";
  return new TpmTrustError(code, message, details);
}

/** The SRK at 0x81000001; created from the standard template and persisted when the handle is empty. */
async function ensureSrk(tpm: TpmClient): Promise<TpmtPublic> {
  if ((await getHandles(tpm, SRK_HANDLE)).includes(SRK_HANDLE)) {
    const { public: pub } = await tpm.run(ReadPublic, { objectHandle: SRK_HANDLE });
    try {
      checkStorageKey(pub, "the key at 0x81000001");
    } catch (e) {
      throw new TpmTrustError("ERR_KEY_NOT_RESTRICTED", `0x81000001 holds no SRK: ${(e as Error).message}`);
    }
    return pub;
  }
  const srk = await tpm.run(CreatePrimary, { primaryHandle: TPM_RH.OWNER, inPublic: srkTemplate() });
  try {
    await tpm.run(EvictControl, { objectHandle: srk.handle, persistentHandle: SRK_HANDLE });
  } finally {
    await tpm.run(FlushContext, { flushHandle: srk.handle }).catch(() => undefined);
  }
  return srk.public;
}

/**
 * Imports an authenticationKey into the TPM and persists the HMAC key at `handle` (replacing what
 * was there). Returns nothing: the key never leaves the TPM.
 */
async function importAuthenticationKey(tpm: TpmClient, ek: LoadedEk, blob: Buffer, handle: number): Promise<void> {
  const parts = parseAuthenticationKey(blob);
  // salted to the EK: the inner wrapping key crosses the TPM bus only encrypted
  const priv = await withEncryptedSession(tpm, ek, async () => {
    const session = await ekAuth(tpm, ek.public);
    const innerKey = await tpm.run(ActivateCredential, { activateHandle: SRK_HANDLE, keyHandle: ek.handle, credentialBlob: parts.credentialBlob, secret: parts.credentialSecret, keyAuth: session });
    return tpm.run(Import, {
      parentHandle: SRK_HANDLE,
      objectPublic: parts.public,
      duplicate: parts.duplicate,
      inSymSeed: parts.inSymSeed,
      encryptionKey: innerKey,
      symmetricAlg: { algorithm: TPM_ALG.AES, keyBits: innerKey.length * 8, mode: TPM_ALG.CFB },
    });
  });
  const loaded = await tpm.run(Load, { parentHandle: SRK_HANDLE, inPrivate: priv, inPublic: parts.public });
  try {
    if ((await getHandles(tpm, handle)).includes(handle)) await tpm.run(EvictControl, { objectHandle: handle, persistentHandle: handle });
    await tpm.run(EvictControl, { objectHandle: loaded.handle, persistentHandle: handle });
  } finally {
    await tpm.run(FlushContext, { flushHandle: loaded.handle }).catch(() => undefined);
  }
}

/** `SharedAccessSignature sr=…&sig=…&se=…&skn=registration`, the HMAC computed by the TPM key at `handle`. */
async function signSasToken(tpm: TpmClient, handle: number, idScope: string, registrationId: string, expiry: number, style: "c" | "dotnet" = "c"): Promise<string> {
  const sr = encodeSasScope(sasScope(idScope, registrationId), style);
  const sig = await tpm.run(HMAC, { handle, buffer: stringToSign(sr, expiry), hashAlg: TPM_ALG.SHA256 });
  return formatSasToken(sr, sig, expiry);
}

export async function provisionDevice(tpm: TpmClient, svc: ServiceClient, o: ProvisionOptions): Promise<ProvisionResult> {
  const now = o.now ?? Date.now;
  const handle = o.handle ?? DEVICE_KEY_HANDLE;
  if (handle >>> 24 !== 0x81) throw new TpmTrustError("ERR_USAGE", `--handle must be a persistent handle (0x81xxxxxx), not 0x${handle.toString(16)}`);
  const ek = await loadEk(tpm, o.ek ?? "rsa2048");
  try {
    const srk = await ensureSrk(tpm);
    const ekTpm2b = tpm2bPublic(ek.publicArea);
    const registrationId = o.registrationId ?? defaultRegistrationId(ekTpm2b);
    const certs = (await readEkCertificates(tpm)).filter((c) => c.kind === ek.kind);
    const body = {
      registrationId,
      tpm: {
        endorsementKey: ekTpm2b.toString("base64"),
        storageRootKey: encodeTpm2bPublic(srk).toString("base64"),
        ...(certs.length > 0 ? { endorsementKeyCertificate: certs[0].der.toString("base64") } : {}),
      },
      ...(o.payload !== undefined ? { payload: o.payload } : {}),
    };
    const base = `${encodeURIComponent(o.idScope)}/registrations/${encodeURIComponent(registrationId)}`;
    const q = `?api-version=${DPS_API_VERSION}`;

    const challenge = await svc.exchange("PUT", `${base}/register${q}`, body);
    const c = challenge.json as { authenticationKey?: unknown } | undefined;
    if (challenge.status !== 401 || typeof c?.authenticationKey !== "string") throw dpsError("registration (challenge)", challenge.status, challenge.json);
    try {
      await importAuthenticationKey(tpm, ek, Buffer.from(c.authenticationKey, "base64"), handle);
    } catch (e) {
      if (e instanceof TpmRcError) throw new TpmTrustError("ERR_ACTIVATION_FAILED", `the TPM refused the authenticationKey: ${e.message}`);
      throw e;
    }
    const sas = () => signSasToken(tpm, handle, o.idScope, registrationId, Math.floor(now() / 1000) + (o.tokenLifetime ?? 3600), o.sasStyle);

    const accepted = await svc.exchange("PUT", `${base}/register${q}`, body, { authorization: await sas() });
    const op = accepted.json as { operationId?: unknown } | undefined;
    if (accepted.status !== 202 || typeof op?.operationId !== "string") throw dpsError("registration", accepted.status, accepted.json);
    const deadline = now() + (o.timeoutMs ?? 60_000);
    let wait = accepted.retryAfter ?? 1;
    for (;;) {
      await sleep(Math.min(wait, 10) * 1000);
      const r = await svc.exchange("GET", `${base}/operations/${encodeURIComponent(op.operationId)}${q}`, undefined, { authorization: await sas() });
      const s = r.json as { status?: unknown; registrationState?: RegistrationState } | undefined;
      if (r.status !== 200 && r.status !== 202) throw dpsError("operation status", r.status, r.json);
      if (s?.status === "assigned" && s.registrationState) {
        const state = s.registrationState;
        if (state.tpm?.authenticationKey) await importAuthenticationKey(tpm, ek, Buffer.from(state.tpm.authenticationKey, "base64"), handle);
        return { registrationId, operationId: op.operationId, status: "assigned", registrationState: state, keyHandle: handle };
      }
      if (s?.status === "failed" || s?.status === "disabled") {
        const st = s.registrationState;
        throw new TpmTrustError(s.status === "disabled" ? "ERR_DISABLED" : "ERR_POLICY_FAILED", `provisioning ${s.status}${st?.errorMessage ? `: ${st.errorMessage}` : ""}`, {
          ...(st?.errorCode !== undefined ? { errorCode: st.errorCode } : {}),
        });
      }
      if (now() > deadline) throw new TpmTrustError("ERR_UNREACHABLE", `no assignment within ${o.timeoutMs ?? 60_000} ms (status ${String(s?.status)})`);
      wait = r.retryAfter ?? 2;
    }
  } finally {
    await ek.release();
  }
}
