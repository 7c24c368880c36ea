/**
 * ACME (RFC 8555 subset) with device-attest-01, one directory per certificate template:
 * `/acme/{template}/directory`. Requests are JWS (application/jose+json) signed by the account key;
 * every answer carries a fresh Replay-Nonce, and errors are ACME problem documents
 * (`urn:ietf:params:acme:error:*`, with tpmtrust's `code`). See src/ca/acme.ts.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { RouteModule } from "../app.js";
import { httpStatusFor, isTpmTrustError, TpmTrustError } from "../../errors.js";
import {
  AcmeUrls,
  accountOrders,
  orderAuthzs,
  CHALLENGE_TYPE,
  IDENTIFIER_TYPE,
  accountView,
  acmeType,
  authzView,
  certificateChain,
  challengeView,
  finalize,
  loadAuthz,
  loadOrder,
  newAccount,
  newNonce,
  newOrder,
  orderView,
  respondChallenge,
  updateAccount,
  verifyRequest,
  type JwsBody,
} from "../../ca/acme.js";
import type { NonceLimit } from "../../ca/enroll.js";
import { certificatePem } from "../../encoding.js";
import { getTemplate, TEMPLATE_NAME_PATTERN } from "../../ca/templates.js";
import { counted, metrics } from "../metrics.js";

const tags = ["acme"];
const JWS = {
  type: "object",
  additionalProperties: false,
  required: ["protected", "payload", "signature"],
  properties: { protected: { type: "string", maxLength: 8192 }, payload: { type: "string", maxLength: 65536 }, signature: { type: "string", maxLength: 2048 } },
} as const;
const ID = { type: "object", additionalProperties: false, required: ["id"], properties: { id: { type: "string", format: "uuid" } } } as const;
const TEMPLATE = { type: "object", additionalProperties: false, required: ["template"], properties: { template: { type: "string", pattern: TEMPLATE_NAME_PATTERN } } } as const;

/** HTTP status of an ACME problem type (RFC 8555 §6.7). */
function statusOf(type: string): number {
  if (type === "unauthorized" || type === "orderNotReady") return 403;
  if (type === "rateLimited") return 429;
  if (type === "serverInternal") return 500;
  return 400;
}

