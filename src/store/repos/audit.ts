import { sql, type Selectable } from "kysely";
import { TpmTrustError } from "../../errors.js";
import { EMPTY_ROOT, Frontier, HASH_LEN, LeafHashes } from "../../crypto/merkle.js";
import { type AuditAnchor, type AuditEntry, type AuditOutcome, type ChainBreak, type ChainProblem, type JsonValue, ChainWalker, canonicalJson, entryLeafHash, toJsonValue } from "../audit-chain.js";
import { type Ctx, hex, unhex } from "../ctx.js";
import { prepared, preparedSql } from "../prepared.js";
import type { AuditCheckpointsTable, AuditTable } from "../schema.js";

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

/** A tree head as a checkpoint signs it. */
export interface TreeHead {
  treeSize: number;
  /** hex */
  rootHash: string;
  /** epoch ms */
  at: number;
}

export interface StoredCheckpoint extends TreeHead {
  kid: string;
  /** JWS compact serialisation of the tree head */
  signed: string;
}

/** Signs a tree head without touching the store (it runs inside the checkpoint's transaction). */
export type CheckpointSigner = (head: TreeHead) => Promise<{ kid: string; signed: string }>;

export interface AuditVerification {
  ok: boolean;
  /** entries that verified before the first problem (all of them when ok) */
  verified: number;
  /** entries no checkpoint covers yet */
  pending: number;
  /** leaves in the tree (entries some checkpoint integrated) and the root over them */
  treeSize: number;
  rootHash: string;
  /** stored checkpoints whose root the entries reproduce */
  checkpoints: number;
  firstBadSeq: number | null;
  problem: ChainProblem | null;
  reason: string | null;
}

const toEntry = (r: Selectable<AuditTable>): AuditEntry => ({
  seq: r.seq,
  at: r.at,
  actor: r.actor,
  action: r.action,
  subject: r.subject,
  outcome: r.outcome as AuditOutcome,
  details: JSON.parse(r.details) as JsonValue,
  prevHash: r.prev_hash,
  hash: r.hash,
  leafIndex: r.leaf_index,
  leafHash: r.leaf_hash,
});

const toCheckpoint = (r: AuditCheckpointsTable): StoredCheckpoint => ({ treeSize: r.tree_size, rootHash: r.root_hash, at: r.at, kid: r.kid, signed: r.signed });

// Every decision appends: one statement, the database assigns seq (no row every writer locks).
const insertEntry = prepared(({ db }, at: number, actor: string, action: string, subject: string | null, outcome: string, details: string) =>
  db.insertInto("audit").values({ at, actor, action, subject, outcome, details, prev_hash: null, hash: null, leaf_index: null, leaf_hash: null }).returning("seq"),
);
const setLeaf = prepared(({ db }, seq: number, leafIndex: number, leafHash: string) => db.updateTable("audit").set({ leaf_index: leafIndex, leaf_hash: leafHash }).where("seq", "=", seq));
// PostgreSQL: a checkpoint's leaves in one statement (one round trip, not one per entry)
const setLeaves = preparedSql(
  "update audit set leaf_index = v.i, leaf_hash = v.h from unnest($1::bigint[], $2::bigint[], $3::text[]) as v(seq, i, h) where audit.seq = v.seq",
);

/**
 * The append-only audit log (docs/audit.md): entries are appended with a seq the database assigns,
 * inside the caller's transaction; `checkpoint` later integrates committed entries into a Merkle tree
 * and stores a signed head over it; `verify` recomputes everything.
 */
