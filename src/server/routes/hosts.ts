/** Hosts: registration from the `tpmtrust agent identify` JSON, listing, removal, attestation timeline. */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { HOST_IDENTITY_SCHEMA } from "../../attest/identity.js";
import { changeHostClass, getHost, HARDWARE_CLASS_PATTERN, HOST_NAME_PATTERN, listHosts, registerHost, removeHost, setHostDisabled } from "../../attest/hosts.js";
import { TpmTrustError } from "../../errors.js";
import { counted, metrics } from "../metrics.js";
import type { Health, PolicyVersion } from "../../store/index.js";

const tags = ["hosts"];
const NAME = { type: "object", additionalProperties: false, required: ["name"], properties: { name: { type: "string", pattern: HOST_NAME_PATTERN } } } as const;

const hosts: RouteModule = (app, { store, now, monitor }) => {
  app.post<{ Body: { name: string; hardwareClass: string; policyVersion?: PolicyVersion; allowlistEk?: boolean; identity: unknown } }>(
    "/v1/hosts",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "register a host (Add-HgsAttestationTpmHost): v2 requires a trusted EK certificate, v1 also accepts an allow-listed EK",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "hardwareClass", "identity"],
          properties: {
            name: { type: "string", pattern: HOST_NAME_PATTERN },
            hardwareClass: { type: "string", pattern: HARDWARE_CLASS_PATTERN },
            policyVersion: { type: "string", enum: ["v2", "v1"] },
            allowlistEk: { type: "boolean", description: "v1 only (HGS -PolicyVersion v1): allow-list the EK hash of a TPM without a trusted EK certificate in the same step, audited" },
            identity: HOST_IDENTITY_SCHEMA,
          },
        },
      },
    },
    async (req, reply) => {
      const r = await counted(metrics.registrations, { kind: "host" }, () => registerHost(store, req.body, { actor: actorOf(req), now: now() }));
      return reply.code(201).send({ ...r.host, ekTrust: r.ekTrust });
    },
  );

  app.get<{ Querystring: { hardwareClass?: string; health?: Health } }>(
    "/v1/hosts",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "hosts with health, last attestation, EKs and bound AKs",
        querystring: { type: "object", additionalProperties: false, properties: { hardwareClass: { type: "string", maxLength: 128 }, health: { type: "string", enum: ["unknown", "healthy", "unhealthy"] } } },
      },
    },
    async (req) => listHosts(store, req.query),
  );

  app.get<{ Params: { name: string } }>("/v1/hosts/:name", { config: { access: READERS }, schema: { tags, summary: "one host", params: NAME } }, async (req) => getHost(store, req.params.name));

  app.patch<{ Params: { name: string }; Body: { hardwareClass: string } }>(
    "/v1/hosts/:name",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "move a host to another hardware class; its EKs and bound AKs stay",
        params: NAME,
        body: { type: "object", additionalProperties: false, required: ["hardwareClass"], properties: { hardwareClass: { type: "string", pattern: HARDWARE_CLASS_PATTERN } } },
      },
    },
    async (req) => changeHostClass(store, req.params.name, req.body.hardwareClass, { actor: actorOf(req), now: now() }),
  );

  app.delete<{ Params: { name: string } }>("/v1/hosts/:name", { config: { access: ADMINS }, schema: { tags, summary: "remove a host with its EKs, AKs and history", params: NAME } }, async (req, reply) => {
    await removeHost(store, req.params.name, { actor: actorOf(req), now: now() });
    return reply.code(204).send();
  });

  for (const [verb, disabled] of [["disable", true], ["enable", false]] as const) {
    app.post<{ Params: { name: string } }>(
      `/v1/hosts/:name/${verb}`,
      {
        config: { access: ADMINS },
        schema: { tags, summary: disabled ? "disable a host: unhealthy at once, tokens revoked; no verdict, token, activation, certificate or key until enabled" : "enable a disabled host (it attests back to health)", params: NAME },
      },
      async (req) => {
        if (await setHostDisabled(store, req.params.name, disabled, { actor: actorOf(req), now: now() })) monitor.kick();
        return getHost(store, req.params.name);
      },
    );
  }

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>(
    "/v1/hosts/:name/attestations",
    {
      config: { access: READERS },
      schema: { tags, summary: "the host's attestation timeline, newest first", params: NAME, querystring: { type: "object", additionalProperties: false, properties: { limit: { type: "string", pattern: "^[1-9][0-9]{0,3}$" } } } },
    },
    async (req) => {
      if (!(await store.hosts.get(req.params.name))) throw new TpmTrustError("ERR_NOT_FOUND", `no host named ${JSON.stringify(req.params.name)}`);
      const list = await store.attestations.listForHost(req.params.name, { limit: req.query.limit ? Number(req.query.limit) : 100 });
      return list.map((a) => ({ id: a.id, at: a.at, verdict: a.verdict, code: a.reasonCode, akNameHex: a.akName?.toString("hex") ?? null, pcrDigestHex: a.pcrDigest?.toString("hex") ?? null, diff: a.diff ?? null }));
    },
  );
};
export default hosts;
