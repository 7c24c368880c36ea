/**
 * Cursor paging for every list route, one rule for all: `?limit=N` (1–1000, default 1000) and
 * `?cursor=C` (opaque, from the previous page). The body stays what the route always returned; the
 * next page is announced in a `Link: <…>; rel="next"` header (RFC 8288) and the number of matching
 * items in `X-Total-Count`. A route opts in with `config: { paged: true }`, which adds both
 * parameters to its querystring schema (and so to the OpenAPI document).
 *
 * Also here: weak ETags on every JSON GET answer, so a polling dashboard gets 304 for an unchanged
 * page (RFC 9110 §8.8.3, §13.1.2).
 */
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { TpmTrustError } from "../errors.js";

const PAGE_MAX = 1000;

/** The paging parameters every paged route accepts (merged into its querystring schema). */
const PAGING_QUERY = {
  limit: { type: "string", pattern: "^[1-9][0-9]{0,3}$", description: `page size, 1–${PAGE_MAX} (default ${PAGE_MAX})` },
  cursor: { type: "string", pattern: "^[A-Za-z0-9_-]{1,1024}$", description: "the next page's cursor, from the previous page's Link header" },
} as const;

export interface PageQuery {
  limit?: string;
  cursor?: string;
}

/** What a cursor carries: the order it belongs to and the sort-key values of the last item served. */
export interface Cursor {
  order: string;
  after: (string | number | null)[];
}

/** The page size asked for, or the route's default. */
export function pageLimit(q: PageQuery, byDefault = PAGE_MAX): number {
  return q.limit === undefined ? byDefault : Math.min(Number(q.limit), PAGE_MAX);
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.order, c.after])).toString("base64url");
}

/** The cursor of a request, checked to belong to `order` (a cursor is only valid for the order that made it). */
export function decodeCursor(q: PageQuery, order: string): Cursor | undefined {
  if (q.cursor === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(q.cursor, "base64url").toString("utf8"));
  } catch {
    v = undefined;
  }
  const isValue = (x: unknown) => x === null || typeof x === "string" || typeof x === "number";
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== "string" || !Array.isArray(v[1]) || !v[1].every(isValue)) {
    throw new TpmTrustError("ERR_VALIDATION", "querystring/cursor is not a cursor this service issued");
  }
  if (v[0] !== order) throw new TpmTrustError("ERR_VALIDATION", `querystring/cursor belongs to another order (${v[0]}), not ${order}: start again without a cursor`);
  return { order, after: v[1] as Cursor["after"] };
}

/** Announces the next page (if any) and the total; returns the items to send. */
export function sendPage<T>(req: FastifyRequest, reply: FastifyReply, p: { items: T[]; next?: Cursor; total?: number }): T[] {
  if (p.total !== undefined) reply.header("x-total-count", String(p.total));
  if (p.next) {
    const url = new URL(req.url, "http://x");
    url.searchParams.set("cursor", encodeCursor(p.next));
    reply.header("link", `<${url.pathname}${url.search}>; rel="next"`);
  }
  return p.items;
}

/**
 * Pages a list the service already holds in a stable order (the small administrative lists):
 * the cursor is the key of the last item served; a page after an item that was removed since
 * resumes at the item's old position.
 */
export function pageList<T>(req: FastifyRequest<{ Querystring: PageQuery }>, reply: FastifyReply, all: T[], key: (x: T) => string, byDefault = PAGE_MAX): T[] {
  const limit = pageLimit(req.query, byDefault);
  const c = decodeCursor(req.query, "list");
  let start = 0;
  if (c) {
    const [k, i] = c.after;
    const at = all.findIndex((x) => key(x) === k);
    start = at >= 0 ? at + 1 : Math.max(0, Math.min(Number(i), all.length));
  }
  const items = all.slice(start, start + limit);
  const last = items.at(-1);
  const next = start + limit < all.length && last !== undefined ? { order: "list", after: [key(last), start + items.length - 1] } : undefined;
  return sendPage(req, reply, { items, next, total: all.length });
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** the route is a list: it takes ?limit and ?cursor (src/server/paging.ts) */
    paged?: boolean;
  }
}

export function installPaging(app: FastifyInstance): void {
  app.addHook("onRoute", (route) => {
    if (!(route.config as { paged?: boolean } | undefined)?.paged) return;
    const schema = (route.schema ?? {}) as { querystring?: { type?: string; properties?: Record<string, unknown>; additionalProperties?: boolean } };
    const qs = schema.querystring ?? { type: "object", additionalProperties: false, properties: {} };
    route.schema = { ...schema, querystring: { ...qs, properties: { ...qs.properties, ...PAGING_QUERY } } };
  });

  // weak ETag over the serialized body of a successful JSON GET; 304 when the client has it
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.method !== "GET" || reply.statusCode !== 200 || typeof payload !== "string") return payload;
    if (!String(reply.getHeader("content-type") ?? "").startsWith("application/json")) return payload;
    const etag = `W/"${createHash("sha256").update(payload).digest("base64url").slice(0, 27)}"`;
    reply.header("etag", etag);
    const inm = req.headers["if-none-match"];
    if (inm !== undefined && inm.split(",").some((t) => t.trim() === etag || t.trim() === "*")) {
      reply.code(304);
      return "";
    }
    return payload;
  });
}
