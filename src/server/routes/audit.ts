/** The hash-chained audit log: entries and chain verification (admin and auditor). */
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";

const tags = ["audit"];
const SEQ = { type: "string", pattern: "^(0|[1-9][0-9]{0,14})$" } as const;
const TEXT = { type: "string", minLength: 1, maxLength: 256 } as const;

const audit: RouteModule = (app, { store }) => {
  app.get<{ Querystring: { afterSeq?: string; beforeSeq?: string; limit?: string; actor?: string; action?: string; subject?: string; order?: "asc" | "desc" } }>(
    "/v1/audit",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "audit entries in seq order, filtered and paged by seq",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { afterSeq: SEQ, beforeSeq: SEQ, limit: { type: "string", pattern: "^[1-9][0-9]{0,3}$" }, actor: TEXT, action: TEXT, subject: TEXT, order: { type: "string", enum: ["asc", "desc"] } },
        },
      },
    },
    async (req) => {
      const q = req.query;
      const entries = await store.audit.list({
        afterSeq: q.afterSeq === undefined ? undefined : Number(q.afterSeq),
        beforeSeq: q.beforeSeq === undefined ? undefined : Number(q.beforeSeq),
        limit: Math.min(q.limit ? Number(q.limit) : 100, 1000),
        actor: q.actor,
        action: q.action,
        subject: q.subject,
        newestFirst: q.order === "desc",
      });
      return { entries };
    },
  );

  app.get("/v1/audit/verify", { config: { access: READERS }, schema: { tags, summary: "recompute the hash chain: ok, or the first bad seq and why" } }, async () => store.audit.verify());
};
export default audit;
