/**
 * Provisioning administration under /v1/provisioning (problem+json errors like the rest of the
 * admin API): ID scope, linked hubs, individual enrollments, enrollment groups, device
 * registration records. The DPS device API itself is registered from here, in its own scope.
 */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { ALLOCATION_SCHEMA } from "../../provisioning/allocation.js";
import { base64Field } from "../../provisioning/device-auth.js";
import { addEnrollment, DEVICE_ID_PATTERN, getEnrollment, listEnrollments, REGISTRATION_ID_PATTERN, removeEnrollment, updateEnrollment } from "../../provisioning/enrollments.js";
import { REPROVISION_POLICIES } from "../../provisioning/settings.js";
import { addGroup, getGroup, GROUP_NAME_PATTERN, listGroups, removeGroup, updateGroup } from "../../provisioning/groups.js";
import { HOSTNAME_PATTERN, HUB_NAME_PATTERN, listHubs, MAX_WEIGHT, putHub, removeHub } from "../../provisioning/hubs.js";
import { getRegistration, listRegistrations, removeRegistration } from "../../provisioning/registrations.js";
import { ensureIdScope, ID_SCOPE_PATTERN, setIdScope } from "../../provisioning/scope.js";
import { TWIN_SCHEMA } from "../../provisioning/twin.js";
import type { ReprovisionPolicy } from "../../store/index.js";
import { dpsRoutes } from "./dps.js";
import { pageList, type PageQuery } from "../paging.js";

const tags = ["provisioning"];
const BASE64 = { type: "string", minLength: 4, maxLength: 65536, pattern: "^[A-Za-z0-9+/]*={0,2}$" } as const;
const param = (name: string, pattern: string) => ({ type: "object", additionalProperties: false, required: [name], properties: { [name]: { type: "string", pattern } } }) as const;
const REG_ID = param("registrationId", REGISTRATION_ID_PATTERN);
const GROUP = param("name", GROUP_NAME_PATTERN);
const HUB = param("name", HUB_NAME_PATTERN);

const ENROLLMENT_FIELDS = {
  endorsementKey: { ...BASE64, description: "the EK as TPM2B_PUBLIC (DPS's format; a bare TPMT_PUBLIC is accepted), base64" },
  deviceId: { anyOf: [{ type: "string", pattern: DEVICE_ID_PATTERN }, { type: "null" }] },
  initialTwin: { anyOf: [TWIN_SCHEMA, { type: "null" }] },
  allocation: ALLOCATION_SCHEMA,
  reprovisionPolicy: { type: "string", enum: [...REPROVISION_POLICIES] },
  enabled: { type: "boolean" },
} as const;
const GROUP_FIELDS = {
  caCertificates: { type: "array", minItems: 1, maxItems: 16, items: { ...BASE64, description: "DER or PEM, base64" } },
  intermediateCertificates: { type: "array", maxItems: 16, items: BASE64 },
  initialTwin: ENROLLMENT_FIELDS.initialTwin,
  allocation: ALLOCATION_SCHEMA,
  reprovisionPolicy: ENROLLMENT_FIELDS.reprovisionPolicy,
  enabled: { type: "boolean" },
} as const;

interface EnrollmentBody {
  registrationId: string;
  endorsementKey: string;
  deviceId?: string | null;
  initialTwin?: unknown;
  allocation?: unknown;
  reprovisionPolicy?: ReprovisionPolicy;
  enabled?: boolean;
}
interface GroupBody {
  name: string;
  caCertificates: string[];
  intermediateCertificates?: string[];
  initialTwin?: unknown;
  allocation?: unknown;
  reprovisionPolicy?: ReprovisionPolicy;
  enabled?: boolean;
}

const b64 = (v: string, what: string) => base64Field(v, what);
const b64s = (v: string[] | undefined, what: string) => v?.map((x, i) => b64(x, `${what}[${i}]`));