export function auditRepo(ctx: Ctx) {
  const latest = (c: Ctx) => c.db.selectFrom("audit_checkpoints").selectAll().orderBy("tree_size", "desc").limit(1).executeTakeFirst();

  return {
    /** Appends one entry; inside a caller's transaction it commits (or rolls back) with it. */
    async append(e: NewAuditEntry): Promise<AuditEntry> {
      const details = toJsonValue(e.details);
      const fields = { at: e.at, actor: e.actor, action: e.action, subject: e.subject ?? null, outcome: e.outcome };
      const [row] = (await insertEntry(ctx, fields.at, fields.actor, fields.action, fields.subject, fields.outcome, canonicalJson(details))).rows;
      return { seq: row.seq, ...fields, details, prevHash: null, hash: null, leafIndex: null, leafHash: null };
    },

    /** The newest seq (0: no entries) and the newest checkpoint, if any. */
    async head(): Promise<{ seq: number; checkpoint: StoredCheckpoint | undefined }> {
      const r = await ctx.db.selectFrom("audit").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
      const cp = await latest(ctx);
      return { seq: Number(r?.seq ?? 0), checkpoint: cp && toCheckpoint(cp) };
    },

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

    async get(seq: number): Promise<AuditEntry | undefined> {
      const r = await ctx.db.selectFrom("audit").selectAll().where("seq", "=", seq).executeTakeFirst();
      return r && toEntry(r);
    },

    /** Stored checkpoints, by tree size; `treeSize`: only that one. */
    async checkpoints(o: { treeSize?: number } = {}): Promise<StoredCheckpoint[]> {
      let q = ctx.db.selectFrom("audit_checkpoints").selectAll();
      if (o.treeSize !== undefined) q = q.where("tree_size", "=", o.treeSize);
      return (await q.orderBy("tree_size").execute()).map(toCheckpoint);
    },

    /** The stored leaf hashes of the first `size` leaves, in tree order (for proofs). */
    async leaves(size: number): Promise<LeafHashes> {
      const rows = await ctx.db.selectFrom("audit").select(["leaf_index", "leaf_hash"]).where("leaf_index", "<", size).orderBy("leaf_index").execute();
      if (rows.length !== size) throw new TpmTrustError("ERR_AUDIT_CHAIN_BROKEN", `the tree has ${rows.length} of the ${size} leaves a proof needs: run audit verify`);
      return new LeafHashes(Buffer.concat(rows.map((r) => unhex(r.leaf_hash ?? ""))));
    },

    /**
     * Integrates entries committed since the last checkpoint (at most `max`, in seq order) as the
     * next leaves and stores a signed head over the whole tree. Only one checkpoint runs at a time
     * (a lock no append takes); entries still in flight are simply integrated by a later one, so a
     * checkpoint always covers a contiguous prefix of committed leaves. Nothing pending: undefined.
     */
    checkpoint: (o: { at: number; sign: CheckpointSigner; max?: number }): Promise<StoredCheckpoint | undefined> =>
      ctx.transaction(async (tx) => {
        await tx.lock("audit.checkpoint");
        const last = await latest(tx);
        const frontier = last ? Frontier.from((JSON.parse(last.frontier) as string[]).map(unhex), last.tree_size) : new Frontier();
        const rows = await tx.db.selectFrom("audit").selectAll().where("leaf_index", "is", null).orderBy("seq").limit(o.max ?? 10_000).execute();
        if (rows.length === 0) return undefined;
        const first = frontier.size;
        const hashes = rows.map((r) => entryLeafHash(r));
        if (tx.dialect === "postgres") await setLeaves(tx, [rows.map((r) => r.seq), hashes.map((_, k) => first + k), hashes]);
        else for (const [k, r] of rows.entries()) await setLeaf(tx, r.seq, first + k, hashes[k]);
        for (const h of hashes) frontier.push(unhex(h));
        const head: TreeHead = { treeSize: frontier.size, rootHash: hex(frontier.root()), at: o.at };
        const { kid, signed } = await o.sign(head);
        const row: AuditCheckpointsTable = { tree_size: head.treeSize, root_hash: head.rootHash, at: head.at, kid, signed, frontier: JSON.stringify(frontier.hashes.map(hex)) };
        await tx.db.insertInto("audit_checkpoints").values(row).execute();
        return toCheckpoint(row);
      }),

    /**
     * Recomputes the log on one consistent snapshot, in batches: the hash chain of entries from
     * before schema version 12, every integrated entry's leaf hash, that the leaves are contiguous,
     * that every stored checkpoint's root is the root of that many leaves, and the anchors (kept
     * outside the database: tree heads, or old chain heads). Signatures are the caller's to check
     * (`checkpoints` and `leaves` are returned for that).
     */
    verify: (o: { batchSize?: number; anchors?: readonly AuditAnchor[] } = {}): Promise<AuditVerification & { stored: StoredCheckpoint[]; leaves: LeafHashes }> =>
      ctx.snapshot(async (tx) => {
        const legacy = await tx.db.selectFrom("audit_head").select(["seq", "hash"]).where("id", "=", 1).executeTakeFirst();
        if (!legacy) throw new TpmTrustError("ERR_INTERNAL", "the audit head row is missing");
        const stored = (await tx.db.selectFrom("audit_checkpoints").selectAll().orderBy("tree_size").execute()).map(toCheckpoint);
        const top = await tx.db.selectFrom("audit").select((eb) => eb.fn.max("leaf_index").as("m")).executeTakeFirst();
        const size = top?.m === null || top?.m === undefined ? 0 : Number(top.m) + 1;
        const leafBytes = Buffer.alloc(size * HASH_LEN);
        const seqOf = new Float64Array(size).fill(-1);
        const anchors = new Map((o.anchors ?? []).map((a) => [a.seq, a.hash.toLowerCase()]));
        const chainHashAt = new Map<number, string>();
        const walker = new ChainWalker();
        let walked = 0;
        let pending = 0;
        const result = (bad: ChainBreak | undefined, verified: number, treeSize = 0, rootHash = hex(EMPTY_ROOT), checkpoints = 0) => ({
          ok: !bad,
          verified,
          pending,
          treeSize,
          rootHash,
          checkpoints,
          firstBadSeq: bad?.seq ?? null,
          problem: bad?.problem ?? null,
          reason: bad?.reason ?? null,
          stored,
          leaves: new LeafHashes(leafBytes.subarray(0, treeSize * HASH_LEN)),
        });

        let after = -1;
        for (;;) {
          const rows = await tx.db.selectFrom("audit").selectAll().where("seq", ">", after).orderBy("seq").limit(o.batchSize ?? 1000).execute();
          if (rows.length === 0) break;
          after = rows[rows.length - 1].seq;
          for (const r of rows) {
            let bad: ChainBreak | undefined;
            if (r.seq <= legacy.seq) {
              bad = walker.next(r);
              if (anchors.has(r.seq) && r.hash) chainHashAt.set(r.seq, r.hash);
            } else if (!isCanonical(r.details)) {
              bad = { seq: r.seq, problem: "details", reason: "details are not canonical JSON: the row was edited" };
            }
            if (!bad && r.leaf_index !== null) {
              const i = r.leaf_index;
              if (i < 0 || seqOf[i] !== -1) bad = { seq: r.seq, problem: "gap", reason: `leaf index ${i} is taken twice or invalid: the tree was edited` };
              else if (entryLeafHash(r) !== r.leaf_hash) bad = { seq: r.seq, problem: "hash", reason: "the entry does not hash to its leaf hash: the row was edited" };
              else {
                unhex(r.leaf_hash).copy(leafBytes, i * HASH_LEN);
                seqOf[i] = r.seq;
              }
            } else if (!bad) pending++;
            if (bad) return result(bad, walked);
            walked++;
          }
        }
        const legacyEnd = walker.finish(legacy);
        if (legacyEnd) return result(legacyEnd, walker.length);

        // the leaves: contiguous from 0, then the roots at every checkpoint and anchor size
        const hole = seqOf.indexOf(-1);
        const leafSeq = (i: number): number => (i < size && seqOf[i] !== -1 ? seqOf[i] : i > 0 ? seqOf[Math.min(i, size) - 1] + 1 : 1);
        if (hole !== -1) return result({ seq: leafSeq(hole), problem: "gap", reason: `leaf ${hole} is missing: an entry was deleted` }, hole);
        const sizes = new Set([...stored.map((c) => c.treeSize), ...anchors.keys()].filter((n) => n <= size));
        const rootAt = new Map<number, string>([[0, hex(EMPTY_ROOT)]]);
        const f = new Frontier();
        for (let i = 0; i < size; i++) {
          f.push(leafBytes.subarray(i * HASH_LEN, (i + 1) * HASH_LEN));
          if (sizes.has(i + 1)) rootAt.set(i + 1, hex(f.root()));
        }
        const rootHash = hex(f.root());
        const newest = stored.at(-1)?.treeSize ?? 0;
        if (size > newest) return result({ seq: leafSeq(newest), problem: "checkpoint", reason: `leaves ${newest}..${size - 1} are in no checkpoint: entries were integrated behind the log's back` }, newest, size, rootHash);
        let good = 0;
        for (const c of stored) {
          if (c.treeSize > size) return result({ seq: leafSeq(size), problem: "checkpoint", reason: `a checkpoint covers ${c.treeSize} leaves but the tree has ${size}: entries were deleted from the end` }, size, size, rootHash, good);
          if (rootAt.get(c.treeSize) !== c.rootHash.toLowerCase()) {
            const from = stored.filter((x) => x.treeSize < c.treeSize && rootAt.get(x.treeSize) === x.rootHash).reduce((n, x) => Math.max(n, x.treeSize), 0);
            return result({ seq: leafSeq(from), problem: "checkpoint", reason: `the checkpoint of ${c.treeSize} leaves does not match the entries: one of leaves ${from}..${c.treeSize - 1} was edited, deleted or inserted` }, from, size, rootHash, good);
          }
          good++;
        }
        for (const [n, h] of [...anchors].sort((a, b) => a[0] - b[0])) {
          if (chainHashAt.get(n) === h || rootAt.get(n) === h) continue;
          const bad: ChainBreak =
            n > size && n > legacy.seq
              ? { seq: leafSeq(size), problem: "anchor", reason: `the tree has ${size} leaves but a head of ${n} was kept: entries were cut off` }
              : { seq: n <= legacy.seq ? n : leafSeq(n - 1), problem: "anchor", reason: `the log no longer has the kept head ${n}:${h}: it was rewritten` };
          return result(bad, Math.min(n - 1, size), size, rootHash, good);
        }
        return result(undefined, walked, size, rootHash, good);
      }),
  };
}

function isCanonical(details: string): boolean {
  try {
    return canonicalJson(JSON.parse(details) as JsonValue) === details;
  } catch {
    return false;
  }
}
