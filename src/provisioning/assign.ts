/**
 * Assignment of an authenticated device: the hub (allocation policy), the device id, the twin and
 * the DPS substatus, following the enrollment's reprovisioning policy when the device was assigned
 * before:
 *   reprovision-and-migrate  allocate again; the twin moves with the device   (deviceDataMigrated)
 *   reprovision-and-reset    allocate again; the twin restarts from the enrollment's initial twin (deviceDataReset)
 *   never                    stay on the previous hub, twin kept              (reprovisionedToInitialAssignment)
 * A device that lands on the hub it had is `reprovisionedToInitialAssignment`; a first assignment is
 * `initialAssignment`. When the previous hub is no longer linked, "never" allocates anew.
 */
import { TpmTrustError } from "../errors.js";
import type { DeviceRegistration, Hub, Store } from "../store/index.js";
import { callCustomAllocation, checkAllocation, pickHashed, type AllocationSettings } from "./allocation.js";
import type { EnrollmentMatch } from "./enrollment-match.js";
import type { Twin } from "./twin.js";

export type Substatus = "initialAssignment" | "deviceDataMigrated" | "deviceDataReset" | "reprovisionedToInitialAssignment";

export interface Assignment {
  hub: Hub;
  deviceId: string;
  twin: Twin | null;
  substatus: Substatus;
  /** returned to the device in registrationState.payload (custom allocation only) */
  payload?: unknown;
}

/** Why an assignment failed: DPS's numeric error code and a message for the device. */
export class AssignmentError extends Error {
  constructor(
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** DPS: no linked hub could be chosen (the C SDK maps it to PROV_DEVICE_RESULT_HUB_NOT_SPECIFIED). */
const ERROR_NO_HUB = 400208;
/** tpmtrust's code (HTTP 424 "failed dependency" × 1000 + 1): the custom allocation webhook failed or named an unknown hub. */
const ERROR_CUSTOM_ALLOCATION = 424001;

export interface AssignInput {
  match: EnrollmentMatch;
  registrationId: string;
  /** the record before this registration (status "assigned" when the device had a hub) */
  previous: DeviceRegistration | undefined;
  /** base64 TPM2B_PUBLIC of EK and SRK, for the custom allocation request */
  tpm: { endorsementKey: string; storageRootKey: string };
  payload?: unknown;
}

function settingsOf(m: EnrollmentMatch): { allocation: AllocationSettings; initialTwin: Twin | null; policy: string; deviceId: string | null } {
  const src = m.kind === "individual" ? m.enrollment : m.group;
  return {
    allocation: checkAllocation(src.allocation),
    initialTwin: src.initialTwin as Twin | null,
    policy: src.reprovisionPolicy,
    deviceId: m.kind === "individual" ? m.enrollment.deviceId : null,
  };
}

export async function assign(store: Store, a: AssignInput): Promise<Assignment> {
  const s = settingsOf(a.match);
  const hubs = await store.provisioning.listHubs();
  const deviceId = s.deviceId ?? a.registrationId;
  const prev = a.previous?.status === "assigned" ? a.previous : undefined;
  const prevHub = prev ? hubs.find((h) => h.hostname === prev.assignedHub) : undefined;

  if (prev && prevHub && s.policy === "never") {
    return { hub: prevHub, deviceId, twin: prev.twin as Twin | null, substatus: "reprovisionedToInitialAssignment" };
  }
  const { hub, twin: customTwin, payload } = await allocate(s.allocation, hubs, a, prev);
  const initial = customTwin ?? s.initialTwin;
  if (!prev) return { hub, deviceId, twin: initial, substatus: "initialAssignment", ...(payload !== undefined ? { payload } : {}) };
  const moved = prev.assignedHub !== hub.hostname;
  const reset = s.policy === "reprovision-and-reset";
  const substatus: Substatus = !moved ? "reprovisionedToInitialAssignment" : reset ? "deviceDataReset" : "deviceDataMigrated";
  return { hub, deviceId, twin: reset ? initial : ((prev.twin as Twin | null) ?? initial), substatus, ...(payload !== undefined ? { payload } : {}) };
}

async function allocate(
  settings: AllocationSettings,
  hubs: Hub[],
  a: AssignInput,
  prev: DeviceRegistration | undefined,
): Promise<{ hub: Hub; twin?: Twin; payload?: unknown }> {
  const named = settings.hubs ? hubs.filter((h) => settings.hubs!.includes(h.name)) : hubs;
  switch (settings.policy) {
    case "static": {
      const hub = hubs.find((h) => h.name === settings.hub);
      if (!hub) throw new AssignmentError(ERROR_NO_HUB, `the enrollment's hub ${settings.hub} is not a linked hub`);
      return { hub };
    }
    case "hashed": {
      const hub = pickHashed(a.registrationId, named);
      if (!hub) throw new AssignmentError(ERROR_NO_HUB, "no linked hub with a weight above 0 is available for this enrollment");
      return { hub };
    }
    case "custom": {
      if (named.length === 0) throw new AssignmentError(ERROR_NO_HUB, "no linked hub is available for this enrollment");
      const m = a.match;
      let answer;
      try {
        answer = await callCustomAllocation(settings.webhook!, {
          ...(m.kind === "individual"
            ? { individualEnrollment: { registrationId: m.enrollment.registrationId, deviceId: m.enrollment.deviceId, initialTwin: m.enrollment.initialTwin as Twin | null } }
            : { enrollmentGroup: { enrollmentGroupId: m.group.name, initialTwin: m.group.initialTwin as Twin | null } }),
          deviceRuntimeContext: {
            registrationId: a.registrationId,
            currentIotHubHostName: prev?.assignedHub ?? null,
            currentDeviceId: prev?.deviceId ?? null,
            tpm: a.tpm,
            ...(a.payload !== undefined ? { payload: a.payload } : {}),
          },
          linkedHubs: named.map((h) => h.hostname),
        });
      } catch (e) {
        if (e instanceof TpmTrustError) throw new AssignmentError(ERROR_CUSTOM_ALLOCATION, e.message);
        throw e;
      }
      const hub = named.find((h) => h.hostname === answer.iotHubHostName.toLowerCase());
      if (!hub) throw new AssignmentError(ERROR_CUSTOM_ALLOCATION, `the custom allocation webhook chose ${answer.iotHubHostName}, which is not a linked hub of this enrollment`);
      return { hub, ...(answer.initialTwin ? { twin: answer.initialTwin } : {}), ...(answer.payload !== undefined ? { payload: answer.payload } : {}) };
    }
  }
}
