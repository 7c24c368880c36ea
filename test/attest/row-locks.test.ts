/**
 * #16: on PostgreSQL, a transaction holding one host's rows stalls that host only. Another host's
 * attestation runs to completion meanwhile (no lock every attestation takes, the audit log included);
 * the held host's own attestation waits on the lock and completes once it is released.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { BACKENDS, type Backend } from "../helpers/store.js";
import { addFleetBaseline, evidenceJson, preQuotes, seedHosts, softHost } from "../helpers/software-fleet.js";

let backend: Backend;
let url: string;
let store: Store;
let app: FastifyInstance;
before(async () => {
  backend = await BACKENDS[1][1]();
  url = await backend.newUrl();
  store = await openStore(url);
  app = await buildApp({ store, auditWitnessMs: 0, auditCheckpointMs: 0, attest: { sweepMs: 0 } });
});
after(async () => {
  await app.close();
  await store.close();
  await backend.close();
});

const attest = (body: string) => app.inject({ method: "POST", url: "/v1/attestations", payload: body, headers: { "content-type": "application/json" } });

/** Waits until some session waits on a lock (pg_stat_activity), the condition for "stalled". */
async function someoneWaitsOnALock(c: pg.Client): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    const r = await c.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
    if (r.rows[0].n > 0) return;
    await sleep(10);
  }
  throw new Error("no session ever waited on a lock");
}

test("a transaction holding host A's row does not stall host B's attestation; A's waits for it", async () => {
  const [a, b] = [softHost("row-lock-a"), softHost("row-lock-b")];
  await addFleetBaseline(store);
  await seedHosts(store, [a, b]);
  const [[qa], [qb]] = await preQuotes(store, [a, b], 1);
  // warm up what the first attestation creates once (the token signing key)
  const [[warm]] = await preQuotes(store, [b], 1);
  assert.equal((await attest(evidenceJson(warm))).json().verdict, "pass");

  const holder = new pg.Client({ connectionString: url });
  const watcher = new pg.Client({ connectionString: url });
  await Promise.all([holder.connect(), watcher.connect()]);
  try {
    await holder.query("begin");
    await holder.query("select * from hosts where name = $1 for update", [a.name]);
    const stalled = attest(evidenceJson(qa));
    await someoneWaitsOnALock(watcher);

    const other = await attest(evidenceJson(qb));
    assert.equal(other.statusCode, 200, other.body);
    assert.equal(other.json().verdict, "pass");

    await holder.query("commit");
    const held = await stalled;
    assert.equal(held.statusCode, 200, held.body);
    assert.equal(held.json().verdict, "pass");
  } finally {
    await holder.query("rollback").catch(() => undefined);
    await Promise.all([holder.end(), watcher.end()]);
  }
});