const acme: RouteModule = (app, { store, now, publicUrl, attest }) => {
  const base = (req: FastifyRequest) => (publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/+$/, "");
  const urls = (req: FastifyRequest) => new AcmeUrls(base(req));

  app.addContentTypeParser("application/jose+json", { parseAs: "string", bodyLimit: 96 * 1024 }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new TpmTrustError("ERR_VALIDATION", "the body is not JSON"), undefined);
    }
  });
  const limit = (req: FastifyRequest): NonceLimit => ({ source: req.ip, limit: attest.nonceLimit, windowMs: attest.limitWindowMs });
  app.addHook("onSend", async (req, reply) => {
    // past the address's nonce limit an answer carries no Replay-Nonce (RFC 8555 §6.5: SHOULD)
    const fresh = reply.hasHeader("replay-nonce") ? undefined : await newNonce(store, now(), limit(req)).catch((e: unknown) => {
      if (isTpmTrustError(e) && e.code === "ERR_TOO_MANY_ATTEMPTS") return undefined;
      throw e;
    });
    if (fresh) reply.header("replay-nonce", fresh);
    reply.header("cache-control", "no-store");
  });
  app.setErrorHandler((err, req, reply) => {
    const e = isTpmTrustError(err) ? err : (err as { validation?: unknown }).validation ? new TpmTrustError("ERR_VALIDATION", (err as Error).message) : undefined;
    const httpStatus = (err as { statusCode?: number }).statusCode;
    const clientError = !e && typeof httpStatus === "number" && httpStatus >= 400 && httpStatus < 500;
    if (!e && !clientError) req.log.error({ err }, "unexpected ACME error");
    const type = e ? acmeType(e) : clientError ? "malformed" : "serverInternal";
    // the store or the audit log unavailable: 503 (RFC 8555 §6.7 leaves serverInternal's status open)
    const status = clientError ? httpStatus! : e && type === "serverInternal" && httpStatusFor(e.code) === 503 ? 503 : statusOf(type);
    if (typeof e?.details?.retryAfterSeconds === "number") reply.header("retry-after", String(e.details.retryAfterSeconds));
    return reply
      .code(status)
      .type("application/problem+json")
      .send({ type: `urn:ietf:params:acme:error:${type}`, detail: e?.message ?? (clientError ? (err as Error).message : "internal error"), status, code: e?.code ?? (clientError ? "ERR_VALIDATION" : "ERR_INTERNAL") });
  });

  /** Verifies the JWS of a POST to this exact URL. */
  const verified = (req: FastifyRequest, expect: "jwk" | "kid") => verifyRequest(store, req.body as JwsBody, { url: `${base(req)}${req.url}`, urls: urls(req), expect, now: now() });
  const post = { config: { access: "public" as const } };
  const json = (reply: FastifyReply) => reply.type("application/json");

  app.get<{ Params: { template: string } }>(
    "/acme/:template/directory",
    { ...post, schema: { tags, summary: "ACME directory of a certificate template (device-attest-01, permanent-identifier)", params: TEMPLATE } },
    async (req) => {
      const t = await getTemplate(store, req.params.template);
      const u = urls(req);
      return {
        newNonce: u.newNonce(),
        newAccount: u.newAccount(),
        newOrder: u.newOrder(t.name),
        meta: { externalAccountRequired: false, challengeTypes: [CHALLENGE_TYPE], identifierTypes: [IDENTIFIER_TYPE], template: t.name, keyAttestation: t.keyAttestation },
      };
    },
  );

  const nonce = async (req: FastifyRequest, reply: FastifyReply, status: number) => reply.header("replay-nonce", await newNonce(store, now(), limit(req))).code(status).send();
  app.head("/acme/new-nonce", { ...post, schema: { tags, summary: "a fresh anti-replay nonce (Replay-Nonce header)" } }, async (req, reply) => nonce(req, reply, 200));
  app.get("/acme/new-nonce", { ...post, schema: { tags, summary: "a fresh anti-replay nonce (Replay-Nonce header)", hide: true } }, async (req, reply) => nonce(req, reply, 204));

  app.post("/acme/new-account", { ...post, schema: { tags, summary: "create or find the account of the JWS key", body: JWS } }, async (req, reply) => {
    const { account, created } = await newAccount(store, await verified(req, "jwk"), { now: now() });
    return json(reply).code(created ? 201 : 200).header("location", urls(req).account(account.id)).send(accountView(account, urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/acct/:id", { ...post, schema: { tags, summary: "the account (POST-as-GET), contact update or deactivation", params: ID, body: JWS } }, async (req, reply) => {
    const a = await updateAccount(store, await verified(req, "kid"), req.params.id, { now: now() });
    return json(reply).send(accountView(a, urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/acct/:id/orders", { ...post, schema: { tags, summary: "the account's orders (POST-as-GET)", params: ID, body: JWS } }, async (req, reply) => {
    const r = await verified(req, "kid");
    if (r.account!.id !== req.params.id) throw new TpmTrustError("ERR_FORBIDDEN", "this is not the requester's account", { acme: "unauthorized" });
    return json(reply).send({ orders: (await accountOrders(store, req.params.id)).map((o) => urls(req).order(o.id)) });
  });

  app.post<{ Params: { template: string } }>("/acme/:template/new-order", { ...post, schema: { tags, summary: "a new order for one permanent-identifier (a registered host)", params: TEMPLATE, body: JWS } }, async (req, reply) => {
    const order = await newOrder(store, await verified(req, "kid"), req.params.template, { now: now() });
    return json(reply).code(201).header("location", urls(req).order(order.id)).send(orderView(order, await orderAuthzs(store, order.id), urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/order/:id", { ...post, schema: { tags, summary: "the order (POST-as-GET)", params: ID, body: JWS } }, async (req, reply) => {
    const r = await verified(req, "kid");
    const { order, authzs } = await loadOrder(store, req.params.id, r.account!, now());
    return json(reply).send(orderView(order, authzs, urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/order/:id/finalize", { ...post, schema: { tags, summary: "finalize with a CSR for the attested key", params: ID, body: JWS } }, async (req, reply) => {
    const order = await counted(metrics.certificateRequests, {}, async () => finalize(store, await verified(req, "kid"), req.params.id, { now: now(), publicUrl: base(req) }));
    if (order.status === "valid") metrics.certificatesIssued.inc({ purpose: "acme" });
    return json(reply).header("location", urls(req).order(order.id)).send(orderView(order, await orderAuthzs(store, order.id), urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/authz/:id", { ...post, schema: { tags, summary: "the authorization (POST-as-GET)", params: ID, body: JWS } }, async (req, reply) => {
    const { authz } = await loadAuthz(store, req.params.id, (await verified(req, "kid")).account!);
    return json(reply).send(authzView(authz, urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/chall/:id", { ...post, schema: { tags, summary: "answer device-attest-01 with {attObj}", params: ID, body: JWS } }, async (req, reply) => {
    const a = await respondChallenge(store, await verified(req, "kid"), req.params.id, { now: now() });
    return json(reply).header("link", `<${urls(req).authz(a.id)}>;rel="up"`).send(challengeView(a, urls(req)));
  });

  app.post<{ Params: { id: string } }>("/acme/cert/:id", { ...post, schema: { tags, summary: "download the certificate chain (POST-as-GET, PEM)", params: ID, body: JWS } }, async (req, reply) => {
    const chain = await certificateChain(store, await verified(req, "kid"), req.params.id);
    return reply.type("application/pem-certificate-chain").send(certificatePem(...chain));
  });
};
export default acme;
