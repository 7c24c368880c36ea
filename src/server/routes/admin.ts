/**
 * Administration of the service itself (docs/api.md § Administration): API tokens and the
 * principals they name, run-time settings (admission, area groups), and the configuration checklist.
 */
import type { FastifyRequest } from "fastify";
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { ADMIN_ROLES, createAdminToken, listAdminTokens, revokeAdminToken, revokePrincipal } from "../../attest/admins.js";
import { listSettings, setSetting, SETTINGS, unsetSetting } from "../../attest/settings.js";
import { statusReport } from "../../attest/status.js";
import { PRINCIPAL_NAME_PATTERN, type AdminRole } from "../../store/index.js";

const tags = ["admin"];
const PRINCIPAL = { type: "string", pattern: PRINCIPAL_NAME_PATTERN } as const;
const KEY = { type: "object", additionalProperties: false, required: ["key"], properties: { key: { type: "string", enum: Object.keys(SETTINGS) } } } as const;

const admin: RouteModule = (app, { store, now, attest }) => {
  const caller = (req: FastifyRequest) => ({ actor: actorOf(req), now: now() });

  app.get<{ Querystring: { name?: string } }>(
    "/v1/admin/tokens",
    { config: { access: ADMINS }, schema: { tags, summary: "API tokens with their role and principal (never the tokens)", querystring: { type: "object", additionalProperties: false, properties: { name: PRINCIPAL } } } },
    async (req) => listAdminTokens(store, req.query),
  );
  app.post<{ Body: { role: AdminRole; name?: string; label?: string; identity?: string } }>(
    "/v1/admin/tokens",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "create an API token; the answer holds it once",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["role"],
          properties: { role: { type: "string", enum: [...ADMIN_ROLES] }, name: PRINCIPAL, label: { type: "string", maxLength: 256 }, identity: { type: "string", maxLength: 128 } },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await createAdminToken(store, req.body, caller(req))),
  );
  app.delete<{ Params: { id: string } }>(
    "/v1/admin/tokens/:id",
    { config: { access: ADMINS }, schema: { tags, summary: "revoke one token", params: { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } } } },
    async (req, reply) => {
      await revokeAdminToken(store, req.params.id, caller(req));
      return reply.code(204).send();
    },
  );
  app.delete<{ Params: { name: string } }>(
    "/v1/admin/principals/:name",
    { config: { access: ADMINS }, schema: { tags, summary: "revoke every token of a principal", params: { type: "object", additionalProperties: false, required: ["name"], properties: { name: PRINCIPAL } } } },
    async (req) => ({ revoked: await revokePrincipal(store, req.params.name, caller(req)) }),
  );

  app.get(
    "/v1/status",
    { config: { access: READERS }, schema: { tags, summary: "the configuration checklist: each item ok, missing or failing, with the command that fixes it" } },
    async () => statusReport(store, { admission: attest.admission }),
  );

  app.get("/v1/config", { config: { access: ADMINS }, schema: { tags, summary: "run-time settings that are set (admit, default-class, admins.AREA)" } }, async () => listSettings(store));
  app.put<{ Params: { key: string }; Body: { value: string } }>(
    "/v1/config/:key",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "set one setting from its text (as `tpmtrust config set KEY VALUE`); answers every setting",
        params: KEY,
        body: { type: "object", additionalProperties: false, required: ["value"], properties: { value: { type: "string", minLength: 1, maxLength: 4096 } } },
      },
    },
    async (req) => setSetting(store, req.params.key, req.body.value, caller(req)),
  );
  app.delete<{ Params: { key: string } }>("/v1/config/:key", { config: { access: ADMINS }, schema: { tags, summary: "unset one setting; answers every setting", params: KEY } }, async (req) =>
    unsetSetting(store, req.params.key, caller(req)),
  );
};

export default admin;
