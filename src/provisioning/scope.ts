/**
 * The service's ID scope: the first path segment of the device API, as in DPS. Created at random
 * ("0ne" + 8 hex digits, DPS's shape) on first start; an operator moving devices off Azure DPS sets
 * the scope they already carry.
 */
import { randomBytes } from "node:crypto";
import { TpmTrustError } from "../errors.js";
import type { Store } from "../store/index.js";
import type { Actor } from "./enrollments.js";

export const ID_SCOPE_PATTERN = "^[A-Za-z0-9]{3,32}$";

/** The scope in force, creating one on first use (concurrent instances agree on one). */
export async function ensureIdScope(store: Store, now: number): Promise<string> {
  return (await store.provisioning.getIdScope()) ?? store.provisioning.setIdScope(`0ne${randomBytes(4).toString("hex").toUpperCase()}`, { onlyIfUnset: true, at: now });
}

export async function setIdScope(store: Store, idScope: string, by: Actor): Promise<string> {
  if (!new RegExp(ID_SCOPE_PATTERN).test(idScope)) throw new TpmTrustError("ERR_VALIDATION", `ID scope "${idScope.slice(0, 40)}" must be 3-32 letters and digits`);
  return store.transaction(async (tx) => {
    const before = await tx.provisioning.getIdScope();
    const scope = await tx.provisioning.setIdScope(idScope, { at: by.now });
    await tx.audit.append({ actor: by.actor, action: "provisioning.scope.set", subject: scope, outcome: "success", details: { previous: before ?? null }, at: by.now });
    return scope;
  });
}
