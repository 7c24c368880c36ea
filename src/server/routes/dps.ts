/**
 * The Azure DPS device registration API (TPM attestation, api-version 2021-06-01 and earlier),
 * public: the proof is the TPM. Errors are shaped as DPS shapes them —
 * `{errorCode, trackingId, message, timestampUtc}` with DPS-style numeric codes — not problem+json.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { isTpmTrustError, type ErrorCode } from "../../errors.js";
import { DEFAULT_PROVISIONING_CONFIG, type ProvisioningDeps } from "../../provisioning/config.js";
import { DeviceKeyWrapper } from "../../provisioning/device-keys.js";
import { REGISTRATION_ID_PATTERN } from "../../provisioning/enrollments.js";
import { register, type DeviceRegistrationBody } from "../../provisioning/register.js";
import { ensureIdScope } from "../../provisioning/scope.js";
import { operationStatus, registrationStatus } from "../../provisioning/status.js";
import type { RouteDeps } from "../app.js";
import { counted, metrics } from "../metrics.js";

const tags = ["device provisioning (DPS)"];

/** DPS-style numeric codes: HTTP status × 1000 + reason. */
const DPS_ERROR = {
  badRequest: 400004,
  unauthorized: 401002,
  disabled: 403001,
  notFound: 404201,
  conflict: 409001,
  throttled: 429001,
  internal: 500000,
} as const;

const BAD_REQUEST = new Set<ErrorCode>(["ERR_USAGE", "ERR_VALIDATION", "ERR_PARSE_CERT", "ERR_KEY_NOT_RESTRICTED", "ERR_KEY_DECRYPT", "ERR_KEY_NOT_FIXED_TPM", "ERR_KEY_NOT_FIXED_PARENT", "ERR_KEY_TOO_WEAK"]);
const UNAUTHORIZED = new Set<ErrorCode>(["ERR_SAS_INVALID", "ERR_SAS_EXPIRED", "ERR_UNAUTHENTICATED", "ERR_KEY_MISMATCH", "ERR_EK_NOT_TRUSTED", "ERR_CHAIN_UNTRUSTED", "ERR_CHAIN_INVALID", "ERR_CERT_EXPIRED", "ERR_CERT_EKU"]);

/** HTTP status and DPS errorCode of a tpmtrust error code. */
function dpsStatus(code: ErrorCode): { status: number; errorCode: number } {
  if (code.startsWith("ERR_PARSE_") || BAD_REQUEST.has(code)) return { status: 400, errorCode: DPS_ERROR.badRequest };
  if (UNAUTHORIZED.has(code)) return { status: 401, errorCode: DPS_ERROR.unauthorized };
  switch (code) {
    case "ERR_DISABLED":
    case "ERR_EK_REVOKED":
    case "ERR_FORBIDDEN":
      return { status: 403, errorCode: DPS_ERROR.disabled };
    case "ERR_NOT_FOUND":
      return { status: 404, errorCode: DPS_ERROR.notFound };
    case "ERR_CONFLICT":
      return { status: 409, errorCode: DPS_ERROR.conflict };
    case "ERR_TOO_MANY_ATTEMPTS":
      return { status: 429, errorCode: DPS_ERROR.throttled };
    default:
      return { status: 500, errorCode: DPS_ERROR.internal };
  }
}

function sendDpsError(reply: FastifyReply, status: number, errorCode: number, message: string): FastifyReply {
  return reply.code(status).type("application/json; charset=utf-8").send({ errorCode, trackingId: randomUUID(), message, timestampUtc: new Date().toISOString() });
}

function dpsErrorHandler(d: ProvisioningDeps) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (isTpmTrustError(err)) {
      const { status, errorCode } = dpsStatus(err.code);
      if (status === 429) reply.header("retry-after", String(Math.ceil(d.config.limitWindowMs / 1000)));
      if (status >= 500) {
        req.log.error({ code: err.code, err: err.message }, "device registration failed");
        return sendDpsError(reply, status, errorCode, "internal error");
      }
      return sendDpsError(reply, status, errorCode, err.message);
    }
    const fe = err as FastifyError;
    if (fe.validation || (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500)) {
      const status = fe.validation ? 400 : fe.statusCode!;
      return sendDpsError(reply, status, status * 1000 + 4, fe.message);
    }
    req.log.error({ err }, "unexpected error in the device registration API");
    return sendDpsError(reply, 500, DPS_ERROR.internal, "internal error");
  };
}

