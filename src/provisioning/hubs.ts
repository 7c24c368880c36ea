/** Linked hubs (admin): the IoT hubs devices are assigned to, with their allocation weight. */
import { TpmTrustError } from "../errors.js";
import type { Hub, Store } from "../store/index.js";
import type { Actor } from "./enrollments.js";

export const HUB_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
export const HOSTNAME_PATTERN = "^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$";
export const MAX_WEIGHT = 1000;

export interface HubInput {
  name: string;
  hostname: string;
  /** share of hashed allocations, 0 (none) to 1000; default 1 */
  weight?: number;
}

/** Adds a hub, or changes the hostname and weight of an existing one. */
export async function putHub(store: Store, h: HubInput, by: Actor): Promise<Hub> {
  if (!new RegExp(HUB_NAME_PATTERN).test(h.name)) throw new TpmTrustError("ERR_VALIDATION", `hub name "${h.name.slice(0, 140)}" must be 1-128 of A-Z a-z 0-9 . _ - (starting alphanumeric)`);
  if (!new RegExp(HOSTNAME_PATTERN).test(h.hostname)) throw new TpmTrustError("ERR_VALIDATION", `"${h.hostname.slice(0, 260)}" is not a host name`);
  const weight = h.weight ?? 1;
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) throw new TpmTrustError("ERR_VALIDATION", `weight must be an integer from 0 to ${MAX_WEIGHT}`);
  return store.transaction(async (tx) => {
    const before = await tx.provisioning.getHub(h.name);
    const hub = await tx.provisioning.putHub({ name: h.name, hostname: h.hostname.toLowerCase(), weight, at: by.now });
    await tx.audit.append({ actor: by.actor, action: before ? "provisioning.hub.update" : "provisioning.hub.add", subject: h.name, outcome: "success", details: { hostname: hub.hostname, weight }, at: by.now });
    return hub;
  });
}

export async function listHubs(store: Store): Promise<Hub[]> {
  return store.provisioning.listHubs();
}

/** Removes a hub. Devices assigned to it keep their record; their next registration allocates anew. */
export async function removeHub(store: Store, name: string, by: Actor): Promise<void> {
  await store.transaction(async (tx) => {
    if (!(await tx.provisioning.removeHub(name))) throw new TpmTrustError("ERR_NOT_FOUND", `no hub ${name}`);
    await tx.audit.append({ actor: by.actor, action: "provisioning.hub.remove", subject: name, outcome: "success", at: by.now });
  });
}
