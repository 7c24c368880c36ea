/**
 * Administrators (vSphere's TrustedAdmins): API tokens with a role and, for named administrators,
 * the principal they speak for (audit entries name it: `admin:alice`). Tokens are listed with their
 * principal, revoked one by one or all of a principal's at once. Every change is audited.
 */
import { TpmTrustError, isTpmTrustError } from "../errors.js";
import { PRINCIPAL_NAME_PATTERN, type AdminRole, type AdminToken, type Store } from "../store/index.js";
import type { Caller } from "../trust/trust.js";
import { REQUESTER_NAME_PATTERN } from "../ca/templates.js";

export const ADMIN_ROLES: readonly AdminRole[] = ["admin", "auditor", "enroller"];

export interface NewAdminToken {
  role: AdminRole;
  name?: string;
  label?: string;
  identity?: string;
}

export async function createAdminToken(store: Store, o: NewAdminToken, c: Caller): Promise<AdminToken & { token: string }> {
  try {
    if (!ADMIN_ROLES.includes(o.role)) throw new TpmTrustError("ERR_VALIDATION", `role must be ${ADMIN_ROLES.join(", ")}`);
    if ((o.role === "enroller") !== (o.identity !== undefined)) throw new TpmTrustError("ERR_USAGE", "--identity goes with --role enroller, and an enroller token needs one");
    if (o.identity !== undefined && !new RegExp(REQUESTER_NAME_PATTERN).test(o.identity)) throw new TpmTrustError("ERR_USAGE", `--identity must match ${REQUESTER_NAME_PATTERN}`);
    if (o.name !== undefined && !new RegExp(PRINCIPAL_NAME_PATTERN).test(o.name)) throw new TpmTrustError("ERR_USAGE", `--name must match ${PRINCIPAL_NAME_PATTERN}`);
    return await store.transaction(async (tx) => {
      const t = await tx.adminTokens.create({ role: o.role, label: o.label ?? null, identity: o.identity ?? null, name: o.name ?? null, at: c.now });
      await tx.audit.append({
        actor: c.actor,
        action: "admin.token.create",
        subject: t.id,
        outcome: "success",
        details: { role: o.role, label: o.label ?? null, ...(t.name ? { name: t.name } : {}), ...(t.identity ? { identity: t.identity } : {}) },
        at: c.now,
      });
      return t;
    });
  } catch (e) {
    if (isTpmTrustError(e)) await store.audit.append({ actor: c.actor, action: "admin.token.create", subject: null, outcome: "failure", details: { code: e.code, reason: e.message }, at: c.now });
    throw e;
  }
}

export function listAdminTokens(store: Store, o: { name?: string } = {}): Promise<AdminToken[]> {
  return store.adminTokens.list().then((l) => (o.name === undefined ? l : l.filter((t) => t.name === o.name)));
}

/** Revokes one token by id. */
export async function revokeAdminToken(store: Store, id: string, c: Caller): Promise<void> {
  const ok = await store.transaction(async (tx) => {
    const ok = await tx.adminTokens.revoke(id, c.now);
    await tx.audit.append({ actor: c.actor, action: "admin.token.revoke", subject: id, outcome: ok ? "success" : "failure", details: ok ? {} : { code: "ERR_NOT_FOUND" }, at: c.now });
    return ok;
  });
  if (!ok) throw new TpmTrustError("ERR_NOT_FOUND", `no active token ${id}`);
}

/** Revokes every active token of a principal; returns their ids. */
export async function revokePrincipal(store: Store, name: string, c: Caller): Promise<string[]> {
  const ids = await store.transaction(async (tx) => {
    const ids = await tx.adminTokens.revokeByName(name, c.now);
    await tx.audit.append({ actor: c.actor, action: "admin.token.revoke", subject: `principal:${name}`, outcome: ids.length ? "success" : "failure", details: ids.length ? { name, tokens: ids } : { name, code: "ERR_NOT_FOUND" }, at: c.now });
    return ids;
  });
  if (!ids.length) throw new TpmTrustError("ERR_NOT_FOUND", `principal ${name} has no active token`);
  return ids;
}
