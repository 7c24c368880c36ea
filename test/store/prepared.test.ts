/** Prepared queries (built once per dialect, run with new values) and the hot-path repo calls built on them. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import SqliteDatabase from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import pg from "pg";
import { isPostgresUrl, openStore, type Store } from "../../src/store/index.js";
import { rootCtx, type Ctx } from "../../src/store/ctx.js";
import { prepared, preparedInsert } from "../../src/store/prepared.js";
import type { Database } from "../../src/store/schema.js";
import { BACKENDS, type Backend } from "../helpers/store.js";

/** A Ctx of its own over a database the store has migrated. */
function ctxOver(url: string): Ctx {
  const dialect = isPostgresUrl(url) ? new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) : new SqliteDialect({ database: new SqliteDatabase(url) });
  return rootCtx(new Kysely<Database>({ dialect }), isPostgresUrl(url) ? "postgres" : "sqlite");
}

const byPurpose = prepared(({ db }, purpose: string, after: number) => db.selectFrom("nonces").select(["value", "purpose"]).where("purpose", "=", purpose).where("issued_at", ">", after).orderBy("value"));
// the argument chooses a clause: not a fixed shape
const shapeShifter = prepared(({ db }, purpose: string) => (purpose ? db.selectFrom("nonces").selectAll().where("purpose", "=", "x") : db.selectFrom("nonces").selectAll()));
const insertNonce = preparedInsert("nonces");

for (const [name, make] of BACKENDS) {
  describe(`prepared queries on ${name}`, () => {
    let backend: Backend;
    let store: Store;
    let url: string;
    before(async () => {
      backend = await make();
      url = await backend.newUrl();
      store = await openStore(url);
    });
    after(async () => {
      await store.close();
      await backend.close();
    });

    test("each run binds its own values; constants of the built query stay; inserted rows read back", async () => {
      const ctx = ctxOver(url);
      try {
        for (const [value, purpose, at] of [["aa", "p1", 10], ["bb", "p1", 20], ["cc", "p2", 30]] as const) {
          await insertNonce(ctx, { value, purpose, subject: null, issued_at: at, expires_at: at + 1000, consumed_at: null });
        }
        assert.deepEqual((await byPurpose(ctx, "p1", 0)).rows, [{ value: "aa", purpose: "p1" }, { value: "bb", purpose: "p1" }]);
        assert.deepEqual((await byPurpose(ctx, "p1", 15)).rows, [{ value: "bb", purpose: "p1" }]);
        assert.deepEqual((await byPurpose(ctx, "p2", 0)).rows, [{ value: "cc", purpose: "p2" }]);
        assert.deepEqual((await byPurpose(ctx, "none", 0)).rows, []);
        await assert.rejects(insertNonce(ctx, { value: "aa", purpose: "p3", subject: null, issued_at: 1, expires_at: 2, consumed_at: null }));
      } finally {
        await ctx.db.destroy();
      }
    });

    test("an argument that chooses clauses instead of values is refused when first built", async () => {
      const ctx = ctxOver(url);
      try {
        await assert.rejects(shapeShifter(ctx, "p"), (e: unknown) => (e as { code?: string }).code === "ERR_INTERNAL" && /argument 0/.test((e as Error).message));
      } finally {
        await ctx.db.destroy();
      }
    });

    test("hosts.attested: an unchanged health is one update; each transition is reported to exactly one caller", async () => {
      await store.hosts.add({ at: Date.now(), name: "h", hardwareClass: "c", policyVersion: "v2", eks: [] });
      const first = await store.hosts.attested("h", { health: "healthy", at: 1000, deadlineAt: 2000 });
      assert.deepEqual(first, { changed: true, previous: "unknown" });
      assert.deepEqual(await store.hosts.attested("h", { health: "healthy", reason: null, at: 1100, deadlineAt: 2100 }), { changed: false, previous: "healthy" });
      let h = (await store.hosts.get("h"))!;
      assert.equal(h.lastAttestationAt, 1100);
      assert.equal(h.deadlineAt, 2100);
      assert.equal(h.healthChangedAt, 1000);
      const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => store.transaction((tx) => tx.hosts.attested("h", { health: "unhealthy", reason: "ERR_POLICY_FAILED", at: 1200 + i, deadlineAt: 3000 }))));
      assert.equal(racing.filter((r) => r.changed).length, 1);
      assert.ok(racing.every((r) => r.changed ? r.previous === "healthy" : r.previous === "unhealthy"));
      h = (await store.hosts.get("h"))!;
      assert.equal(h.health, "unhealthy");
      assert.equal(h.healthReason, "ERR_POLICY_FAILED");
      await assert.rejects(store.hosts.attested("missing", { health: "healthy", at: 1, deadlineAt: 2 }), (e: unknown) => (e as { code?: string }).code === "ERR_NOT_FOUND");
    });
  });
}
