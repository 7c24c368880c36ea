/** The hash-chained audit log: entries and chain verification (admin and auditor). */
import type { FastifyInstance } from "fastify";
import { auditEntries, auditHead, verifyAudit } from "../../attest/audit-log.js";
import type { AuditAnchor, Store } from "../../store/index.js";
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";
import { TpmTrustError } from "../../errors.js";
import { decodeCursor, pageLimit, sendPage, type PageQuery } from "../paging.js";

const tags = ["audit"];
const SEQ = { type: "string", pattern: "^(0|[1-9][0-9]{0,14})$" } as const;
const TEXT = { type: "string", minLength: 1, maxLength: 256 } as const;

/**
 * Writes the audit head to the service log whenever it moved, every `ms`: whoever can write the
 * database can recompute the chain, but not the log lines already shipped elsewhere. Any of them
 * is an anchor for `tpmtrust audit verify --anchor SEQ:HASH`.
 */
function witnessAuditHead(app: FastifyInstance, store: Store, ms: number): void {
  let last = -1;
  const witness = async () => {
    const h = await auditHead(store);
    if (h.seq === last) return;
    last = h.seq;
    app.log.info({ auditHead: { seq: h.seq, hash: h.hash }, anchor: `${h.seq}:${h.hash}` }, "audit head");
  };
  let timer: NodeJS.Timeout | undefined;
  const run = () => void witness().catch((e: Error) => app.log.error({ err: e.message }, "audit head witness failed"));
  app.addHook("onReady", async () => {
    run();
    timer = setInterval(run, ms);
    timer.unref();
  });
  app.addHook("onClose", async () => clearInterval(timer));
}

const audit: RouteModule = (app, { store, auditWitnessMs }) => {
  if (auditWitnessMs > 0) witnessAuditHead(app, store, auditWitnessMs);

  app.get<{ Querystring: { afterSeq?: string; beforeSeq?: string; actor?: string; action?: string; subject?: string; order?: "asc" | "desc" } & PageQuery }>(
    "/v1/audit",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "audit entries in seq order, filtered and paged by seq",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { afterSeq: SEQ, beforeSeq: SEQ, actor: TEXT, action: TEXT, subject: TEXT, order: { type: "string", enum: ["asc", "desc"] } },
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const order = q.order === "desc" ? "-seq" : "seq";
      // the cursor is the last seq served: the next page starts after it in the page's order
      const [last] = decodeCursor(q, order)?.after ?? [];
      if (last !== undefined && typeof last !== "number") throw new TpmTrustError("ERR_VALIDATION", "querystring/cursor is not a cursor this service issued");
      const limit = pageLimit(q, 100);
      const entries = await auditEntries(store, {
        afterSeq: order === "seq" && last !== undefined ? last : q.afterSeq === undefined ? undefined : Number(q.afterSeq),
        beforeSeq: order === "-seq" && last !== undefined ? last : q.beforeSeq === undefined ? undefined : Number(q.beforeSeq),
        limit: limit + 1,
        actor: q.actor,
        action: q.action,
        subject: q.subject,
        newestFirst: order === "-seq",
      });
      const page = entries.slice(0, limit);
      const end = page.at(-1);
      return { entries: sendPage(req, reply, { items: page, next: entries.length > limit && end ? { order, after: [end.seq] } : undefined }) };
    },
  );

  app.get<{ Querystring: { anchor?: string } }>(
    "/v1/audit/verify",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "recompute the hash chain: ok, or the first bad seq and why",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { anchor: { type: "string", pattern: "^[1-9][0-9]{0,14}:[0-9a-fA-F]{64}$", description: "SEQ:HASH of a head seen earlier, kept outside the database: the chain must still hold it" } },
        },
      },
    },
    async (req) => {
      const [seq, hash] = req.query.anchor?.split(":") ?? [];
      const anchors: AuditAnchor[] = hash ? [{ seq: Number(seq), hash }] : [];
      return verifyAudit(store, anchors);
    },
  );
};
export default audit;
