/** Group commit: transactions requested together share one SQLite transaction, each in its own savepoint; same results on PostgreSQL. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { openStore } from "../../src/store/index.js";
import { BACKENDS, type Backend } from "../helpers/store.js";

for (const [name, make] of BACKENDS) {
  describe(`grouped transactions on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    test("one member that throws is rolled back alone; a nonce consumed twice in one group is won once", async () => {
      const store = await openStore(await backend.newUrl());
      try {
        const nonce = await store.nonces.issue({ at: Date.now(), purpose: "t", ttlMs: 60_000 });
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) =>
            store.groupedTransaction(async (tx) => {
              await tx.audit.append({ at: Date.now(), actor: "test", action: `member.${i}`, outcome: "success" });
              if (i === 2) throw new Error("member 2 fails after writing");
              if (i >= 4) await tx.nonces.consume({ at: Date.now(), value: nonce.value, purpose: "t" });
              return i;
            }),
          ),
        );
        const outcome = results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as { code?: string; message: string }).code ?? r.reason.message));
        assert.deepEqual(outcome.slice(0, 4), [0, 1, "member 2 fails after writing", 3]);
        // PostgreSQL runs them concurrently: either consumer may win, exactly one does
        const winner = outcome[4] === 4 ? 4 : 5;
        assert.deepEqual(outcome.slice(4).sort(), [winner, "ERR_NONCE_REUSED"].sort());
        const actions = (await store.audit.list()).map((e) => e.action).sort();
        assert.deepEqual(actions, ["member.0", "member.1", "member.3", `member.${winner}`]);
        assert.equal((await store.audit.verify()).ok, true);
      } finally {
        await store.close();
      }
    });
  });
}
