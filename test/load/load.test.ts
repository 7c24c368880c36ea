/**
 * The fleet load run (bench/load.ts) at CI size: 200 software hosts attesting against
 * `tpmtrust serve` on loopback for 5 s, open loop, on SQLite and PostgreSQL. Every answer must be a
 * pass; rates and latencies are reported, never asserted (they belong to `npm run bench`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runLoad } from "../../bench/load.js";

for (const db of ["sqlite", "postgres"] as const) {
  test(`${db}: 200 hosts × 5 s, every attestation answered with a pass`, async (t) => {
    const r = await runLoad({ hosts: 200, seconds: 5, interval: 5, db });
    t.diagnostic(`${r.achievedPerSecond.toFixed(0)} attestations/s, p99 ${r.latencyMs.p99.toFixed(0)} ms`);
    assert.deepEqual(r.firstErrors, []);
    assert.equal(r.errors, 0);
    assert.equal(r.attestations, 200);
  });
}
