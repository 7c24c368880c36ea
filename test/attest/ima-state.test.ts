/**
 * IMA verification state per host and boot lives in the database (issue 17): an increment verified
 * at one service instance is continued at another on the same PostgreSQL, a restarted service on
 * SQLite continues where it was, a new boot (resetCount) or an increment that does not replay starts
 * over from entry 0, and a state written meanwhile by another attestation of the host is never
 * overwritten by one judged from the older state. Real service over HTTP, software hosts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attest } from "../../src/attest/attest.js";
import { attestConfig } from "../../src/attest/config.js";
import type { EvidenceBody } from "../../src/attest/evidence.js";
import { ImaTracker } from "../../src/attest/ima.js";
import { JudgementCache } from "../../src/attest/judge.js";
import { quoteVerifier } from "../../src/attest/quote-verifier.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import type { Store } from "../../src/store/index.js";
import { addImaClass, IMA_BOOT, IMA_LATER, imaEvidence, imaEvil, imaHost, imaList, type ImaRound } from "../helpers/ima-fleet.js";
import { startPostgres, type PgCluster } from "../helpers/postgres.js";
import type { SoftHost } from "../helpers/software-fleet.js";

const CLASS = "ima-state";
const dir = mkdtempSync(join(tmpdir(), "tpmtrust-ima-state-"));
let servers = 0;

async function serve(db: string): Promise<RunningServer> {
  return startServer({ db, listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, `admin-${++servers}`), attest: { sweepMs: 0 } });
}

async function call(url: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

async function challenge(s: RunningServer, h: SoftHost): Promise<Buffer> {
  const c = await call(s.url, "POST", "/v1/attestations/challenge", { akNameHex: h.akName.toString("hex") });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  return Buffer.from(c.body.nonceHex, "hex");
}

/** One attestation at `s` with a fresh nonce from `s`. */
async function round(s: RunningServer, h: SoftHost, o: ImaRound): Promise<{ status: number; body: any }> {
  return call(s.url, "POST", "/v1/attestations", imaEvidence(h, await challenge(s, h), o));
}

/** The admin token the first start on a database wrote. */
const adminOf = (s: RunningServer) => readFileSync(s.adminTokenFile!, "utf8").trim();
const summary = (r: { body: any }) => [r.body.verdict, r.body.code, r.body.ima?.covered, r.body.ima?.entriesVerified];

after(() => rmSync(dir, { recursive: true, force: true }));

