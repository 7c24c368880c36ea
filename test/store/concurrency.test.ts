import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TpmTrustError } from "../../src/errors.js";
import { openStore } from "../../src/store/index.js";
import { MIGRATIONS } from "../../src/store/migrations/index.js";
import { BACKENDS, rawSql, startWorker, type Backend } from "../helpers/store.js";

/** Several service instances (separate processes) on one database. */
for (const [name, make] of BACKENDS) {
  describe(`concurrent instances on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    /** Starts `n` workers, waits until all are ready, then lets them run at once. */
    async function race<T>(argsFor: (i: number) => string[], n = 2): Promise<T[]> {
      const workers = Array.from({ length: n }, (_, i) => startWorker<T>(argsFor(i)));
      await Promise.all(workers.map((w) => w.ready));
      for (const w of workers) w.go();
      return Promise.all(workers.map((w) => w.result));
    }

    test("instances opening one fresh database at once migrate it exactly once", async () => {
      const url = await backend.newUrl();
      const results = await race<{ schemaVersion: number }>(() => [url, "open"], 3);
      const latest = MIGRATIONS.at(-1)!.version;
      assert.deepEqual(results.map((r) => r.schemaVersion), [latest, latest, latest]);
      assert.deepEqual((await rawSql(url, "select version from schema_migrations order by version")).map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
    });

    test("instances consuming the same nonces at once: each nonce is won exactly once", async () => {
      const url = await backend.newUrl();
      const s = await openStore(url);
      const nonces = await Promise.all(Array.from({ length: 200 }, () => s.nonces.issue({ at: Date.now(), purpose: "attest", ttlMs: 600_000 })));
      await s.close();
      const list = nonces.map((n) => n.value.toString("hex"));
      // opposite orders, so the two meet in the middle and contend there
      const results = await race<{ won: string[]; codes: Record<string, number> }>((i) => [url, "consume", "attest", (i ? [...list].reverse() : list).join(",")]);
      const won = results.flatMap((r) => r.won);
      assert.equal(won.length, 200);
      assert.deepEqual(new Set(won), new Set(list));
      for (const r of results) assert.deepEqual(Object.keys(r.codes).filter((c) => c !== "ERR_NONCE_REUSED"), []);
    });

    test("instances appending audit entries at once each get distinct seqs, and all verify", async () => {
      const url = await backend.newUrl();
      const results = await race<{ seqs: number[] }>((i) => [url, "append", "100", `instance-${i}`]);
      const seqs = results.flatMap((r) => r.seqs).sort((a, b) => a - b);
      assert.deepEqual(seqs, Array.from({ length: 200 }, (_, i) => i + 1));
      const s = await openStore(url);
      try {
        const v = await s.audit.verify();
        assert.equal(v.ok, true, v.reason ?? "");
        assert.equal(v.verified, 200);
        assert.equal((await s.audit.list({ actor: "instance-1", limit: 1000 })).length, 100);
      } finally {
        await s.close();
      }
    });

    test("a query waiting on a connection its own transaction holds fails with ERR_STORE_BUSY, not a hang; nothing is lost", async () => {
      const url = await backend.newUrl();
      const s = await openStore(url, { connectionWaitMs: 300, poolSize: 1 });
      try {
        await s.audit.append({ at: Date.now(), actor: "t", action: "before", outcome: "success", details: {} });
        // the mistake the guard exists for: the outer store used inside a transaction
        const wedged = s.transaction(async (tx) => {
          await tx.audit.append({ at: Date.now(), actor: "t", action: "inside", outcome: "success", details: {} });
          await s.audit.head();
        });
        await assert.rejects(wedged, (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_STORE_BUSY" && e.details?.waitedMs === 300);
        // rolled back, and the connection serves again
        assert.deepEqual((await s.audit.list({ limit: 10 })).map((e) => e.action), ["before"]);
        assert.equal((await s.audit.verify()).ok, true);
      } finally {
        await s.close();
      }
    });

    if (name === "postgres") {
      test("PostgreSQL ends a session left idle inside a transaction, releasing its locks; the pool reconnects", async () => {
        const url = await backend.newUrl();
        const s = await openStore(url, { idleInTransactionMs: 200 });
        const other = await openStore(url);
        try {
          const stuck = s.transaction(async (tx) => {
            await tx.audit.append({ at: Date.now(), actor: "t", action: "stuck", outcome: "success", details: {} });
            await new Promise((r) => setTimeout(r, 1000));
            await tx.audit.head();
          });
          await assert.rejects(stuck);
          // the audit head lock it held is free again: another pool appends
          await other.audit.append({ at: Date.now(), actor: "t", action: "after", outcome: "success", details: {} });
          await s.audit.append({ at: Date.now(), actor: "t", action: "again", outcome: "success", details: {} });
          assert.deepEqual((await other.audit.list({ limit: 10 })).map((e) => e.action).sort(), ["after", "again"]);
        } finally {
          await Promise.all([s.close(), other.close()]);
        }
      });

      test("two pools in one process appending audit entries at once", async () => {
        const url = await backend.newUrl();
        const [a, b] = await Promise.all([openStore(url), openStore(url)]);
        try {
          await Promise.all(
            Array.from({ length: 40 }, (_, i) => [a, b][i % 2].audit.append({ at: Date.now(), actor: `pool-${i % 2}`, action: "test", outcome: "success", details: { i } })),
          );
          const v = await b.audit.verify();
          assert.deepEqual([v.ok, v.verified], [true, 40]);
        } finally {
          await Promise.all([a.close(), b.close()]);
        }
      });
    }
  });
}
