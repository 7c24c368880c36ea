/**
 * Device authentication on the DPS device API: the ID scope, the TPM keys a device presents, SAS
 * tokens checked against the wrapped device key, and store-backed attempt limits (they hold across
 * service instances). Failed checks are audited and counted; past the limit every call of that
 * registration id is ERR_TOO_MANY_ATTEMPTS until the window ends.
 */
import { isBase64 } from "../encoding.js";
import { TpmTrustError } from "../errors.js";
import type { DeviceRegistration } from "../store/index.js";
import { objectName } from "../tpm/structures.js";
import type { TpmtPublic } from "../tpm/types.js";
import type { ProvisioningDeps } from "./config.js";
import type { KeyBinding } from "./device-keys.js";
import { checkSasClaims, parseSasToken, sasSignatureValid } from "./sas.js";
import { checkStorageKey, decodePublicArea } from "./tpm-keys.js";

export const failureKey = (registrationId: string) => `dps:sas-failure:${registrationId}`;
export const challengeKey = (registrationId: string) => `dps:challenge:${registrationId}`;

/** ERR_NOT_FOUND unless `idScope` is the service's scope (compared case-insensitively). */
export async function checkIdScope(d: ProvisioningDeps, idScope: string): Promise<string> {
  const scope = await d.store.provisioning.getIdScope();
  if (!scope || scope.toLowerCase() !== idScope.toLowerCase()) throw new TpmTrustError("ERR_NOT_FOUND", `unknown ID scope ${idScope}`);
  return scope;
}


export function base64Field(v: string, what: string): Buffer {
  if (!isBase64(v)) throw new TpmTrustError("ERR_VALIDATION", `${what} is not base64`);
  return Buffer.from(v, "base64");
}

export interface DeviceTpm {
  ek: TpmtPublic;
  srk: TpmtPublic;
  ekName: Buffer;
  srkName: Buffer;
}

/** Decodes and checks `tpm.endorsementKey` and `tpm.storageRootKey` (TPM2B_PUBLIC, base64). */
export function deviceTpm(tpm: { endorsementKey: string; storageRootKey: string }): DeviceTpm {
  const ek = decodePublicArea(base64Field(tpm.endorsementKey, "tpm.endorsementKey"));
  const srk = decodePublicArea(base64Field(tpm.storageRootKey, "tpm.storageRootKey"));
  checkStorageKey(ek, "endorsementKey");
  checkStorageKey(srk, "storageRootKey");
  return { ek, srk, ekName: objectName(ek), srkName: objectName(srk) };
}

/** ERR_TOO_MANY_ATTEMPTS while the registration id is over its failure limit; else the failures counted so far. */
export async function checkNotLocked(d: ProvisioningDeps, registrationId: string): Promise<number> {
  const n = await d.store.rateLimits.count(failureKey(registrationId), { windowMs: d.config.limitWindowMs, at: d.now() });
  if (n >= d.config.authFailureLimit) {
    throw new TpmTrustError("ERR_TOO_MANY_ATTEMPTS", `too many failed attempts for ${registrationId}; retry after ${Math.ceil(d.config.limitWindowMs / 1000)} s`);
  }
  return n;
}

/** Counts and audits a failed authentication, then rethrows its error. */
export async function authFailed(d: ProvisioningDeps, registrationId: string, action: string, e: TpmTrustError): Promise<never> {
  const now = d.now();
  const n = await d.store.rateLimits.hit(failureKey(registrationId), { windowMs: d.config.limitWindowMs, at: now });
  await d.store.audit.append({ actor: `device:${registrationId}`, action, subject: registrationId, outcome: "denied", details: { code: e.code, reason: e.message, failures: n }, at: now });
  throw e;
}

export interface Verified {
  key: Buffer;
  /** the key was the pending one (first use after a challenge) */
  pending: boolean;
}

/**
 * Verifies the Authorization header against the registration's keys bound to `binding` (current,
 * then pending when `allowPending`). Throws ERR_SAS_INVALID / ERR_SAS_EXPIRED; never counts.
 */
export function verifySas(d: ProvisioningDeps, authorization: string, idScope: string, reg: DeviceRegistration | undefined, binding: KeyBinding, allowPending: boolean): Verified {
  const token = parseSasToken(authorization);
  checkSasClaims(token, { idScope, registrationId: binding.registrationId, now: d.now(), maxLifetimeMs: d.config.maxSasLifetimeMs });
  const candidates: [Buffer | null | undefined, boolean][] = [[reg?.sasKey, false], ...(allowPending ? [[reg?.pendingSasKey, true] as [Buffer | null | undefined, boolean]] : [])];
  for (const [wrapped, pending] of candidates) {
    if (!wrapped) continue;
    const key = d.keys.unwrap(wrapped, binding);
    if (key && sasSignatureValid(token, key)) return { key, pending };
  }
  const issued = candidates.some(([w]) => w);
  throw new TpmTrustError("ERR_SAS_INVALID", issued ? "the SAS token's signature does not verify with the device key" : "no device key was issued to this TPM: register without Authorization first");
}
