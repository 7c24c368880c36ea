/**
 * Continuous attestation and what hangs off it: two service instances on one PostgreSQL sharing
 * nonces, silent hosts turning unhealthy after their deadline with signed webhook notifications
 * (retried) and revoked tokens, concurrent sweepers reporting a transition once, signing key rotation.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { openStore } from "../../src/store/index.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { attestConfig } from "../../src/attest/config.js";
import { sweepSilentHosts } from "../../src/attest/health.js";
import { jwks, signToken, verifyAttestationToken } from "../../src/tokens/tokens.js";
import { BACKENDS, type Backend } from "../helpers/store.js";
import { startPostgres, type PgCluster } from "../helpers/postgres.js";
import { addHost, attestOnce, challenge, evidence, postJson, readLog, serveAttestation, type Service, startTpmHost, type TpmHost } from "../helpers/attest-host.js";

const RHEL = "rhel8-gce-uefi.bin";


async function withBaseline(s: Service, hardwareClass: string): Promise<void> {
  const document = learnBaseline("gce", [parseEventLog(readLog(RHEL))], [0, 1, 2, 3, 4, 5, 6, 7]);
  const r = await postJson(`${s.url}/v1/policies`, { kind: "baseline", name: "gce", hardwareClass, document }, { authorization: `Bearer ${s.admin}` });
  assert.equal(r.status, 201);
}

interface Received {
  body: string;
  signature: string | undefined;
  event: string | undefined;
}

/** A webhook receiver on 127.0.0.1 that answers 503 to the first `failFirst` requests. */
async function receiver(failFirst: number): Promise<{ url: string; received: Received[]; next(pred: (r: Received) => boolean): Promise<Received>; close(): Promise<void> }> {
  const received: Received[] = [];
  const waiting: { pred: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];
  let seen = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (seen++ < failFirst) {
        res.writeHead(503).end();
        return;
      }
      const r = { body: Buffer.concat(chunks).toString("utf8"), signature: req.headers["x-tpmtrust-signature"] as string | undefined, event: req.headers["x-tpmtrust-event"] as string | undefined };
      received.push(r);
      res.writeHead(204).end();
      for (const w of waiting.filter((x) => x.pred(r))) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(r);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    next: (pred) => {
      const done = received.find(pred);
      return done ? Promise.resolve(done) : new Promise((resolve) => waiting.push({ pred, resolve }));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

let host: TpmHost;
before(async () => {
  host = await startTpmHost({ logFile: RHEL });
});
after(() => host?.close());

describe("two service instances on one PostgreSQL", () => {
  let pgc: PgCluster;
  before(async () => {
    pgc = await startPostgres();
  });
  after(() => pgc.stop());

  test("a nonce issued by one instance is consumed through the other, once", async () => {
    const db = await pgc.createDatabase();
    const a = await serveAttestation(db);
    const b = await serveAttestation(db);
    try {
      await addHost(a.store, host, { name: "pg-1", hardwareClass: "gce" });
      await withBaseline(a, "gce");
      const c = await challenge(a.url, host);
      const e = await evidence(host, c);
      const r = await postJson(`${b.url}/v1/attestations`, e);
      assert.equal(r.status, 200);
      assert.equal(r.body.verdict, "pass");
      const again = await postJson(`${a.url}/v1/attestations`, e);
      assert.equal(again.body.code, "ERR_NONCE_REUSED");
      // a token signed by instance b verifies with instance a's JWKS
      const kid = JSON.parse(Buffer.from(r.body.token.split(".")[0], "base64url").toString()).kid;
      const keys = (await (await fetch(`${a.url}/.well-known/jwks.json`)).json()).keys;
      assert.ok(keys.some((k: { kid: string }) => k.kid === kid));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("concurrent sweepers report a silent host's transition exactly once", async () => {
    const db = await pgc.createDatabase();
    const stores = [await openStore(db), await openStore(db), await openStore(db)];
    try {
      const [s] = stores;
      await addHost(s, host, { name: "silent-pg", hardwareClass: "gce" });
      await s.hosts.attested("silent-pg", { health: "healthy", at: 1000, deadlineAt: 2000 });
      await s.webhooks.subscribe({ at: Date.now(), url: "http://127.0.0.1:9/none", secret: "0123456789abcdef" });
      const changes = (await Promise.all(stores.map((x) => sweepSilentHosts(x, () => 5000)))).flat();
      assert.equal(changes.length, 1);
      assert.deepEqual({ ...changes[0] }, { host: "silent-pg", hardwareClass: "gce", previous: "healthy", health: "unhealthy", reason: "ERR_HOST_SILENT", at: 5000 });
      assert.equal((await s.webhooks.listDeliveries()).length, 1);
      assert.equal((await s.audit.list({ action: "host.health" })).length, 1);
      assert.equal((await s.hosts.get("silent-pg"))?.health, "unhealthy");
    } finally {
      for (const x of stores) await x.close();
    }
  });
});

for (const [dialect, make] of BACKENDS) {
  describe(`continuous attestation on ${dialect}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    test("a silent host turns unhealthy after its deadline: signed webhook notifications (retried), token revoked", async () => {
      let offset = 0;
      const hook = await receiver(1);
      const s = await serveAttestation(await backend.newUrl(), { now: () => Date.now() + offset, attest: { intervalMs: 1000, grace: 2, sweepMs: 20, webhookBackoffMs: 10 } });
      try {
        await addHost(s.store, host, { name: "quiet", hardwareClass: "gce" });
        await withBaseline(s, "gce");
        const secret = "s3cret-for-the-webhook";
        const sub = await postJson(`${s.url}/v1/webhooks`, { url: hook.url, secret }, { authorization: `Bearer ${s.admin}` });
        assert.equal(sub.status, 201);
        assert.equal(sub.body.secret, undefined);

        const r = await attestOnce(s.url, host);
        assert.equal(r.body.verdict, "pass");
        const healthy = JSON.parse((await hook.next((x) => JSON.parse(x.body).data.health === "healthy")).body);
        assert.deepEqual([healthy.event, healthy.data.host, healthy.data.previous], ["host.health", "quiet", "unknown"]);

        offset += 2001; // past interval × grace
        const note = await hook.next((x) => JSON.parse(x.body).data.health === "unhealthy");
        const body = JSON.parse(note.body);
        assert.equal(note.event, "host.health");
        assert.equal(note.signature, `sha256=${createHmac("sha256", secret).update(note.body).digest("hex")}`);
        assert.deepEqual([body.data.host, body.data.previous, body.data.health, body.data.reason], ["quiet", "healthy", "unhealthy", "ERR_HOST_SILENT"]);
        assert.ok(hook.received.every((x) => x.signature === `sha256=${createHmac("sha256", secret).update(x.body).digest("hex")}`));

        await assert.rejects(verifyAttestationToken(s.store, r.body.token, Date.now() + offset), { code: "ERR_TOKEN_REVOKED" });
        const h = await s.store.hosts.get("quiet");
        assert.deepEqual([h?.health, h?.healthReason], ["unhealthy", "ERR_HOST_SILENT"]);

        const deliveries = await (await fetch(`${s.url}/v1/webhooks/${sub.body.id}/deliveries`, { headers: { authorization: `Bearer ${s.admin}` } })).json();
        const first = deliveries.find((d: { id: string }) => d.id === healthy.id);
        assert.deepEqual([first.attempts, first.lastStatus, first.nextAttemptAt], [2, 204, null]);
        assert.ok(first.deliveredAt > 0);

        // attesting again makes it healthy again, and subscribers hear of it
        const back = await attestOnce(s.url, host);
        assert.equal(back.body.verdict, "pass");
        const recovered = JSON.parse((await hook.next((x) => JSON.parse(x.body).data.health === "healthy" && JSON.parse(x.body).data.previous === "unhealthy")).body);
        assert.equal(recovered.data.attestationId, back.body.attestationId);
      } finally {
        await s.close();
        await hook.close();
      }
    });

    test("signing keys rotate; retired keys stay in the JWKS while their tokens may live", async () => {
      const store = await openStore(await backend.newUrl());
      try {
        const cfg = attestConfig({ keyRotationMs: 60_000, tokenTtlMs: 120_000 });
        await addHost(store, host, { name: "rot", hardwareClass: "gce" });
        const claims = { host: "rot", hardwareClass: "gce", policyVersion: "v2", policies: [], pcrDigestHex: "00".repeat(32) };
        const t0 = 1_800_000_000_000;
        const one = await signToken(store, cfg, t0, claims);
        const two = await signToken(store, cfg, t0 + 60_000, claims);
        assert.notEqual(one.kid, two.kid);
        for (const t of [one, two]) await store.tokens.record({ jti: t.jti, hostName: "rot", kid: t.kid, issuedAt: t.issuedAt, expiresAt: t.expiresAt });
        assert.deepEqual((await jwks(store, cfg, t0 + 60_001)).keys.map((k) => k.kid), [two.kid, one.kid]);
        assert.equal((await verifyAttestationToken(store, one.jwt, t0 + 60_001)).claims.sub, "rot");
        await assert.rejects(verifyAttestationToken(store, one.jwt, t0 + 120_001), { code: "ERR_TOKEN_EXPIRED" });
        assert.deepEqual((await jwks(store, cfg, t0 + 180_001)).keys.map((k) => k.kid), [two.kid]);
        await assert.rejects(verifyAttestationToken(store, `${one.jwt.slice(0, -4)}AAAA`, t0 + 1), { code: "ERR_TOKEN_INVALID" });
        assert.deepEqual((await store.audit.list({ action: "token.key.rotate" })).map((e) => e.subject), [one.kid, two.kid]);
      } finally {
        await store.close();
      }
    });
  });
}
