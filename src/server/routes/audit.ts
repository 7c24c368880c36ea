/** The audit log: entries, verification, checkpoints and proofs (admin and auditor; docs/audit.md). */
import type { FastifyInstance } from "fastify";
import { TpmTrustError } from "../../errors.js";
import type { AuditAnchor, AuditOutcome } from "../../store/index.js";
import { auditEntries, auditHead, checkpointAudit, proveConsistency, proveInclusion, verifyAudit } from "../../attest/audit-log.js";
import { decodeCursor, pageLimit, sendPage, type PageQuery } from "../paging.js";
import type { RouteDeps, RouteModule } from "../app.js";
import { ADMINS, READERS } from "../auth.js";

const tags = ["audit"];
const SEQ = { type: "string", pattern: "^(0|[1-9][0-9]{0,14})$" } as const;
const TEXT = { type: "string", minLength: 1, maxLength: 256 } as const;

/**
 * Integrates new entries into the tree and signs a checkpoint every `checkpointMs`; writes the
 * newest checkpoint to the service log whenever it moved, every `witnessMs`: whoever can write the
 * database can rewrite the log and re-sign, but not the log lines already shipped elsewhere. Any of
 * them is kept for `tpmtrust audit verify --checkpoint` (or its anchor for --anchor SIZE:ROOT).
 */
function runCheckpoints(app: FastifyInstance, { store, attest, now, auditCheckpointMs, auditWitnessMs }: RouteDeps): void {
  let last = -1;
  const timers: NodeJS.Timeout[] = [];
  const checkpoint = () => void checkpointAudit(store, attest, now()).catch((e: Error) => app.log.error({ err: e.message }, "audit checkpoint failed"));
  const witness = async () => {
    const cp = (await auditHead(store)).checkpoint;
    if (!cp || cp.treeSize === last) return;
    last = cp.treeSize;
    app.log.info({ auditCheckpoint: cp.signed, anchor: `${cp.treeSize}:${cp.rootHash}` }, "audit head");
  };
  const every = (ms: number, fn: () => void) => {
    fn();
    const t = setInterval(fn, ms);
    t.unref();
    timers.push(t);
  };
  app.addHook("onReady", async () => {
    if (auditCheckpointMs > 0) every(auditCheckpointMs, checkpoint);
    if (auditWitnessMs > 0) every(auditWitnessMs, () => void witness().catch((e: Error) => app.log.error({ err: e.message }, "audit head witness failed")));
  });
  app.addHook("onClose", async () => timers.forEach(clearInterval));
}

const ANCHOR = { type: "string", pattern: "^[1-9][0-9]{0,14}:[0-9a-fA-F]{64}$" } as const;
const CHECKPOINT = { type: "string", minLength: 1, maxLength: 2048 } as const;

function anchorsOf(list: readonly string[] = []): AuditAnchor[] {
  return list.map((a) => {
    const [seq, hash] = a.split(":");
    return { seq: Number(seq), hash };
  });
}

