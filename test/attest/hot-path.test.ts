/**
 * The attestation hot path, on SQLite and PostgreSQL, with two service instances (stores) on one
 * database: what each instance keeps in memory (a class's policies, EK trust) is invalidated
 * through the database, so a change made through the other instance judges the very next
 * attestation; and the round trips one steady-state attestation costs (counted by the store).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { attest, type AttestDeps } from "../../src/attest/attest.js";
import { attestConfig } from "../../src/attest/config.js";
import { ImaTracker } from "../../src/attest/ima.js";
import { JudgementCache } from "../../src/attest/judge.js";
import { quoteVerifier } from "../../src/attest/quote-verifier.js";
import { addPolicy, removePolicy } from "../../src/attest/policies.js";
import type { EvidenceBody } from "../../src/attest/evidence.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { openStore, type Store } from "../../src/store/index.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { readLog } from "../helpers/attest-host.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";
import { addFleetBaseline, evidenceJson, FLEET_CLASS, preQuotes, seedHosts, softHost, type SoftHost } from "../helpers/software-fleet.js";

// quotes verified on a worker thread, as `serve` does while its event loop is busy
const quotes = quoteVerifier(1, { offload: "always" });
after(() => quotes.close());
const deps = (store: Store): AttestDeps => ({ store, cfg: attestConfig(), now: Date.now, judgements: new JudgementCache(100), quotes, ima: new ImaTracker() });

for (const [dialect, make] of BACKENDS) {
  describe(`attestation hot path on ${dialect}`, () => {
    let backend: Backend;
    let a: Store;
    let b: Store;
    let url: string;
    let host: SoftHost;
    /** the next body of `host`, of the second host (a fresh nonce each) */
    let next: () => EvidenceBody;
    let nextOther: () => EvidenceBody;
    before(async () => {
      backend = await make();
      url = await backend.newUrl();
      a = await openStore(url);
      b = await openStore(url);
      host = softHost("hot-1");
      const other = softHost("hot-2");
      await addFleetBaseline(a);
      await seedHosts(a, [host, other]);
      const [quotes, others] = await preQuotes(a, [host, other], 16);
      next = () => JSON.parse(evidenceJson(quotes.shift()!)) as EvidenceBody;
      nextOther = () => JSON.parse(evidenceJson(others.shift()!)) as EvidenceBody;
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await backend.close();
    });

    test("a policy added or removed through another instance judges the next attestation here", async () => {
      const here = deps(a);
      assert.equal((await attest(here, next())).verdict, "pass");
      assert.equal((await attest(here, next())).verdict, "pass");
      // another machine's baseline for the class, through the other instance
      const other = await addPolicy(b, "test", Date.now(), {
        kind: "baseline",
        name: "other",
        hardwareClass: FLEET_CLASS,
        document: learnBaseline("other", [parseEventLog(readLog("laptop-startup-locality3.bin"))], [0, 1, 2, 3, 4, 5, 6, 7]),
      });
      const failed = await attest(here, next());
      assert.equal(failed.verdict, "fail");
      assert.equal(failed.code, "ERR_POLICY_FAILED");
      await removePolicy(b, "test", Date.now(), other.id);
      assert.equal((await attest(here, next())).verdict, "pass");
    });

    test("a steady-state attestation: one read, and on PostgreSQL one statement for the verdict's rows and its audit entry", async () => {
      const here = deps(a);
      await attest(here, next());
      const before = { ...a.stats };
      await attest(here, next());
      const roundTrips = a.stats.roundTrips - before.roundTrips;
      const statements = a.stats.statements - before.statements;
      // PostgreSQL: the AK with the trust and policies versions; the verdict with its audit entry (one statement, no BEGIN/COMMIT)
      assert.deepEqual({ roundTrips, statements }, dialect === "postgres" ? { roundTrips: 2, statements: 2 } : { roundTrips: 11, statements: 7 });
    });

    test("a steady-state verdict whose audit entry cannot be written is not recorded (ERR_AUDIT_WRITE_FAILED) and leaves its nonce unspent", async () => {
      const here = deps(a);
      assert.equal((await attest(here, next())).verdict, "pass");
      const body = next();
      const count = async () => (await a.attestations.listForHost(host.name, { limit: 1000 })).length;
      const recorded = await count();
      const faults: string[] = [];
      const unsubscribe = a.faults.subscribe((f) => f.kind === "audit-append" && faults.push(f.action));
      await rawSql(
        url,
        dialect === "postgres"
          ? "create function audit_down() returns trigger language plpgsql as $$ begin raise exception 'the audit disk is full'; end $$; create trigger audit_down before insert on audit for each row execute function audit_down()"
          : "create trigger audit_down before insert on audit begin select raise(abort, 'the audit disk is full'); end",
      );
      try {
        await assert.rejects(attest(here, body), (e: unknown) => (e as { code?: string }).code === "ERR_AUDIT_WRITE_FAILED");
      } finally {
        unsubscribe();
        await rawSql(url, "drop trigger audit_down" + (dialect === "postgres" ? " on audit" : ""));
      }
      assert.equal(await count(), recorded);
      assert.ok(faults.includes("attestation.verdict"), faults.join());
      assert.equal((await attest(here, body)).verdict, "pass");
    });

    test("replayed evidence records nothing and says ERR_NONCE_REUSED", async () => {
      const here = deps(a);
      const body = next();
      const first = await attest(here, body);
      assert.equal(first.verdict, "pass");
      const count = (await a.attestations.listForHost(host.name, { limit: 1000 })).length;
      await assert.rejects(attest(here, body), (e: unknown) => (e as { code?: string }).code === "ERR_NONCE_REUSED");
      assert.equal((await a.attestations.listForHost(host.name, { limit: 1000 })).length, count);
    });

    test("a health change by another instance while the verdict is written is reported once, not lost", async () => {
      const here = deps(a);
      assert.equal((await attest(here, next())).verdict, "pass");
      const changes: string[] = [];
      here.onHealthChange = (c) => changes.push(`${c.previous}->${c.health}`);
      await b.hosts.setHealth(host.name, { health: "unhealthy", reason: "ERR_HOST_SILENT", at: Date.now() });
      assert.equal((await attest(here, next())).verdict, "pass");
      assert.deepEqual(changes, ["unhealthy->healthy"]);
      assert.equal((await a.hosts.get(host.name))!.health, "healthy");
    });

    if (dialect === "postgres") {
      test("a transaction holding one host's row stalls no other host's attestation; that host's own verdict waits for it and sees the health it left", async () => {
        const here = deps(a);
        assert.equal((await attest(here, next())).verdict, "pass");
        assert.equal((await attest(here, nextOther())).verdict, "pass");
        const changes: string[] = [];
        here.onHealthChange = (c) => changes.push(`${c.host}: ${c.previous}->${c.health}`);
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const holder = b.transaction(async (tx) => {
          await tx.hosts.setHealth(host.name, { health: "unhealthy", reason: "ERR_HOST_SILENT", at: Date.now() });
          locked();
          await held;
        });
        await isLocked;
        try {
          for (let i = 0; i < 3; i++) assert.equal((await attest(here, nextOther())).verdict, "pass");
          const pending = attest(here, next());
          // it read "healthy" (the change is not committed) and now waits for the row
          for (;;) {
            const [w] = await rawSql(url, "select count(*)::int as n from pg_locks where not granted");
            if (Number(w.n) > 0) break;
            await new Promise((r) => setImmediate(r));
          }
          release();
          await holder;
          assert.equal((await pending).verdict, "pass");
        } finally {
          release();
          await holder;
        }
        assert.deepEqual(changes, [`${host.name}: unhealthy->healthy`]);
        assert.equal((await a.hosts.get(host.name))!.health, "healthy");
      });
    }
  });
}
