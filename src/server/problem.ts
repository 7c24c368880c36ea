/** RFC 7807 problem+json for every error the API returns, keyed by tpmtrust's stable error codes. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERROR_CODES, type ErrorCode, isTpmTrustError } from "../errors.js";

/** HTTP status per error code: 400 unusable input, 401/403 auth, 404/409 state, 422 evidence rejected, 429, 5xx (503: try again). */
export function statusFor(code: ErrorCode): number {
  if (code.startsWith("ERR_PARSE_") || code === "ERR_USAGE" || code === "ERR_VALIDATION") return 400;
  switch (code) {
    case "ERR_UNAUTHENTICATED":
    case "ERR_SAS_INVALID":
    case "ERR_SAS_EXPIRED":
    case "ERR_TOKEN_INVALID":
    case "ERR_TOKEN_EXPIRED":
    case "ERR_TOKEN_REVOKED":
      return 401;
    case "ERR_FORBIDDEN":
    case "ERR_DISABLED":
    case "ERR_HOST_UNHEALTHY":
      return 403;
    case "ERR_NOT_FOUND":
      return 404;
    case "ERR_CONFLICT":
      return 409;
    case "ERR_TOO_MANY_ATTEMPTS":
      return 429;
    case "ERR_IO":
    case "ERR_INTERNAL":
    case "ERR_TPM_RC":
    case "ERR_TPM_TRANSPORT":
      return 500;
    case "ERR_STORE_BUSY":
      return 503;
    default:
      return 422;
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  details?: Record<string, unknown>;
}

export function problem(code: ErrorCode, detail: string, details?: Record<string, unknown>, instance?: string): Problem {
  return {
    type: `urn:tpmtrust:error:${code}`,
    title: ERROR_CODES[code],
    status: statusFor(code),
    code,
    detail,
    ...(instance ? { instance } : {}),
    ...(details ? { details } : {}),
  };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type("application/problem+json").send(p);
}

/** Fastify error handler: typed errors keep their code; schema and body errors are ERR_VALIDATION; nothing else leaks. */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (isTpmTrustError(err)) {
    const p = problem(err.code, err.message, err.details, req.url);
    if (p.status >= 500) req.log.error({ code: err.code, err: err.message }, "request failed");
    if (p.status === 429 && typeof err.details?.retryAfterSeconds === "number") reply.header("retry-after", String(err.details.retryAfterSeconds));
    return sendProblem(reply, p);
  }
  const fe = err as FastifyError;
  if (fe.validation) return sendProblem(reply, problem("ERR_VALIDATION", `${fe.validationContext ?? "request"} ${fe.message.replace(/^(body|querystring|params|headers)\s*/, "")}`, undefined, req.url));
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    // malformed JSON, wrong content type, body too large, …
    const code: ErrorCode = fe.statusCode === 404 ? "ERR_NOT_FOUND" : fe.statusCode === 429 ? "ERR_TOO_MANY_ATTEMPTS" : "ERR_VALIDATION";
    return sendProblem(reply, { ...problem(code, fe.message, undefined, req.url), status: fe.statusCode });
  }
  req.log.error({ err }, "unexpected error");
  return sendProblem(reply, problem("ERR_INTERNAL", "internal error", undefined, req.url));
}
