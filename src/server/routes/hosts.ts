/** Hosts: registration from the `tpmtrust agent identify` JSON, listing, removal, attestation timeline. */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS, READERS } from "../auth.js";
import { HOST_IDENTITY_SCHEMA } from "../../attest/identity.js";
import { addHost, changeHostClass, fleetSummary, getHost, HARDWARE_CLASS_PATTERN, HOST_NAME_PATTERN, hostTimeline, pageHosts, removeHost, setHostDisabled } from "../../attest/hosts.js";
import { TpmTrustError } from "../../errors.js";
import { counted, metrics } from "../metrics.js";
import { HOST_ORDERS, type Health, type HostOrder, type PolicyVersion } from "../../store/index.js";
import { decodeCursor, pageLimit, sendPage, type PageQuery } from "../paging.js";

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
      const r = await counted(metrics.hostAdditions, {}, () => addHost(store, req.body, { actor: actorOf(req), now: now() }));
      return reply.code(201).send({ ...r.host, ekTrust: r.ekTrust });
    },
  );

  app.get<{ Querystring: { hardwareClass?: string; health?: Health; q?: string; order?: HostOrder } & PageQuery }>(
    "/v1/hosts",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "hosts with health, last attestation, EKs and bound AKs, a page at a time",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            hardwareClass: { type: "string", maxLength: 128 },
            health: { type: "string", enum: ["unknown", "healthy", "unhealthy"] },
            q: { type: "string", maxLength: 128, description: "a substring of the host's name or hardware class (case-insensitive)" },
            order: { type: "string", enum: [...HOST_ORDERS], description: "sort key; a leading - reverses (default name)" },
          },
        },
      },
    },
    async (req, reply) => {
      const { hardwareClass, health, q, order = "name" } = req.query;
      const after = decodeCursor(req.query, order)?.after;
      // the sort key's type follows the order (a time is a number, the rest are strings): the database compares it as such
      const keyType = order.endsWith("lastAttestationAt") ? "number" : "string";
      if (after && (after.length !== 2 || typeof after[0] !== keyType || typeof after[1] !== "string")) throw new TpmTrustError("ERR_VALIDATION", "querystring/cursor is not a cursor this service issued");
      const p = await pageHosts(store, { hardwareClass, health, text: q, order, after: after as [string | number | null, string] | undefined, limit: pageLimit(req.query) });
      return sendPage(req, reply, { items: p.hosts, total: p.total, next: p.next ? { order, after: p.next } : undefined });
    },
  );

  app.get("/v1/hosts/summary", { config: { access: READERS }, schema: { tags, summary: "the fleet at a glance: hosts by health and the commonest reasons hosts are unhealthy" } }, async () => fleetSummary(store));

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

  app.get<{ Params: { name: string }; Querystring: PageQuery }>(
    "/v1/hosts/:name/attestations",
    { config: { access: READERS, paged: true }, schema: { tags, summary: "the host's attestation timeline, newest first (default page: 100)", params: NAME } },
    async (req, reply) => {
      const after = decodeCursor(req.query, "-at")?.after;
      if (after && (after.length !== 2 || typeof after[0] !== "number" || typeof after[1] !== "string")) throw new TpmTrustError("ERR_VALIDATION", "querystring/cursor is not a cursor this service issued");
      const p = await hostTimeline(store, req.params.name, { limit: pageLimit(req.query, 100), after: after as [number, string] | undefined });
      return sendPage(req, reply, { items: p.attestations, next: p.next ? { order: "-at", after: p.next } : undefined });
    },
  );
};
export default hosts;
