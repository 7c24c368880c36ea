/** The attestation token signing keys (JWKS), for relying parties that verify tokens offline. */
import type { RouteModule } from "../app.js";
import { jwks } from "../../tokens/tokens.js";

const JWK = {
  type: "object",
  additionalProperties: false,
  properties: { kty: { type: "string" }, crv: { type: "string" }, x: { type: "string" }, y: { type: "string" }, kid: { type: "string" }, alg: { type: "string" }, use: { type: "string" } },
} as const;

const jwksRoute: RouteModule = (app, { store, now, attest: cfg }) => {
  app.get(
    "/.well-known/jwks.json",
    {
      config: { access: "public" },
      schema: {
        tags: ["attestation"],
        summary: "token signing keys (ES256): the current key and retired keys whose tokens may still be valid",
        response: { 200: { type: "object", additionalProperties: false, required: ["keys"], properties: { keys: { type: "array", items: JWK } } } },
      },
    },
    async (_req, reply) => {
      reply.header("cache-control", "public, max-age=60");
      return jwks(store, cfg, now());
    },
  );
};
export default jwksRoute;
