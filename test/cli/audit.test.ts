import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { openStore } from "../../src/store/index.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";

const BIN = join(import.meta.dirname, "../../bin/tpmtrust.js");

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function seed(url: string): Promise<void> {
  const s = await openStore(url);
  for (let i = 0; i < 3; i++) await s.audit.append({ at: Date.now(), actor: "admin:1", action: "host.add", subject: `h${i}`, outcome: "success" });
  await s.close();
}

for (const [name, make] of BACKENDS) {
  describe(`tpmtrust audit verify on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    test("exit 0 for an intact chain, 1 with the first bad seq once an entry is deleted", async () => {
      const url = await backend.newUrl();
      await seed(url);
      const ok = cli(["audit", "verify", "--db", url]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /^audit chain intact: 3 entries, head seq 3, head hash [0-9a-f]{64}\n$/);

      await rawSql(url, "delete from audit where seq = 2");
      const bad = cli(["audit", "verify", "--db", url, "--json"]);
      assert.equal(bad.status, 1);
      const b = JSON.parse(bad.stdout);
      assert.deepEqual([b.ok, b.code, b.firstBadSeq, b.problem, b.verified, b.headSeq], [false, "ERR_AUDIT_CHAIN_BROKEN", 2, "gap", 1, 3]);
    });

    test("--anchor: a tail cut off together with the head row verifies alone, but not against the head kept from before", async () => {
      const url = await backend.newUrl();
      await seed(url);
      const ok = cli(["audit", "verify", "--db", url]);
      assert.equal(ok.status, 0, ok.stderr);
      const [, seq, hash] = /head seq (\d+), head hash ([0-9a-f]{64})/.exec(ok.stdout)!;
      assert.match(ok.stderr, new RegExp(`keep ${seq}:${hash} outside the database`));
      assert.equal(cli(["audit", "verify", "--db", url, "--anchor", `${seq}:${hash.toUpperCase()}`]).status, 0);

      const [second] = await rawSql(url, "select seq, hash from audit where seq = 2");
      await rawSql(url, "delete from audit where seq = 3");
      await rawSql(url, `update audit_head set seq = 2, hash = '${second.hash}' where id = 1`);
      assert.equal(cli(["audit", "verify", "--db", url]).status, 0, "the database alone cannot tell");
      const bad = cli(["audit", "verify", "--db", url, "--anchor", `${seq}:${hash}`, "--json"]);
      assert.equal(bad.status, 1);
      const b = JSON.parse(bad.stdout);
      assert.deepEqual([b.ok, b.problem, b.firstBadSeq, b.verified], [false, "anchor", 3, 2]);

      const usage = cli(["audit", "verify", "--db", url, "--anchor", "3-abc"]);
      assert.equal(usage.status, 2);
      assert.match(usage.stderr, /ERR_USAGE: --anchor 3-abc: expected SEQ:HASH/);
    });
  });
}

test("audit verify uses $TPMTRUST_DB without --db and refuses a missing database file (exit 2)", async () => {
  const sqlite = await BACKENDS[0][1]();
  try {
    const url = await sqlite.newUrl();
    await seed(url);
    const ok = cli(["audit", "verify", "--json"], { TPMTRUST_DB: url });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).verified, 3);
    await rawSql(url, "update audit set subject = 'h9' where seq = 3");
    const bad = cli(["audit", "verify"], { TPMTRUST_DB: url });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^error ERR_AUDIT_CHAIN_BROKEN: audit chain broken at seq 3 \(hash\)/);
    const missing = cli(["audit", "verify", "--db", url + ".nope"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^error ERR_IO: no database at /);
  } finally {
    await sqlite.close();
  }
});
