import { test } from "node:test";
import assert from "node:assert/strict";
import { BACKENDS, rawSql } from "../helpers/store.js";
import { attestConfig } from "../../src/attest/config.js";
import { checkpointAudit } from "../../src/tokens/audit.js";
import { auditCliSuite, cli, seed, withStore } from "./audit-cases.js";

test("a malformed --anchor is a usage error (exit 2)", async () => {
  const usage = await cli(["audit", "verify", "--anchor", "3-abc"]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /ERR_USAGE: --anchor 3-abc: expected SEQ:HASH/);
});

auditCliSuite(BACKENDS[0]);

test("audit verify uses $TPMTRUST_DB without --db and refuses a missing database file (exit 2)", async () => {
  const sqlite = await BACKENDS[0][1]();
  try {
    const url = await sqlite.newUrl();
    await seed(url);
    await withStore(url, (s) => checkpointAudit(s, attestConfig({}), Date.now()));
    const ok = await cli(["audit", "verify", "--json"], { TPMTRUST_DB: url });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).verified, 4);
    await rawSql(url, "update audit set subject = 'h9' where seq = 3");
    const bad = await cli(["audit", "verify"], { TPMTRUST_DB: url });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^error ERR_AUDIT_CHAIN_BROKEN: audit log broken at seq 3 \(hash\)/);
    const missing = await cli(["audit", "verify", "--db", url + ".nope"]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^error ERR_IO: no database at /);
  } finally {
    await sqlite.close();
  }
});
