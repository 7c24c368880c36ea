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

export type Access = "public" | AdminRole[];

export interface Principal {
  kind: "admin";
  role: AdminRole;
  tokenId: string;
  /** the audit actor string */
  actor: string;
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

export function installAuth(app: FastifyInstance, store: Store): void {
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
    const token = bearer(req);
    const deny = async (code: "ERR_UNAUTHENTICATED" | "ERR_FORBIDDEN", message: string, actor: string) => {
      await store.audit.append({ actor, action: "auth.denied", subject: `${req.method} ${req.routeOptions.url}`, outcome: "denied", details: { code } });
      throw new TpmTrustError(code, message);
    };
    if (!token) return deny("ERR_UNAUTHENTICATED", "this call needs an admin API token (Authorization: Bearer …)", "anonymous");
    const t = await store.adminTokens.verify(token);
    if (!t) return deny("ERR_UNAUTHENTICATED", "the API token is unknown or revoked", "anonymous");
    const actor = `${t.role}:${t.id}`;
    if (!access.includes(t.role)) return deny("ERR_FORBIDDEN", `role ${t.role} may not call this; it needs ${access.join(" or ")}`, actor);
    req.principal = { kind: "admin", role: t.role, tokenId: t.id, actor };
  });
}

/** The audit actor of a request: its admin, or the given fallback (e.g. "host:<name>"). */
export function actorOf(req: FastifyRequest, fallback = "anonymous"): string {
  return req.principal?.actor ?? fallback;
}