const BASE64_FIELD = { type: "string", minLength: 4, maxLength: 8192, pattern: "^[A-Za-z0-9+/]*={0,2}$" } as const;
const QUERY = { type: "object", additionalProperties: false, required: ["api-version"], properties: { "api-version": { type: "string", pattern: "^20[0-9]{2}-[0-9]{2}-[0-9]{2}(-preview)?$" } } } as const;
const ID_PARAMS = {
  idScope: { type: "string", pattern: "^[A-Za-z0-9]{1,64}$" },
  registrationId: { type: "string", pattern: REGISTRATION_ID_PATTERN },
} as const;
const REGISTRATION_BODY = {
  type: "object",
  additionalProperties: false,
  required: ["registrationId"],
  properties: {
    registrationId: { type: "string", maxLength: 128 },
    tpm: {
      type: "object",
      additionalProperties: false,
      required: ["endorsementKey", "storageRootKey"],
      properties: {
        endorsementKey: BASE64_FIELD,
        storageRootKey: BASE64_FIELD,
        endorsementKeyCertificate: { ...BASE64_FIELD, maxLength: 16384, description: "tpmtrust extension for enrollment groups: the EK certificate, base64 DER" },
      },
    },
    payload: { description: "custom data for the custom allocation webhook" },
  },
} as const;

type Params = { idScope: string; registrationId: string };

/** The device API, in its own scope: DPS error shapes, and JSON bodies that may be empty (status lookups). */
export async function dpsRoutes(app: FastifyInstance, deps: RouteDeps): Promise<void> {
  const masterKey = deps.provisioning?.masterKey;
  if (!masterKey) app.log.warn("no provisioning master key configured: device keys issued now are lost on restart");
  const d: ProvisioningDeps = {
    store: deps.store,
    now: deps.now,
    keys: new DeviceKeyWrapper(masterKey ?? randomBytes(32)),
    config: { ...DEFAULT_PROVISIONING_CONFIG, ...deps.provisioning?.config },
  };
  await ensureIdScope(deps.store, deps.now());

  app.setErrorHandler(dpsErrorHandler(d));
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => (body === "" ? done(null, undefined) : json(req, body as string, done)));

  const count = <T>(operation: string, fn: () => Promise<T>) => counted(metrics.provisioning, { operation }, fn);

  app.put<{ Params: Params; Body: DeviceRegistrationBody; Querystring: { "api-version": string } }>(
    "/:idScope/registrations/:registrationId/register",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "register a device (DPS): without Authorization 401 {authenticationKey, keyName}; with a SAS token 202 {operationId, status}",
        params: { type: "object", additionalProperties: false, required: ["idScope", "registrationId"], properties: ID_PARAMS },
        querystring: QUERY,
        body: REGISTRATION_BODY,
      },
    },
    async (req, reply) => {
      const authorization = req.headers.authorization;
      const r = await count(authorization === undefined ? "challenge" : "register", () =>
        register(d, { idScope: req.params.idScope, registrationId: req.params.registrationId, body: req.body, source: req.ip, ...(authorization !== undefined ? { authorization } : {}) }),
      );
      if (r.kind === "challenge") return reply.code(401).send({ authenticationKey: r.authenticationKey, keyName: r.keyName });
      return reply.code(202).header("retry-after", String(d.config.retryAfterSeconds)).send({ operationId: r.operationId, status: r.status });
    },
  );

  app.get<{ Params: Params & { operationId: string }; Querystring: { "api-version": string } }>(
    "/:idScope/registrations/:registrationId/operations/:operationId",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "operation status lookup (DPS): {operationId, status, registrationState}",
        params: {
          type: "object",
          additionalProperties: false,
          required: ["idScope", "registrationId", "operationId"],
          properties: { ...ID_PARAMS, operationId: { type: "string", pattern: "^[A-Za-z0-9._-]{1,128}$" } },
        },
        querystring: QUERY,
      },
    },
    async (req) =>
      count("operation", () =>
        operationStatus(d, { idScope: req.params.idScope, registrationId: req.params.registrationId, operationId: req.params.operationId, authorization: req.headers.authorization, source: req.ip }),
      ),
  );

  app.post<{ Params: Params; Querystring: { "api-version": string } }>(
    "/:idScope/registrations/:registrationId",
    {
      config: { access: "public" },
      schema: {
        tags,
        summary: "device registration status lookup (DPS): the registrationState",
        params: { type: "object", additionalProperties: false, required: ["idScope", "registrationId"], properties: ID_PARAMS },
        querystring: QUERY,
        body: { anyOf: [{ type: "null" }, REGISTRATION_BODY] },
      },
    },
    async (req) => count("status", () => registrationStatus(d, { idScope: req.params.idScope, registrationId: req.params.registrationId, authorization: req.headers.authorization, source: req.ip })),
  );
}
