/** RFC 7807 problem+json for every error the API returns, keyed by tpmtrust's stable error codes. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERROR_CODES, type ErrorCode, httpStatusFor, isTpmTrustError } from "../errors.js";

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
    status: httpStatusFor(code),
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
  // each route bounds its body (1 MiB unless it says otherwise: attestations with an IMA list 32 MiB, policies 4 MiB)
  if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE") return sendProblem(reply, problem("ERR_BODY_TOO_LARGE", fe.message, undefined, req.url));
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    // malformed JSON, wrong content type, body too large, …
    const code: ErrorCode = fe.statusCode === 404 ? "ERR_NOT_FOUND" : fe.statusCode === 429 ? "ERR_TOO_MANY_ATTEMPTS" : "ERR_VALIDATION";
    return sendProblem(reply, { ...problem(code, fe.message, undefined, req.url), status: fe.statusCode });
  }
  req.log.error({ err }, "unexpected error");
  return sendProblem(reply, problem("ERR_INTERNAL", "internal error", undefined, req.url));
}
