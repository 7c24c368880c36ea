/** Shared by test/cli/audit.test.ts (SQLite) and audit-postgres.test.ts. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { openStore, type Store } from "../../src/store/index.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";
import { verifyInclusion } from "../../src/crypto/merkle.js";
import { attestConfig } from "../../src/attest/config.js";
import { checkpointAudit, verifyAudit } from "../../src/tokens/audit.js";

const BIN = join(import.meta.dirname, "../../bin/tpmtrust.js");

/** Runs the CLI without blocking the event loop (the test runner's reporter must keep flushing). */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

export async function withStore<T>(url: string, fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await openStore(url);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

export async function seed(url: string): Promise<void> {
  const s = await openStore(url);
  for (let i = 0; i < 3; i++) await s.audit.append({ at: Date.now(), actor: "admin:1", action: "host.add", subject: `h${i}`, outcome: "success" });
  await s.close();
}

/** The `audit verify`/`prove` CLI cases on one backend (one file per backend: each runs many processes). */
export function auditCliSuite([name, make]: (typeof BACKENDS)[number]): void {
  describe(`tpmtrust audit verify on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    test("exit 0 for an intact log, 1 with the first bad seq once an entry is deleted", async () => {
      const url = await backend.newUrl();
      await seed(url);
      const pending = await cli(["audit", "verify", "--db", url]);
      assert.equal(pending.status, 0, pending.stderr);
      assert.match(pending.stdout, /^audit log intact: 3 entries \(3 not yet checkpointed\), tree size 0, root e3b0c442[0-9a-f]{56}, 0 checkpoints\n$/);
      const cp = await cli(["audit", "checkpoint", "--db", url]);
      assert.equal(cp.status, 0, cp.stderr);
      // signing the first checkpoint created the service key, audited as the fourth entry
      assert.match(cp.stdout, /^checkpoint [\w-]+\.[\w-]+\.[\w-]+\ntree size 4, root [0-9a-f]{64}\n$/);
      const ok = await cli(["audit", "verify", "--db", url]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /^audit log intact: 4 entries \(0 not yet checkpointed\), tree size 4, root [0-9a-f]{64}, 1 checkpoints\ncheckpoint \S+\n$/);
      assert.match(ok.stderr, /keep the checkpoint \(or 4:[0-9a-f]{64}\) outside the database/);

      await rawSql(url, "delete from audit where seq = 2");
      const bad = await cli(["audit", "verify", "--db", url, "--json"]);
      assert.equal(bad.status, 1);
      const b = JSON.parse(bad.stdout);
      assert.deepEqual([b.ok, b.code, b.firstBadSeq, b.problem, b.verified, b.treeSize], [false, "ERR_AUDIT_CHAIN_BROKEN", 2, "gap", 1, 0]);
    });

    test("a kept checkpoint (or its SIZE:ROOT as --anchor) exposes a log cut back and re-signed, or rewritten and re-signed", async () => {
      const url = await backend.newUrl();
      await seed(url);
      const kept = await withStore(url, (s) => checkpointAudit(s, attestConfig({}), Date.now()));
      const anchor = `${kept!.treeSize}:${kept!.rootHash}`;
      const ok = await cli(["audit", "verify", "--db", url, "--anchor", anchor.toUpperCase(), "--checkpoint", kept!.signed]);
      assert.equal(ok.status, 0, ok.stderr);

      // whoever holds the database (and so the signing key) cuts the tail, re-integrates and re-signs
      const resign = async () => {
        await rawSql(url, "delete from audit_checkpoints");
        await rawSql(url, "update audit set leaf_index = null, leaf_hash = null");
        await withStore(url, async (s) => {
          await checkpointAudit(s, attestConfig({}), Date.now());
          assert.equal((await verifyAudit(s)).ok, true, "the database alone cannot tell");
        });
      };
      await rawSql(url, "delete from audit where seq = 4");
      await resign();
      for (const keptArg of [["--checkpoint", kept!.signed], ["--anchor", anchor]]) {
        const bad = await cli(["audit", "verify", "--db", url, ...keptArg, "--json"]);
        assert.equal(bad.status, 1, bad.stderr);
        const b = JSON.parse(bad.stdout);
        assert.deepEqual([b.ok, b.problem, b.firstBadSeq, b.verified], [false, "anchor", 4, 3]);
      }

      // … or rewrites the first entry and appends enough to pass the kept size again
      await rawSql(url, "update audit set actor = 'admin:2' where seq = 1");
      await seed(url);
      await resign();
      const rewritten = await cli(["audit", "verify", "--db", url, "--checkpoint", kept!.signed, "--json"]);
      assert.equal(rewritten.status, 1);
      assert.deepEqual(((b) => [b.problem, b.reason])(JSON.parse(rewritten.stdout)), ["anchor", `the log no longer has the kept head ${anchor}: it was rewritten`]);

    });

    test("audit prove SEQ: an inclusion proof that verifies against the checkpoint; an entry not yet checkpointed is refused", async () => {
      const url = await backend.newUrl();
      await seed(url);
      await withStore(url, (s) => checkpointAudit(s, attestConfig({}), Date.now()));
      const p = await cli(["audit", "prove", "2", "--db", url, "--json"]);
      assert.equal(p.status, 0, p.stderr);
      const j = JSON.parse(p.stdout);
      assert.deepEqual([j.seq, j.leafIndex, j.treeSize, j.proof.length], [2, 1, 4, 2]);
      assert.ok(verifyInclusion(j.leafIndex, j.treeSize, Buffer.from(j.leafHash, "hex"), j.proof.map((h: string) => Buffer.from(h, "hex")), Buffer.from(j.rootHash, "hex")));
      await seed(url);
      const pending = await cli(["audit", "prove", "5", "--db", url]);
      assert.equal(pending.status, 1);
      assert.match(pending.stderr, /ERR_AUDIT_NOT_CHECKPOINTED/);
    });
  });
}

