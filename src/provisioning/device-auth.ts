/**
 * Device authentication on the DPS device API: the ID scope, the TPM keys a device presents, SAS
 * tokens checked against the device key, and store-backed attempt limits (they hold across service
 * instances). Failed checks are audited and counted per client address and per registration id;
 * past either limit a call whose SAS does not verify is ERR_TOO_MANY_ATTEMPTS until the window ends.
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

const sourceFailureKey = (source: string) => `dps:sas-failure:source:${source}`;
const registrationFailureKey = (registrationId: string) => `dps:sas-failure:${registrationId}`;
export const challengeKey = (source: string) => `dps:challenge:source:${source}`;

/** Who is calling: the registration id the call names and the client address it comes from. */
export interface DeviceCaller {
  registrationId: string;
  source: string;
}

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

/**
 * A failed authentication: ERR_TOO_MANY_ATTEMPTS when the client address or the registration id
 * is over its failure limit (then neither counted nor audited again); else counted on both,
 * audited, and `e` rethrown. Only calls whose SAS does not verify come here, so failures by
 * anyone never lock out a device that holds its key.
 */
export async function authFailed(d: ProvisioningDeps, c: DeviceCaller, action: string, e: TpmTrustError): Promise<never> {
  const now = d.now();
  const window = { windowMs: d.config.limitWindowMs, at: now };
  const keys = [sourceFailureKey(c.source), registrationFailureKey(c.registrationId)];
  const [bySource, byId] = await Promise.all(keys.map((k) => d.store.rateLimits.count(k, window)));
  if (bySource >= d.config.sourceFailureLimit || byId >= d.config.authFailureLimit) {
    const retryAfterSeconds = Math.ceil(d.config.limitWindowMs / 1000);
    throw new TpmTrustError("ERR_TOO_MANY_ATTEMPTS", `too many failed attempts from ${c.source} or for ${c.registrationId}; retry after ${retryAfterSeconds} s`, { retryAfterSeconds });
  }
  const [fromSource, n] = await Promise.all(keys.map((k) => d.store.rateLimits.hit(k, window)));
  await d.store.audit.append({ actor: `device:${c.registrationId}`, action, subject: c.registrationId, outcome: "denied", details: { code: e.code, reason: e.message, failures: n, source: c.source, failuresFromSource: fromSource }, at: now });
  throw e;
}

export interface Verified {
  key: Buffer;
  /** the key was a challenge's (first use after a challenge) */
  pending: boolean;
}

/**
 * Verifies the Authorization header against the registration's current key bound to `binding`,
 * then, when `allowPending`, against the keys challenges for that binding handed out in this and
 * the previous challenge period. Throws ERR_SAS_INVALID / ERR_SAS_EXPIRED; never counts.
 */
export function verifySas(d: ProvisioningDeps, authorization: string, idScope: string, reg: DeviceRegistration | undefined, binding: KeyBinding, allowPending: boolean): Verified {
  const token = parseSasToken(authorization);
  const now = d.now();
  checkSasClaims(token, { idScope, registrationId: binding.registrationId, now, maxLifetimeMs: d.config.maxSasLifetimeMs });
  const current = reg?.sasKey ? d.keys.unwrap(reg.sasKey, binding) : undefined;
  if (current && sasSignatureValid(token, current)) return { key: current, pending: false };
  if (allowPending) {
    const period = Math.floor(now / d.config.challengePeriodMs);
    for (const p of [period, period - 1]) {
      const key = d.keys.challengeKey(binding, p);
      if (sasSignatureValid(token, key)) return { key, pending: true };
    }
  }
  throw new TpmTrustError("ERR_SAS_INVALID", reg?.sasKey || allowPending ? "the SAS token's signature does not verify with the device key" : "no device key was issued to this TPM: register without Authorization first");
}
