/**
 * The audit log as a Merkle tree with signed checkpoints (docs/audit.md), on SQLite and PostgreSQL:
 * entries from before schema version 12 stay verifiable, a checkpoint never covers an entry still in
 * flight, and signatures and kept checkpoints expose what the database alone cannot.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import SqliteDatabase from "better-sqlite3";
import pg from "pg";
import { attestConfig } from "../../src/attest/config.js";
import { GENESIS_HASH, auditHash, canonicalJson, isPostgresUrl, openStore, type Store } from "../../src/store/index.js";
import { rootCtx } from "../../src/store/ctx.js";
import { MIGRATIONS, migrate } from "../../src/store/migrations/index.js";
import type { Database } from "../../src/store/schema.js";
import { checkpointAudit, proveInclusion, verifyAudit } from "../../src/tokens/audit.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";

const T0 = 1_700_000_000_000;
const CFG = attestConfig({});

/** A database at schema version 9 holding a hash chain of `n` entries, as tpmtrust wrote it then. */
async function legacyDatabase(url: string, n: number): Promise<{ seq: number; hash: string }[]> {
  const postgres = isPostgresUrl(url);
  const db = new Kysely<Database>({ dialect: postgres ? new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) : new SqliteDialect({ database: new SqliteDatabase(url) }) });
  try {
    await migrate(rootCtx(db, postgres ? "postgres" : "sqlite"), MIGRATIONS.filter((m) => m.version <= 11));
    let prev = GENESIS_HASH;
    const heads: { seq: number; hash: string }[] = [];
    for (let seq = 1; seq <= n; seq++) {
      const f = { seq, at: T0 + seq, actor: "admin:old", action: "host.add", subject: `h${seq}`, outcome: "success" as const, details: { i: seq } };
      const hash = auditHash(prev, f);
      await rawSql(url, `insert into audit (seq, at, actor, action, subject, outcome, details, prev_hash, hash) values (${seq}, ${f.at}, '${f.actor}', '${f.action}', '${f.subject}', 'success', '${canonicalJson(f.details)}', '${prev}', '${hash}')`);
      await rawSql(url, `update audit_head set seq = ${seq}, hash = '${hash}' where id = 1`);
      heads.push({ seq, hash });
      prev = hash;
    }
    return heads;
  } finally {
    await db.destroy();
  }
}

for (const [name, make] of BACKENDS) {
  describe(`audit tree on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    async function withStore(fn: (s: Store, url: string) => Promise<void>, url?: string): Promise<void> {
      const u = url ?? (await backend.newUrl());
      const s = await openStore(u);
      try {
        await fn(s, u);
      } finally {
        await s.close();
      }
    }

    test("the migration keeps a pre-v10 hash chain: its entries, anchors and head verify; new entries continue its seqs as leaves", async () => {
      const url = await backend.newUrl();
      const heads = await legacyDatabase(url, 4);
      await withStore(async (s) => {
        assert.equal(s.schemaVersion, MIGRATIONS.at(-1)!.version);
        assert.deepEqual((await s.audit.list()).map((e) => [e.seq, e.hash]), heads.map((h) => [h.seq, h.hash]));
        const e = await s.audit.append({ actor: "admin:new", action: "host.add", outcome: "success", at: T0 + 10 });
        assert.equal(e.seq, 5);
        const v = await verifyAudit(s, { anchors: [heads[1]] });
        assert.deepEqual([v.ok, v.verified, v.pending], [true, 5, 5], v.reason ?? "");
        await checkpointAudit(s, CFG, T0 + 11);
        const after = await verifyAudit(s, { anchors: [heads[3]] });
        assert.deepEqual([after.ok, after.treeSize, after.pending], [true, 6, 0], after.reason ?? "");
        // a pre-v10 anchor still finds a rewritten old entry, a tree head still holds
        const old = await verifyAudit(s, { anchors: [{ seq: 2, hash: "f".repeat(64) }] });
        assert.deepEqual([old.ok, old.problem, old.firstBadSeq], [false, "anchor", 2]);
        assert.equal((await proveInclusion(s, 2)).leafIndex, 1);
      }, url);
      // the old chain is still checked link by link
      await rawSql(url, "update audit set prev_hash = hash where seq = 3");
      await withStore(async (s) => {
        const v = await verifyAudit(s);
        assert.deepEqual([v.ok, v.problem, v.firstBadSeq], [false, "link", 3]);
      }, url);
    });

    test("a checkpoint covers committed entries only; an entry committed later goes into the next one", async () => {
      await withStore(async (s, url) => {
        await s.audit.append({ actor: "t", action: "one", outcome: "success", at: T0 });
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let appended!: () => void;
        const inFlight = new Promise<void>((r) => (appended = r));
        // SQLite has one writer at a time: there, the open transaction is the next writer after the checkpoint
        const tx = s.dialect === "postgres"
          ? s.transaction(async (t) => {
              await t.audit.append({ actor: "t", action: "in-flight", outcome: "success", at: T0 + 1 });
              appended();
              await held;
            })
          : (appended(), held.then(() => s.transaction((t) => t.audit.append({ actor: "t", action: "in-flight", outcome: "success", at: T0 + 1 }))));
        await inFlight;
        await s.audit.append({ actor: "t", action: "three", outcome: "success", at: T0 + 2 });
        const first = await checkpointAudit(s, CFG, T0 + 3);
        const covered = (await s.audit.list({ limit: 10 })).filter((e) => e.leafIndex !== null && e.leafIndex < first!.treeSize).map((e) => e.action);
        assert.equal(covered.includes("in-flight"), false);
        assert.ok(covered.includes("three"));
        release();
        await tx;
        const second = await checkpointAudit(s, CFG, T0 + 4);
        assert.equal(second!.treeSize, first!.treeSize + 1);
        const late = (await s.audit.list({ action: "in-flight" }))[0];
        assert.equal(late.leafIndex, first!.treeSize, "integrated after the entries committed before it");
        const v = await verifyAudit(s, { checkpoints: [first!.signed] });
        assert.deepEqual([v.ok, v.checkpoints, v.pending], [true, 2, 0], v.reason ?? "");
        if (s.dialect === "postgres") assert.ok(late.seq < (await s.audit.list({ action: "three" }))[0].seq, "seq order is not commit order on PostgreSQL");
        await rawSql(url, "select 1");
      });
    });

    test("checkpoints are signed by the service: a stored or kept checkpoint it did not sign is refused", async () => {
      await withStore(async (s, url) => {
        await s.audit.append({ actor: "t", action: "one", outcome: "success", at: T0 });
        const cp = (await checkpointAudit(s, CFG, T0 + 1))!;
        const [h, p, sig] = cp.signed.split(".");
        const flipped = `${h}.${p}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
        const kept = await verifyAudit(s, { checkpoints: [flipped] });
        assert.deepEqual([kept.ok, kept.problem], [false, "signature"]);
        await rawSql(url, `update audit_checkpoints set signed = '${flipped}'`);
        const stored = await verifyAudit(s);
        assert.deepEqual([stored.ok, stored.problem], [false, "signature"]);
        const body = JSON.parse(Buffer.from(p, "base64url").toString());
        const other = Buffer.from(JSON.stringify({ ...body, rootHash: "0".repeat(64) })).toString("base64url");
        await assert.rejects(verifyAudit(s, { checkpoints: ["not a checkpoint"] }), (e: { code?: string }) => e.code === "ERR_VALIDATION");
        const forged = await verifyAudit(s, { checkpoints: [`${h}.${other}.${sig}`] });
        assert.deepEqual([forged.ok, forged.problem], [false, "signature"]);
      });
    });
  });
}
