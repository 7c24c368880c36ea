/**
 * What a registered device may read, authenticated by a SAS token made with its current key:
 * the operation status (`GET …/operations/{operationId}`) and the registration status lookup
 * (`POST /{idScope}/registrations/{registrationId}`). An assigned TPM device also gets
 * `registrationState.tpm.authenticationKey`: its device key wrapped again (fresh seeds) to its EK
 * and SRK. The SDKs import that key for the hub connection, so it is the same key they already hold.
 */
import { TpmTrustError } from "../errors.js";
import type { DeviceRegistration } from "../store/index.js";
import { decodeTpmtPublic, objectName } from "../tpm/structures.js";
import { buildAuthenticationKey } from "./authentication-key.js";
import type { ProvisioningDeps } from "./config.js";
import { authFailed, checkIdScope, verifySas } from "./device-auth.js";
import { normalizeRegistrationId } from "./enrollments.js";

/** DPS DeviceRegistrationResult. */
export interface RegistrationState {
  registrationId: string;
  createdDateTimeUtc: string;
  assignedHub?: string;
  deviceId?: string;
  status: string;
  substatus?: string;
  errorCode?: number;
  errorMessage?: string;
  lastUpdatedDateTimeUtc: string;
  etag: string;
  payload?: unknown;
  tpm?: { authenticationKey: string };
}

export interface OperationStatus {
  operationId: string;
  status: string;
  registrationState: RegistrationState;
}

function registrationState(r: DeviceRegistration, key: Buffer | undefined): RegistrationState {
  const assigned = r.status === "assigned";
  let tpm: RegistrationState["tpm"];
  if (assigned && key && r.srkPublic) {
    tpm = { authenticationKey: buildAuthenticationKey(decodeTpmtPublic(r.ekPublic), decodeTpmtPublic(r.srkPublic), key).blob.toString("base64") };
  }
  return {
    registrationId: r.registrationId,
    createdDateTimeUtc: new Date(r.createdAt).toISOString(),
    ...(assigned && r.assignedHub ? { assignedHub: r.assignedHub } : {}),
    ...(assigned && r.deviceId ? { deviceId: r.deviceId } : {}),
    status: r.status,
    ...(r.substatus ? { substatus: r.substatus } : {}),
    ...(r.errorCode !== null ? { errorCode: r.errorCode } : {}),
    ...(r.errorMessage !== null ? { errorMessage: r.errorMessage } : {}),
    lastUpdatedDateTimeUtc: new Date(r.updatedAt).toISOString(),
    etag: r.etag,
    ...(assigned && r.payload !== null ? { payload: r.payload } : {}),
    ...(tpm ? { tpm } : {}),
  };
}

/** The record, after the device proved its current key; ERR_DISABLED when its enrollment was disabled since. */
async function authenticated(d: ProvisioningDeps, idScopeIn: string, registrationId: string, authorization: string | undefined, source: string, action: string): Promise<{ r: DeviceRegistration; key: Buffer }> {
  const idScope = await checkIdScope(d, idScopeIn);
  const id = normalizeRegistrationId(registrationId);
  const r = await d.store.provisioning.getRegistration(id);
  if (!r) throw new TpmTrustError("ERR_NOT_FOUND", `no registration record for ${id}`);
  let key: Buffer;
  try {
    if (authorization === undefined) throw new TpmTrustError("ERR_SAS_INVALID", "this call needs Authorization: SharedAccessSignature …");
    const binding = { registrationId: id, ekName: objectName(decodeTpmtPublic(r.ekPublic)), srkName: r.srkPublic ? objectName(decodeTpmtPublic(r.srkPublic)) : Buffer.alloc(0) };
    key = verifySas(d, authorization, idScope, r, binding, false).key;
  } catch (e) {
    if (e instanceof TpmTrustError) return authFailed(d, { registrationId: id, source }, action, e);
    throw e;
  }
  const enrollment = r.groupName === null ? await d.store.provisioning.getEnrollment(id) : await d.store.provisioning.getGroup(r.groupName);
  if (!enrollment) throw new TpmTrustError("ERR_NOT_FOUND", `the enrollment of ${id} was removed`);
  if (!enrollment.enabled) throw new TpmTrustError("ERR_DISABLED", `the enrollment of ${id} is disabled`);
  return { r, key };
}

export async function operationStatus(d: ProvisioningDeps, o: { idScope: string; registrationId: string; operationId: string; authorization?: string; source: string }): Promise<OperationStatus> {
  const { r, key } = await authenticated(d, o.idScope, o.registrationId, o.authorization, o.source, "provisioning.device.operation");
  if (r.operationId !== o.operationId) throw new TpmTrustError("ERR_NOT_FOUND", `no operation ${o.operationId} for ${r.registrationId}`);
  return { operationId: r.operationId, status: r.status, registrationState: registrationState(r, key) };
}

export async function registrationStatus(d: ProvisioningDeps, o: { idScope: string; registrationId: string; authorization?: string; source: string }): Promise<RegistrationState> {
  const { r, key } = await authenticated(d, o.idScope, o.registrationId, o.authorization, o.source, "provisioning.device.status");
  return registrationState(r, key);
}
