/**
 * Who may call what. Every route declares `config.access`: "public" (no credential: the request
 * carries its own proof, e.g. a TPM quote or a SAS token), or the admin roles it admits. Admin
 * API tokens arrive as `Authorization: Bearer <token>` and are checked against their stored hash,
 * on request arrival: a caller without the right token learns nothing about the body (no parse or
 * schema error comes first). Denied calls are audited. The OpenAPI document lists the roles of
 * each admin route as its `security` requirement.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { TpmTrustError } from "../errors.js";
import type { AdminRole, Store } from "../store/index.js";
import { areaGroup, type AdminArea } from "../attest/settings.js";

export type Access = "public" | AdminRole[];

export interface Principal {
  kind: "admin";
  role: AdminRole;
  tokenId: string;
  /** the audit actor string: `role:name` for a named token, else `role:tokenId` */
  actor: string;
  /** the principal a named token speaks for */
  name?: string;
  /** an enroller token's identity */
  identity?: string;
  /** the CLI in-process on the service's machine (src/cli/admin-client.ts): it may name files of this machine */
  local?: true;
}

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Both admin roles; read-only routes admit the auditor too. */
export const READERS: AdminRole[] = ["admin", "auditor"];
export const ADMINS: AdminRole[] = ["admin"];

export function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}

/**
 * Admits a request whose admin token has one of `roles`, or throws ERR_UNAUTHENTICATED /
 * ERR_FORBIDDEN after auditing the denial under `subject` at `at`.
 */
async function admit(store: Store, req: FastifyRequest, roles: readonly AdminRole[], subject: string, at: number): Promise<Principal> {
  const token = bearer(req);
  const deny = async (code: "ERR_UNAUTHENTICATED" | "ERR_FORBIDDEN", message: string, actor: string): Promise<never> => {
    await store.audit.append({ actor, action: "auth.denied", subject, outcome: "denied", details: { code }, at });
    throw new TpmTrustError(code, message);
  };
  if (!token) return deny("ERR_UNAUTHENTICATED", "this call needs an admin API token (Authorization: Bearer …)", "anonymous");
  const t = await store.adminTokens.verify(token);
  if (!t) return deny("ERR_UNAUTHENTICATED", "the API token is unknown or revoked", "anonymous");
  const actor = `${t.role}:${t.name ?? t.id}`;
  if (!roles.includes(t.role)) return deny("ERR_FORBIDDEN", `role ${t.role} may not call this; it needs ${roles.join(" or ")}`, actor);
  const area = t.role === "admin" ? areaOf(subject) : undefined;
  const group = area ? await areaGroup(store, area) : undefined;
  if (group && !(t.name !== undefined && group.includes(t.name))) {
    return deny("ERR_FORBIDDEN", `${t.name ? `principal ${t.name} is` : "an unnamed token is"} not among the administrators of ${area} (admins.${area})`, actor);
  }
  return { kind: "admin", role: t.role, tokenId: t.id, actor, ...(t.name ? { name: t.name } : {}), ...(t.identity ? { identity: t.identity } : {}) };
}

/** The sensitive area an admin route belongs to (`METHOD /path`), whose group (admins.AREA) may narrow its administrators. */
function areaOf(route: string): AdminArea | undefined {
  const path = route.slice(route.indexOf(" ") + 1);
  if (/^\/v1\/keys\/(servers|providers|clusters)(\/|$)/.test(path)) return "keys";
  if (path.startsWith("/v1/trust/")) return "trust";
  if (path.startsWith("/v1/ca/")) return "ca";
  if (path.startsWith("/v1/admin/") || path === "/v1/config" || path.startsWith("/v1/config/")) return "admin";
  return undefined;
}

/** A public route's optional admin: null without an Authorization header, else as `admit` (a bad token is refused, not ignored). */
export async function optionalAdmin(store: Store, req: FastifyRequest, roles: readonly AdminRole[], subject: string, at: number): Promise<Principal | null> {
  return req.headers.authorization === undefined ? null : admit(store, req, roles, subject, at);
}

/**
 * `inProcess`: the principal of every admin request, without a token — only for an app that never
 * listens, which the CLI drives in-process over the local database (src/cli/admin-client.ts).
 */
export function installAuth(app: FastifyInstance, store: Store, now: () => number, inProcess?: Principal): void {
  app.decorateRequest("principal", null);
  app.addHook("onRoute", (route) => {
    const access = (route.config as { access?: Access } | undefined)?.access;
    if (access === undefined && !route.url.startsWith("/ui") && route.url !== "/openapi.json") {
      throw new Error(`route ${route.method} ${route.url} declares no config.access`);
    }
    if (Array.isArray(access)) route.schema = { ...route.schema, security: [{ adminToken: access }] };
  });
  app.addHook("onRequest", async (req) => {
    const access = req.routeOptions.config.access;
    if (access === undefined || access === "public") return;
    if (inProcess) {
      req.principal = inProcess;
      return;
    }
    req.principal = await admit(store, req, access, `${req.method} ${req.routeOptions.url}`, now());
  });
}

/** The audit actor of a request: its admin, or the given fallback (e.g. "host:<name>"). */
export function actorOf(req: FastifyRequest, fallback = "anonymous"): string {
  return req.principal?.actor ?? fallback;
}