describe("two service instances on one PostgreSQL", () => {
  let pg: PgCluster;
  let a: RunningServer;
  let b: RunningServer;
  let admin: string;
  before(async () => {
    pg = await startPostgres();
    a = await serve(pg.url);
    admin = adminOf(a);
    b = await serve(pg.url);
    await addImaClass(a.store, CLASS);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await pg?.stop();
  });

  test("the whole list at A, the increments at B then A again are verified incrementally; the host object shows the state", async () => {
    const h = await imaHost(a.store, "pg-01", CLASS);
    const r1 = await round(a, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 });
    assert.deepEqual(summary(r1), ["pass", null, IMA_BOOT.length, IMA_BOOT.length], JSON.stringify(r1.body).slice(0, 600));
    // B never saw this host: it continues from the state A stored, not from entry 0
    const one = [...IMA_BOOT, IMA_LATER[0]];
    const r2 = await round(b, h, { extended: one, sent: imaList([IMA_LATER[0]]), startIndex: IMA_BOOT.length });
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    assert.deepEqual(summary(r2), ["pass", null, 1, IMA_BOOT.length + 1]);
    // A's own copy is older than the row B wrote: A reads the row, not its cache
    const two = [...one, IMA_LATER[1]];
    const r3 = await round(a, h, { extended: two, sent: imaList([IMA_LATER[1]]), startIndex: one.length });
    assert.deepEqual(summary(r3), ["pass", null, 1, two.length], JSON.stringify(r3.body).slice(0, 600));
    const evil = imaEvil("/usr/bin/evil");
    const three = [...two, evil];
    const r4 = await round(b, h, { extended: three, sent: imaList([evil]), startIndex: two.length });
    assert.deepEqual(summary(r4), ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED", 1, three.length]);
    // nothing new, at the other instance: still failing in this boot
    const r5 = await round(a, h, { extended: three, sent: Buffer.alloc(0), startIndex: three.length });
    assert.deepEqual(summary(r5), ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED", 0, three.length]);
    for (const s of [a, b]) {
      const host = await call(s.url, "GET", "/v1/hosts/pg-01", undefined, admin);
      assert.equal(host.status, 200);
      const { updatedAt, pcr10, ...ima } = host.body.ima;
      assert.ok(updatedAt > 0 && pcr10.sha256.length === 64, JSON.stringify(host.body.ima));
      assert.deepEqual(ima, {
        resetCount: 7,
        entriesVerified: three.length,
        lastVerifiedIndex: three.length - 1,
        failures: 1,
        lastFailure: { index: two.length, path: "/usr/bin/evil", template: "ima-ng", digest: `sha256:${evil.templateData.subarray(4 + 8, 4 + 8 + 32).toString("hex")}`, code: "ERR_IMA_DIGEST_NOT_ALLOWED", reason: "path is not in the policy" },
      });
    }
  });

  test("a runtime policy is read and compiled once per version, never per check: later increments at either instance do not read it", async () => {
    const h = await imaHost(a.store, "pg-once", CLASS);
    assert.equal((await round(a, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).body.verdict, "pass");
    const reads: string[] = [];
    const restore = [a, b].map((s) => {
      const getById = s.store.policies.getById;
      s.store.policies.getById = (id: string) => (reads.push(id), getById(id));
      return () => (s.store.policies.getById = getById);
    });
    try {
      let extended = IMA_BOOT;
      for (const [i, s] of [a, b, a, b].entries()) {
        const next = [...extended, IMA_LATER[i % IMA_LATER.length]];
        assert.deepEqual(summary(await round(s, h, { extended: next, sent: imaList(next.slice(extended.length)), startIndex: extended.length })), ["pass", null, 1, next.length]);
        extended = next;
      }
    } finally {
      restore.forEach((r) => r());
    }
    assert.deepEqual(reads, []);
  });

  test("attack: an attestation judged from an older state cannot overwrite the state another one stored meanwhile (it is asked to resend from 0)", async () => {
    const h = await imaHost(a.store, "pg-race", CLASS);
    assert.equal((await round(a, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).body.verdict, "pass");
    // the slow attestation reads the state, then waits until the other one has stored its verdict
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let loaded!: () => void;
    const hasLoaded = new Promise<void>((r) => (loaded = r));
    const slowStore = Object.create(b.store, {
      imaState: {
        value: {
          ...b.store.imaState,
          get: async (...args: Parameters<Store["imaState"]["get"]>) => {
            const r = await b.store.imaState.get(...args);
            loaded();
            await gate;
            return r;
          },
        },
      },
    }) as Store;
    const deps = (store: Store) => ({ store, cfg: attestConfig(), now: Date.now, judgements: new JudgementCache(10), quotes: quoteVerifier(0), ima: new ImaTracker() });
    const evil = imaEvil("/usr/bin/raced");
    const evilRound = { extended: [...IMA_BOOT, evil], sent: imaList([evil]), startIndex: IMA_BOOT.length };
    const evilBody = imaEvidence(h, await challenge(a, h), evilRound) as unknown as EvidenceBody;
    const slow = attest(deps(slowStore), evilBody).then(
      () => assert.fail("the verdict judged from the older state was recorded"),
      (e: { code?: string; details?: { fromIndex?: number } }) => e,
    );
    await hasLoaded;
    const good = await round(a, h, { extended: [...IMA_BOOT, IMA_LATER[0]], sent: imaList([IMA_LATER[0]]), startIndex: IMA_BOOT.length });
    assert.deepEqual(summary(good), ["pass", null, 1, IMA_BOOT.length + 1]);
    release();
    const refused = await slow;
    assert.deepEqual([refused.code, refused.details?.fromIndex], ["ERR_IMA_LIST_REQUIRED", 0]);
    const stored = await a.store.imaState.get("pg-race");
    assert.equal(stored?.nextIndex, IMA_BOOT.length + 1, "the other attestation's state stands");
    // the nonce was not spent: the whole list with it is judged, and the file outside the policy fails the host
    const again = await attest(deps(b.store), { ...evilBody, ima: { startIndex: 0, list: imaList(evilRound.extended).toString("base64") } } as EvidenceBody);
    assert.deepEqual([again.verdict, again.code, again.ima?.entriesVerified], ["fail", "ERR_IMA_DIGEST_NOT_ALLOWED", IMA_BOOT.length + 1]);
  });
});

describe("one service on SQLite", () => {
  const db = join(dir, "tpmtrust.db");
  let s: RunningServer;
  let admin: string;
  before(async () => {
    s = await serve(db);
    admin = adminOf(s);
    await addImaClass(s.store, CLASS);
  });
  after(() => s?.close());

  test("a restarted service continues from the stored state", async () => {
    const h = await imaHost(s.store, "sqlite-01", CLASS);
    assert.deepEqual(summary(await round(s, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })), ["pass", null, IMA_BOOT.length, IMA_BOOT.length]);
    await s.close();
    s = await serve(db);
    const r = await round(s, h, { extended: [...IMA_BOOT, IMA_LATER[0]], sent: imaList([IMA_LATER[0]]), startIndex: IMA_BOOT.length });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(summary(r), ["pass", null, 1, IMA_BOOT.length + 1]);
  });

  test("a new boot starts over: the increment is refused with fromIndex 0, the new boot's list from 0 is verified", async () => {
    const h = await imaHost(s.store, "sqlite-reboot", CLASS);
    assert.equal((await round(s, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).body.verdict, "pass");
    const boot = [...IMA_BOOT.slice(0, 3), IMA_LATER[2]];
    const nonce = await challenge(s, h);
    const cont = await call(s.url, "POST", "/v1/attestations", imaEvidence(h, nonce, { extended: boot, sent: imaList([IMA_LATER[2]]), startIndex: 3, resetCount: 8 }));
    assert.deepEqual([cont.status, cont.body.code, cont.body.details?.fromIndex], [422, "ERR_IMA_LIST_REQUIRED", 0]);
    // the same nonce (not spent) with the new boot's list from entry 0
    const whole = await call(s.url, "POST", "/v1/attestations", imaEvidence(h, nonce, { extended: boot, sent: imaList(boot), startIndex: 0, resetCount: 8 }));
    assert.deepEqual(summary(whole), ["pass", null, boot.length, boot.length]);
    const host = await call(s.url, "GET", "/v1/hosts/sqlite-reboot", undefined, admin);
    assert.deepEqual([host.body.ima.resetCount, host.body.ima.entriesVerified], [8, boot.length]);
  });

  test("an increment that does not replay from the stored PCR 10 starts over from entry 0", async () => {
    const h = await imaHost(s.store, "sqlite-mismatch", CLASS);
    assert.equal((await round(s, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).body.verdict, "pass");
    // PCR 10 was extended with IMA_LATER[0], the increment claims IMA_LATER[1]
    const extended = [...IMA_BOOT, IMA_LATER[0]];
    const nonce = await challenge(s, h);
    const bad = await call(s.url, "POST", "/v1/attestations", imaEvidence(h, nonce, { extended, sent: imaList([IMA_LATER[1]]), startIndex: IMA_BOOT.length }));
    assert.deepEqual([bad.status, bad.body.code, bad.body.details?.fromIndex], [422, "ERR_IMA_LIST_REQUIRED", 0]);
    const whole = await call(s.url, "POST", "/v1/attestations", imaEvidence(h, nonce, { extended, sent: imaList(extended), startIndex: 0 }));
    assert.deepEqual(summary(whole), ["pass", null, extended.length, extended.length]);
  });

  test("a list that does not replay from entry 0 fails the host, and its state starts over showing why", async () => {
    const h = await imaHost(s.store, "sqlite-forged", CLASS);
    assert.equal((await round(s, h, { extended: IMA_BOOT, sent: imaList(IMA_BOOT), startIndex: 0 })).body.verdict, "pass");
    const swapped = [IMA_BOOT[0], IMA_BOOT[2], IMA_BOOT[1], ...IMA_BOOT.slice(3)];
    const r = await round(s, h, { extended: IMA_BOOT, sent: imaList(swapped), startIndex: 0 });
    assert.deepEqual([r.body.verdict, r.body.code], ["fail", "ERR_IMA_REPLAY_MISMATCH"]);
    const ima = (await call(s.url, "GET", "/v1/hosts/sqlite-forged", undefined, admin)).body.ima;
    assert.deepEqual([ima.entriesVerified, ima.lastVerifiedIndex, ima.lastFailure.code, ima.lastFailure.index], [0, null, "ERR_IMA_REPLAY_MISMATCH", 0]);
    // an increment after the rejected list is not taken as continuing anything
    const next = await round(s, h, { extended: [...IMA_BOOT, IMA_LATER[0]], sent: imaList([IMA_LATER[0]]), startIndex: IMA_BOOT.length });
    assert.deepEqual([next.body.code, next.body.details?.fromIndex], ["ERR_IMA_LIST_REQUIRED", 0]);
  });
});
