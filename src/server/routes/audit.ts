/** The hash-chained audit log: entries and chain verification (admin and auditor). */
import type { FastifyInstance } from "fastify";
import { auditEntries, auditHead, verifyAudit } from "../../attest/audit-log.js";
import type { AuditAnchor, Store } from "../../store/index.js";
import type { RouteModule } from "../app.js";
import { READERS } from "../auth.js";

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
      const entries = await auditEntries(store, {
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
