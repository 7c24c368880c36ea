/** Policies (baselines, accepted software, code integrity, Secure Boot): admin writes, admin/auditor reads. */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { addPolicy, getPolicy, listPolicies, POLICY_KINDS, previewPolicy, removePolicy } from "../../attest/policies.js";
import { HARDWARE_CLASS_PATTERN } from "../../attest/hosts.js";
import { NAME } from "../../policy/schema.js";
import type { Policy, PolicyVersion } from "../../store/index.js";
import { pageList, type PageQuery } from "../paging.js";

const tags = ["policies"];
const ID = { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } } as const;

function policyView(p: Policy, withDocument = true) {
  return {
    id: p.id,
    kind: p.kind,
    name: p.name,
    version: p.version,
    hardwareClass: p.hardwareClass,
    policyVersion: p.policyVersion,
    createdAt: p.createdAt,
    createdBy: p.createdBy,
    disabledAt: p.disabledAt,
    ...(withDocument ? { document: p.document } : {}),
  };
}

const NEW_POLICY = {
  type: "object",
  additionalProperties: false,
  required: ["kind", "name", "document"],
  properties: {
    kind: { type: "string", enum: Object.keys(POLICY_KINDS) },
    name: { type: "string", pattern: NAME.pattern },
    hardwareClass: { type: "string", pattern: HARDWARE_CLASS_PATTERN, description: "omit for a policy of every hardware class" },
    policyVersion: { type: "string", enum: ["v2", "v1"] },
    document: { type: "object", description: "the policy document, e.g. from tpmtrust policy baseline create" },
  },
} as const;
type NewPolicyBody = { kind: string; name: string; hardwareClass?: string; policyVersion?: PolicyVersion; document: unknown };

const policies: RouteModule = (app, { store, now }) => {
  app.post<{ Body: NewPolicyBody }>(
    "/v1/policies",
    { config: { access: ADMINS }, bodyLimit: 4 * 1024 * 1024, schema: { tags, summary: "store a new version of a policy (the document is validated against its kind's schema)", body: NEW_POLICY } },
    async (req, reply) => reply.code(201).send(policyView(await addPolicy(store, actorOf(req), now(), req.body))),
  );

  app.post<{ Body: NewPolicyBody }>(
    "/v1/policies/preview",
    {
      config: { access: READERS },
      bodyLimit: 4 * 1024 * 1024,
      schema: { tags, summary: "judge the hosts a policy would apply to on their last evidence, with it in place: which would turn unhealthy; stores nothing", body: NEW_POLICY },
    },
    async (req) => previewPolicy(store, req.body),
  );

  app.get<{ Querystring: { kind?: string; hardwareClass?: string; all?: "true" | "false" } & PageQuery }>(
    "/v1/policies",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "enabled policies, newest version of each (all=true: every version, disabled ones too)",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { kind: { type: "string", enum: Object.keys(POLICY_KINDS) }, hardwareClass: { type: "string", pattern: HARDWARE_CLASS_PATTERN }, all: { type: "string", enum: ["true", "false"] } },
        },
      },
    },
    async (req, reply) => {
      const list = await listPolicies(store, { kind: req.query.kind, hardwareClass: req.query.hardwareClass, all: req.query.all === "true" });
      return pageList(req, reply, list.map((p) => policyView(p, false)), (x) => x.id);
    },
  );

  app.get<{ Params: { id: string } }>("/v1/policies/:id", { config: { access: READERS }, schema: { tags, summary: "one policy version with its document", params: ID } }, async (req) => {
    return policyView(await getPolicy(store, req.params.id));
  });

  app.delete<{ Params: { id: string } }>(
    "/v1/policies/:id",
    { config: { access: ADMINS }, schema: { tags, summary: "disable the policy (every version of its kind and name; kept for the record)", params: ID } },
    async (req, reply) => {
      await removePolicy(store, actorOf(req), now(), req.params.id);
      return reply.code(204).send();
    },
  );
};
export default policies;
