/** Webhook subscriptions to host health changes (admin), and their delivery records. */
import type { RouteModule } from "../app.js";
import { actorOf, ADMINS } from "../auth.js";
import { addWebhook, listWebhooks, removeWebhook, WEBHOOK_EVENTS, webhookDeliveries } from "../../attest/webhooks.js";
import { pageList, type PageQuery } from "../paging.js";

const tags = ["webhooks"];
const ID = { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } } as const;

const webhooks: RouteModule = (app, { store, now }) => {
  app.post<{ Body: { url: string; secret: string; events?: string[] } }>(
    "/v1/webhooks",
    {
      config: { access: ADMINS },
      schema: {
        tags,
        summary: "subscribe a URL; deliveries carry X-Tpmtrust-Signature: sha256=<hex HMAC-SHA256(secret, body)>",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["url", "secret"],
          properties: {
            url: { type: "string", minLength: 8, maxLength: 2048 },
            secret: { type: "string", minLength: 16, maxLength: 256 },
            events: { type: "array", uniqueItems: true, maxItems: WEBHOOK_EVENTS.length, items: { type: "string", enum: [...WEBHOOK_EVENTS] }, description: "omit for every event" },
          },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await addWebhook(store, actorOf(req), now(), req.body)),
  );

  app.get<{ Querystring: PageQuery }>("/v1/webhooks", { config: { access: ADMINS, paged: true }, schema: { tags, summary: "subscriptions (secrets are never shown)" } }, async (req, reply) => pageList(req, reply, await listWebhooks(store), (x) => x.id));

  app.delete<{ Params: { id: string } }>("/v1/webhooks/:id", { config: { access: ADMINS }, schema: { tags, summary: "unsubscribe (pending deliveries are dropped)", params: ID } }, async (req, reply) => {
    await removeWebhook(store, actorOf(req), now(), req.params.id);
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string }; Querystring: PageQuery }>(
    "/v1/webhooks/:id/deliveries",
    { config: { access: ADMINS, paged: true }, schema: { tags, summary: "delivery records, newest first (the newest 10,000; default page: 100)", params: ID } },
    async (req, reply) => pageList(req, reply, await webhookDeliveries(store, req.params.id, 10_000), (x) => x.id, 100),
  );
};
export default webhooks;