const provisioning: RouteModule = async (app, deps) => {
  const { store, now } = deps;
  const by = (req: Parameters<typeof actorOf>[0]) => ({ actor: actorOf(req), now: now() });

  // --- ID scope
  app.get("/v1/provisioning/settings", { config: { access: READERS }, schema: { tags, summary: "the ID scope devices register under" } }, async () => ({
    idScope: await ensureIdScope(store, now()),
  }));
  app.put<{ Body: { idScope: string } }>(
    "/v1/provisioning/settings",
    {
      config: { access: ADMINS },
      schema: { tags, summary: "set the ID scope (e.g. the one devices carry from Azure DPS)", body: { type: "object", additionalProperties: false, required: ["idScope"], properties: { idScope: { type: "string", pattern: ID_SCOPE_PATTERN } } } },
    },
    async (req) => ({ idScope: await setIdScope(store, req.body.idScope, by(req)) }),
  );

  // --- linked hubs
  app.get<{ Querystring: PageQuery }>("/v1/provisioning/hubs", { config: { access: READERS, paged: true }, schema: { tags, summary: "linked hubs" } }, async (req, reply) => pageList(req, reply, await listHubs(store), (x) => x.name));
  app.put<{ Params: { name: string }; Body: { hostname: string; weight?: number } }>(
    "/v1/provisioning/hubs/:name",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "add a linked hub or change its hostname and allocation weight",
        params: HUB,
        body: { type: "object", additionalProperties: false, required: ["hostname"], properties: { hostname: { type: "string", pattern: HOSTNAME_PATTERN }, weight: { type: "integer", minimum: 0, maximum: MAX_WEIGHT } } },
      },
    },
    async (req) => putHub(store, { name: req.params.name, hostname: req.body.hostname, ...(req.body.weight !== undefined ? { weight: req.body.weight } : {}) }, by(req)),
  );
  app.delete<{ Params: { name: string } }>("/v1/provisioning/hubs/:name", { config: { access: ADMINS }, schema: { tags, summary: "remove a linked hub", params: HUB } }, async (req, reply) => {
    await removeHub(store, req.params.name, by(req));
    return reply.code(204).send();
  });

  // --- individual enrollments
  app.post<{ Body: EnrollmentBody }>(
    "/v1/provisioning/enrollments",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "add an individual enrollment (a TPM by its EK)",
        body: { type: "object", additionalProperties: false, required: ["registrationId", "endorsementKey"], properties: { registrationId: { type: "string", pattern: REGISTRATION_ID_PATTERN }, ...ENROLLMENT_FIELDS } },
      },
    },
    async (req, reply) => {
      const { endorsementKey, ...rest } = req.body;
      return reply.code(201).send(await addEnrollment(store, { ...rest, endorsementKey: b64(endorsementKey, "endorsementKey") }, by(req)));
    },
  );
  app.get<{ Querystring: PageQuery }>("/v1/provisioning/enrollments", { config: { access: READERS, paged: true }, schema: { tags, summary: "individual enrollments" } }, async (req, reply) => pageList(req, reply, await listEnrollments(store), (x) => x.registrationId));
  app.get<{ Params: { registrationId: string } }>("/v1/provisioning/enrollments/:registrationId", { config: { access: READERS }, schema: { tags, summary: "one enrollment", params: REG_ID } }, async (req) =>
    getEnrollment(store, req.params.registrationId),
  );
  app.patch<{ Params: { registrationId: string }; Body: Partial<Omit<EnrollmentBody, "registrationId">> }>(
    "/v1/provisioning/enrollments/:registrationId",
    { config: { access: ADMINS }, schema: { tags, summary: "change an enrollment (given fields only)", params: REG_ID, body: { type: "object", additionalProperties: false, minProperties: 1, properties: ENROLLMENT_FIELDS } } },
    async (req) => {
      const { endorsementKey, ...rest } = req.body;
      return updateEnrollment(store, req.params.registrationId, { ...rest, ...(endorsementKey !== undefined ? { endorsementKey: b64(endorsementKey, "endorsementKey") } : {}) }, by(req));
    },
  );
  app.delete<{ Params: { registrationId: string } }>(
    "/v1/provisioning/enrollments/:registrationId",
    { config: { access: ADMINS }, schema: { tags, summary: "remove an enrollment and its registration record", params: REG_ID } },
    async (req, reply) => {
      await removeEnrollment(store, req.params.registrationId, by(req));
      return reply.code(204).send();
    },
  );

  // --- enrollment groups (by EK certificate CA)
  app.post<{ Body: GroupBody }>(
    "/v1/provisioning/enrollment-groups",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "add an enrollment group: TPMs whose EK certificate chains to one of its CAs",
        body: { type: "object", additionalProperties: false, required: ["name", "caCertificates"], properties: { name: { type: "string", pattern: GROUP_NAME_PATTERN }, ...GROUP_FIELDS } },
      },
    },
    async (req, reply) => {
      const { caCertificates, intermediateCertificates, ...rest } = req.body;
      const input = { ...rest, caCertificates: b64s(caCertificates, "caCertificates")!, intermediateCertificates: b64s(intermediateCertificates, "intermediateCertificates") };
      return reply.code(201).send(await addGroup(store, input, by(req)));
    },
  );
  app.get<{ Querystring: PageQuery }>("/v1/provisioning/enrollment-groups", { config: { access: READERS, paged: true }, schema: { tags, summary: "enrollment groups" } }, async (req, reply) => pageList(req, reply, await listGroups(store), (x) => x.name));
  app.get<{ Params: { name: string } }>("/v1/provisioning/enrollment-groups/:name", { config: { access: READERS }, schema: { tags, summary: "one enrollment group", params: GROUP } }, async (req) =>
    getGroup(store, req.params.name),
  );
  app.patch<{ Params: { name: string }; Body: Partial<Omit<GroupBody, "name">> }>(
    "/v1/provisioning/enrollment-groups/:name",
    { config: { access: ADMINS }, schema: { tags, summary: "change an enrollment group (given fields only)", params: GROUP, body: { type: "object", additionalProperties: false, minProperties: 1, properties: GROUP_FIELDS } } },
    async (req) => {
      const { caCertificates, intermediateCertificates, ...rest } = req.body;
      const patch = {
        ...rest,
        ...(caCertificates ? { caCertificates: b64s(caCertificates, "caCertificates") } : {}),
        ...(intermediateCertificates ? { intermediateCertificates: b64s(intermediateCertificates, "intermediateCertificates") } : {}),
      };
      return updateGroup(store, req.params.name, patch, by(req));
    },
  );
  app.delete<{ Params: { name: string } }>(
    "/v1/provisioning/enrollment-groups/:name",
    { config: { access: ADMINS }, schema: { tags, summary: "remove an enrollment group and its devices' registration records", params: GROUP } },
    async (req, reply) => {
      await removeGroup(store, req.params.name, by(req));
      return reply.code(204).send();
    },
  );

  // --- device registration records
  app.get<{ Querystring: { group?: string } & PageQuery }>(
    "/v1/provisioning/registrations",
    {
      config: { access: READERS, paged: true },
      schema: { tags, summary: "device registration records", querystring: { type: "object", additionalProperties: false, properties: { group: { type: "string", pattern: GROUP_NAME_PATTERN } } } },
    },
    async (req, reply) => pageList(req, reply, await listRegistrations(store, { group: req.query.group }), (x) => x.registrationId),
  );
  app.get<{ Params: { registrationId: string } }>("/v1/provisioning/registrations/:registrationId", { config: { access: READERS }, schema: { tags, summary: "one registration record", params: REG_ID } }, async (req) =>
    getRegistration(store, req.params.registrationId),
  );
  app.delete<{ Params: { registrationId: string } }>(
    "/v1/provisioning/registrations/:registrationId",
    { config: { access: ADMINS }, schema: { tags, summary: "delete a device registration record (its next registration is an initial assignment)", params: REG_ID } },
    async (req, reply) => {
      await removeRegistration(store, req.params.registrationId, by(req));
      return reply.code(204).send();
    },
  );

  await app.register(async (scope) => dpsRoutes(scope, deps));
};
export default provisioning;
