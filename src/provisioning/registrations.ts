/** Device registration records (admin): what each device was assigned, list / show / remove. Keys are never shown. */
import { TpmTrustError } from "../errors.js";
import type { DeviceRegistration, Store } from "../store/index.js";
import { decodeTpmtPublic, objectName } from "../tpm/structures.js";
import { normalizeRegistrationId, type Actor } from "./enrollments.js";

export interface RegistrationView {
  registrationId: string;
  /** "individual", or the enrollment group's name */
  enrollment: { kind: "individual" } | { kind: "group"; name: string };
  status: string;
  substatus: string | null;
  assignedHub: string | null;
  deviceId: string | null;
  operationId: string | null;
  etag: string;
  ekNameHex: string;
  srkNameHex: string | null;
  twin: Record<string, unknown> | null;
  payload: unknown;
  errorCode: number | null;
  errorMessage: string | null;
  /** a device key was proven by the device (a SAS token verified) */
  keyProven: boolean;
  createdAt: number;
  updatedAt: number;
}

const nameHex = (tpmt: Buffer) => objectName(decodeTpmtPublic(tpmt)).toString("hex");

function registrationView(r: DeviceRegistration): RegistrationView {
  return {
    registrationId: r.registrationId,
    enrollment: r.groupName === null ? { kind: "individual" } : { kind: "group", name: r.groupName },
    status: r.status,
    substatus: r.substatus,
    assignedHub: r.assignedHub,
    deviceId: r.deviceId,
    operationId: r.operationId,
    etag: r.etag,
    ekNameHex: nameHex(r.ekPublic),
    srkNameHex: r.srkPublic ? nameHex(r.srkPublic) : null,
    twin: r.twin,
    payload: r.payload,
    errorCode: r.errorCode,
    errorMessage: r.errorMessage,
    keyProven: r.sasKey !== null,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

export async function listRegistrations(store: Store, o: { group?: string } = {}): Promise<RegistrationView[]> {
  return (await store.provisioning.listRegistrations({ ...(o.group ? { groupName: o.group } : {}), limit: 100_000 })).map(registrationView);
}

export async function getRegistration(store: Store, registrationId: string): Promise<RegistrationView> {
  const r = await store.provisioning.getRegistration(normalizeRegistrationId(registrationId));
  if (!r) throw new TpmTrustError("ERR_NOT_FOUND", `no registration record for ${registrationId}`);
  return registrationView(r);
}

/**
 * Deletes a registration record (DPS "delete device registration state"): the device's key is
 * forgotten, and its next registration is an initial assignment.
 */
export async function removeRegistration(store: Store, registrationId: string, by: Actor): Promise<void> {
  const id = normalizeRegistrationId(registrationId);
  await store.transaction(async (tx) => {
    if (!(await tx.provisioning.removeRegistration(id))) throw new TpmTrustError("ERR_NOT_FOUND", `no registration record for ${id}`);
    await tx.audit.append({ actor: by.actor, action: "provisioning.registration.remove", subject: id, outcome: "success", at: by.now });
  });
}