const audit: RouteModule = (app, deps) => {
  const { store } = deps;
  runCheckpoints(app, deps);

  app.get<{ Querystring: { afterSeq?: string; beforeSeq?: string; actor?: string; action?: string; subject?: string; outcome?: string; since?: string; order?: "asc" | "desc" } & PageQuery }>(
    "/v1/audit",
    {
      config: { access: READERS, paged: true },
      schema: {
        tags,
        summary: "audit entries in seq order, filtered and paged by seq",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            afterSeq: SEQ,
            beforeSeq: SEQ,
            actor: TEXT,
            action: { ...TEXT, description: "this action, or a prefix ending in * (ca.*)" },
            subject: TEXT,
            outcome: { type: "string", pattern: "^(success|failure|denied)(,(success|failure|denied)){0,2}$", description: "only these outcomes, comma-separated" },
            since: { ...SEQ, description: "at or after this time (ms since the epoch)" },
            order: { type: "string", enum: ["asc", "desc"] },
          },
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
        ...(q.action?.endsWith("*") ? { actionPrefix: q.action.slice(0, -1) } : { action: q.action }),
        subject: q.subject,
        ...(q.outcome ? { outcomes: q.outcome.split(",") as AuditOutcome[] } : {}),
        ...(q.since ? { since: Number(q.since) } : {}),
        newestFirst: order === "-seq",
      });
      const page = entries.slice(0, limit);
      const end = page.at(-1);
      return { entries: sendPage(req, reply, { items: page, next: entries.length > limit && end ? { order, after: [end.seq] } : undefined }) };
    },
  );

  app.get<{ Querystring: { anchor?: string; checkpoint?: string } }>(
    "/v1/audit/verify",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "recompute the audit log: entries, leaves, checkpoints; ok, or the first bad seq and why",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            anchor: { ...ANCHOR, description: "SIZE:ROOT of a tree head (or SEQ:HASH of a pre-v10 chain head) seen earlier, kept outside the database: the log must still hold it" },
            checkpoint: { ...CHECKPOINT, description: "a checkpoint kept outside the database: its signature and the log's consistency with it are checked" },
          },
        },
      },
    },
    async (req) => verifyAudit(store, { anchors: anchorsOf(req.query.anchor ? [req.query.anchor] : []), checkpoints: req.query.checkpoint ? [req.query.checkpoint] : [] }),
  );

  app.post<{ Body: { anchors?: string[]; checkpoints?: string[] } }>(
    "/v1/audit/verify",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "as GET, with any number of anchors and kept checkpoints",
        body: {
          type: "object",
          additionalProperties: false,
          properties: { anchors: { type: "array", maxItems: 100, items: ANCHOR }, checkpoints: { type: "array", maxItems: 100, items: CHECKPOINT } },
        },
      },
    },
    async (req) => verifyAudit(store, { anchors: anchorsOf(req.body?.anchors), checkpoints: req.body?.checkpoints ?? [] }),
  );

  app.get<{ Params: { seq: string }; Querystring: { treeSize?: string } }>(
    "/v1/audit/:seq/proof",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "RFC 9162 §2.1.3 inclusion proof of one entry in the newest checkpoint (or the one of treeSize leaves)",
        params: { type: "object", properties: { seq: SEQ }, required: ["seq"] },
        querystring: { type: "object", additionalProperties: false, properties: { treeSize: SEQ } },
      },
    },
    async (req) => proveInclusion(store, Number(req.params.seq), req.query.treeSize === undefined ? undefined : Number(req.query.treeSize)),
  );

  app.get<{ Querystring: { from: string; to?: string } }>(
    "/v1/audit/consistency",
    {
      config: { access: READERS },
      schema: {
        tags,
        summary: "RFC 9162 §2.1.4 consistency proof from the tree of `from` leaves to the newest checkpoint (or the one of `to` leaves)",
        querystring: { type: "object", additionalProperties: false, required: ["from"], properties: { from: SEQ, to: SEQ } },
      },
    },
    async (req) => proveConsistency(store, Number(req.query.from), req.query.to === undefined ? undefined : Number(req.query.to)),
  );

  app.post(
    "/v1/audit/checkpoint",
    { config: { access: ADMINS }, schema: { tags, summary: "integrate the entries written since the last checkpoint and sign a new one now; answers the newest checkpoint, none (null) while the log is empty" } },
    async () => (await checkpointAudit(store, deps.attest, deps.now())) ?? (await auditHead(store)).checkpoint ?? null,
  );

  app.get("/v1/audit/checkpoint", { config: { access: READERS }, schema: { tags, summary: "the newest signed checkpoint" } }, async () => {
    const cp = (await auditHead(store)).checkpoint;
    if (!cp) throw new TpmTrustError("ERR_AUDIT_NOT_CHECKPOINTED", "the audit log has no checkpoint yet");
    return cp;
  });
};
export default audit;
