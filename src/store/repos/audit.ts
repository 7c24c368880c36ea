import { TpmTrustError } from "../../errors.js";
import { type AuditAnchor, type AuditEntry, type AuditOutcome, type ChainProblem, type JsonValue, ChainWalker, auditHash, canonicalJson, toJsonValue } from "../audit-chain.js";
import { sql } from "kysely";
import { type Ctx, forUpdate } from "../ctx.js";
import { prepared, preparedInsert } from "../prepared.js";
import type { AuditTable } from "../schema.js";

export interface NewAuditEntry {
  /** who: "admin:<token id>", "host:<name>", "system", … */
  actor: string;
  /** what, dotted: "host.add", "ak.activate", "attestation.verdict", "trust.allowlist.add", "auth.denied" … */
  action: string;
  subject?: string | null;
  outcome: AuditOutcome;
  /** anything JSON-like; Buffers become hex (see toJsonValue) */
  details?: unknown;
  at: number;
}

export interface AuditVerification {
  ok: boolean;
  /** entries that verified, in order, before the first break (all of them when ok) */
  verified: number;
  headSeq: number;
  headHash: string;
  firstBadSeq: number | null;
  problem: ChainProblem | null;
  reason: string | null;
}

const toEntry = (r: AuditTable): AuditEntry => ({
  seq: r.seq,
  at: r.at,
  actor: r.actor,
  action: r.action,
  subject: r.subject,
  outcome: r.outcome as AuditOutcome,
  details: JSON.parse(r.details) as JsonValue,
  prevHash: r.prev_hash,
  hash: r.hash,
});

// Every decision appends: its three statements are prepared.
const headRow = prepared(({ db }) => db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1));
const lockedHeadRow = prepared((ctx) => forUpdate(ctx, ctx.db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1)));
const insertEntry = preparedInsert("audit");
const setHead = prepared(({ db }, seq: number, hash: string) => db.updateTable("audit_head").set({ seq, hash }).where("id", "=", 1));

/** The append-only, hash-chained audit log (see audit-chain.ts). */
export function auditRepo(ctx: Ctx) {
  async function head(): Promise<{ seq: number; hash: string }> {
    const [h] = (await headRow(ctx)).rows;
    if (!h) throw new TpmTrustError("ERR_INTERNAL", "the audit head row is missing");
    return h;
  }

  return {
    /**
     * Appends one entry. The head row is locked for the transaction (SELECT … FOR UPDATE on
     * PostgreSQL, the write lock on SQLite), so concurrent appenders on any number of instances
     * queue and seq/prev_hash never fork. Inside a caller's transaction the entry commits with it.
     */
    append: (e: NewAuditEntry): Promise<AuditEntry> =>
      ctx.transaction(async (tx) => {
        const [h] = (await lockedHeadRow(tx)).rows;
        if (!h) throw new TpmTrustError("ERR_INTERNAL", "the audit head row is missing");
        const details = toJsonValue(e.details);
        const fields = { seq: h.seq + 1, at: e.at, actor: e.actor, action: e.action, subject: e.subject ?? null, outcome: e.outcome, details };
        const hash = auditHash(h.hash, fields);
        await insertEntry(tx, { ...fields, details: canonicalJson(details), prev_hash: h.hash, hash });
        await setHead(tx, fields.seq, hash);
        return { ...fields, prevHash: h.hash, hash };
      }),

    /** The newest entry's seq (= number of entries) and hash. */
    head,

    /** Entries in seq order (newest first with `newestFirst`), filtered and paged by seq. */
    /** `actionPrefix`: actions starting with it; `outcomes`: any of them; `since`: at or after (epoch ms). */
    async list(
      o: { afterSeq?: number; beforeSeq?: number; limit?: number; actor?: string; action?: string; actionPrefix?: string; subject?: string; outcomes?: readonly AuditOutcome[]; since?: number; newestFirst?: boolean } = {},
    ): Promise<AuditEntry[]> {
      let q = ctx.db.selectFrom("audit").selectAll();
      if (o.actionPrefix !== undefined) q = q.where(sql<boolean>`action like ${o.actionPrefix.replace(/[\\%_]/g, "\\$&") + "%"} escape '\\'`);
      if (o.outcomes !== undefined) q = q.where("outcome", "in", [...o.outcomes]);
      if (o.since !== undefined) q = q.where("at", ">=", o.since);
      if (o.afterSeq !== undefined) q = q.where("seq", ">", o.afterSeq);
      if (o.beforeSeq !== undefined) q = q.where("seq", "<", o.beforeSeq);
      if (o.actor !== undefined) q = q.where("actor", "=", o.actor);
      if (o.action !== undefined) q = q.where("action", "=", o.action);
      if (o.subject !== undefined) q = q.where("subject", "=", o.subject);
      return (await q.orderBy("seq", o.newestFirst ? "desc" : "asc").limit(o.limit ?? 100).execute()).map(toEntry);
    },

    /**
     * Recomputes the whole chain on one consistent snapshot, in batches. Reports the first bad seq
     * for any edited, deleted, inserted or reordered entry and for a truncated tail; with `anchors`
     * (heads seen earlier, kept outside the database) also for a log recomputed or cut back since.
     */
    verify: (o: { batchSize?: number; anchors?: readonly AuditAnchor[] } = {}): Promise<AuditVerification> =>
      ctx.snapshot(async (tx) => {
        const h = await auditRepo(tx).head();
        const walker = new ChainWalker(o.anchors);
        let after = 0;
        for (;;) {
          const rows = await tx.db.selectFrom("audit").selectAll().where("seq", ">", after).orderBy("seq").limit(o.batchSize ?? 1000).execute();
          for (const r of rows) {
            const bad = walker.next(r);
            if (bad) return { ok: false, verified: walker.length, headSeq: h.seq, headHash: h.hash, firstBadSeq: bad.seq, problem: bad.problem, reason: bad.reason };
          }
          if (rows.length === 0) break;
          after = rows[rows.length - 1].seq;
        }
        const bad = walker.finish(h);
        return { ok: !bad, verified: walker.length, headSeq: h.seq, headHash: h.hash, firstBadSeq: bad?.seq ?? null, problem: bad?.problem ?? null, reason: bad?.reason ?? null };
      }),
  };
}
