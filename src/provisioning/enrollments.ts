/**
 * Individual enrollments (admin): which TPM (by EK) may register under which registration id,
 * with its device id, initial twin, allocation and reprovisioning policy. Every change is audited.
 */
import { TpmTrustError } from "../errors.js";
import type { Enrollment, ReprovisionPolicy, Store } from "../store/index.js";
import { encodeTpm2bPublic, encodeTpmtPublic, decodeTpmtPublic, objectName } from "../tpm/structures.js";
import { checkStorageKey, decodePublicArea } from "./tpm-keys.js";
import { checkSettings, mergeSettings, settingsView, type SettingsInput } from "./settings.js";
import type { Twin } from "./twin.js";

/** DPS registration ids: 1–128 of a-z 0-9 - . _ : (case-insensitive; stored lowercase). */
export const REGISTRATION_ID_PATTERN = "^[A-Za-z0-9._:-]{1,128}$";
/** IoT Hub device ids. */
export const DEVICE_ID_PATTERN = "^[A-Za-z0-9._:@$!*'()+,;=%-]{1,128}$";

export interface EnrollmentInput extends SettingsInput {
  registrationId: string;
  /** TPM2B_PUBLIC (as DPS takes it) or TPMT_PUBLIC of the EK */
  endorsementKey: Uint8Array;
  deviceId?: string | null;
}

export type EnrollmentPatch = Partial<Omit<EnrollmentInput, "registrationId">>;

export interface EnrollmentView {
  registrationId: string;
  /** base64 TPM2B_PUBLIC */
  endorsementKey: string;
  ekNameHex: string;
  deviceId: string | null;
  initialTwin: Twin | null;
  allocation: Record<string, unknown>;
  reprovisionPolicy: ReprovisionPolicy;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface Actor {
  actor: string;
  now: number;
}

export function normalizeRegistrationId(id: string): string {
  if (!new RegExp(REGISTRATION_ID_PATTERN).test(id)) throw new TpmTrustError("ERR_VALIDATION", `registration id "${id.slice(0, 140)}" is not 1-128 of a-z 0-9 - . _ :`);
  return id.toLowerCase();
}

function checkDeviceId(id: string | null | undefined): string | null {
  if (id === undefined || id === null) return null;
  if (!new RegExp(DEVICE_ID_PATTERN).test(id)) throw new TpmTrustError("ERR_VALIDATION", `device id "${id.slice(0, 140)}" is not a valid IoT Hub device id`);
  return id;
}

/** The EK as stored (TPMT_PUBLIC bytes), after checking it is a restricted decryption key. */
function ekBytes(bytes: Uint8Array): Buffer {
  const ek = decodePublicArea(bytes);
  checkStorageKey(ek, "endorsementKey");
  return encodeTpmtPublic(ek);
}

function enrollmentView(e: Enrollment): EnrollmentView {
  const ek = decodeTpmtPublic(e.ekPublic);
  return {
    registrationId: e.registrationId,
    endorsementKey: encodeTpm2bPublic(ek).toString("base64"),
    ekNameHex: objectName(ek).toString("hex"),
    deviceId: e.deviceId,
    ...settingsView(e),
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

function fields(i: EnrollmentInput) {
  return {
    registrationId: normalizeRegistrationId(i.registrationId),
    ekPublic: ekBytes(i.endorsementKey),
    deviceId: checkDeviceId(i.deviceId),
    ...checkSettings(i),
  };
}

export async function addEnrollment(store: Store, input: EnrollmentInput, by: Actor): Promise<EnrollmentView> {
  const f = fields(input);
  const e = await store.transaction(async (tx) => {
    if (await tx.provisioning.getEnrollment(f.registrationId)) throw new TpmTrustError("ERR_CONFLICT", `an enrollment for ${f.registrationId} exists (update or remove it)`);
    const e = await tx.provisioning.putEnrollment(f, by.now);
    await tx.audit.append({ actor: by.actor, action: "provisioning.enrollment.add", subject: f.registrationId, outcome: "success", details: auditDetails(e), at: by.now });
    return e;
  });
  return enrollmentView(e);
}

export async function getEnrollment(store: Store, registrationId: string): Promise<EnrollmentView> {
  const e = await store.provisioning.getEnrollment(normalizeRegistrationId(registrationId));
  if (!e) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment for ${registrationId}`);
  return enrollmentView(e);
}

export async function listEnrollments(store: Store): Promise<EnrollmentView[]> {
  return (await store.provisioning.listEnrollments({ limit: 100_000 })).map(enrollmentView);
}

export async function updateEnrollment(store: Store, registrationId: string, patch: EnrollmentPatch, by: Actor): Promise<EnrollmentView> {
  const id = normalizeRegistrationId(registrationId);
  const e = await store.transaction(async (tx) => {
    const cur = await tx.provisioning.getEnrollment(id);
    if (!cur) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment for ${id}`);
    const f = fields({
      registrationId: id,
      endorsementKey: patch.endorsementKey ?? cur.ekPublic,
      deviceId: patch.deviceId !== undefined ? patch.deviceId : cur.deviceId,
      ...mergeSettings(patch, cur),
    });
    const e = await tx.provisioning.putEnrollment(f, by.now);
    await tx.audit.append({ actor: by.actor, action: "provisioning.enrollment.update", subject: id, outcome: "success", details: { changed: Object.keys(patch), ...auditDetails(e) }, at: by.now });
    return e;
  });
  return enrollmentView(e);
}

/** Removes the enrollment and its device registration record: the device can no longer register. */
export async function removeEnrollment(store: Store, registrationId: string, by: Actor): Promise<void> {
  const id = normalizeRegistrationId(registrationId);
  await store.transaction(async (tx) => {
    if (!(await tx.provisioning.removeEnrollment(id))) throw new TpmTrustError("ERR_NOT_FOUND", `no enrollment for ${id}`);
    const registration = await tx.provisioning.removeRegistration(id);
    await tx.audit.append({ actor: by.actor, action: "provisioning.enrollment.remove", subject: id, outcome: "success", details: { registrationRemoved: registration }, at: by.now });
  });
}

function auditDetails(e: Enrollment): Record<string, unknown> {
  const { initialTwin: _twin, ...settings } = settingsView(e);
  return { ekName: objectName(decodeTpmtPublic(e.ekPublic)).toString("hex"), deviceId: e.deviceId, ...settings };
}
