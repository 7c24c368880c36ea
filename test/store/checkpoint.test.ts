/** SQLite WAL checkpoints from a background thread (tpmtrust serve): data reaches the main file without the serving connection checkpointing. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";

test("a store opened with backgroundCheckpointMs moves committed pages into the database file; close stops the thread", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ckpt-"));
  try {
    const db = join(dir, "t.db");
    const store = await openStore(db, { backgroundCheckpointMs: 20 });
    const before = statSync(db).size;
    // ~1 MB of audit entries: far below the serving connection's own checkpoint threshold (10,000 pages)
    await store.transaction(async (tx) => {
      for (let i = 0; i < 500; i++) await tx.audit.append({ at: Date.now(), actor: "test", action: "fill", outcome: "success", details: { pad: "x".repeat(2000), i } });
    });
    const deadline = Date.now() + 20_000;
    while (statSync(db).size < before + 1_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(statSync(db).size >= before + 1_000_000, `database file ${statSync(db).size} bytes, was ${before}`);
    assert.equal((await store.audit.verify()).verified, 500);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
