import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { entryLeafHash, openStore, type CheckpointSigner, type Store } from "../../src/store/index.js";
import { MIGRATIONS } from "../../src/store/migrations/index.js";
import { BACKENDS, rawSql, type Backend } from "../helpers/store.js";

const T0 = 1_700_000_000_000;
const ek = (tag: string) => ({ name: Buffer.concat([Buffer.from("000b", "hex"), createHash("sha256").update(tag).digest()]), public: Buffer.from(`pub-${tag}`), cert: null });
const LATEST = MIGRATIONS.at(-1)!.version;
/** The store does not check signatures (src/tokens/audit.ts does): a stand-in signer. */
const SIGN: CheckpointSigner = async () => ({ kid: "test", signed: "x.y.z" });

/** Edits an entry's actor and recomputes its leaf hash, as whoever can write the database can. */
async function rewrite(url: string, seq: number, actor: string): Promise<void> {
  const [r] = await rawSql(url, `select seq, at, actor, action, subject, outcome, details from audit where seq = ${seq}`);
  const f = { seq, at: Number(r.at), actor, action: String(r.action), subject: r.subject === null ? null : String(r.subject), outcome: String(r.outcome), details: String(r.details) };
  await rawSql(url, `update audit set actor = '${actor}', leaf_hash = '${entryLeafHash(f)}' where seq = ${seq}`);
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

for (const [name, make] of BACKENDS) {
  describe(`store on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.close());

    /** A store on a fresh database, closed after `fn`. */
    async function withStore(fn: (s: Store, url: string) => Promise<void>): Promise<void> {
      const url = await backend.newUrl();
      const s = await openStore(url);
      try {
        await fn(s, url);
      } finally {
        await s.close();
      }
    }

    test("migrations create the schema once; reopening is idempotent; a newer schema is refused", async () => {
      const url = await backend.newUrl();
      const a = await openStore(url);
      assert.equal(a.schemaVersion, LATEST);
      assert.equal(a.dialect, name);
      await a.close();
      const b = await openStore(url);
      assert.equal(b.schemaVersion, LATEST);
      await b.close();
      assert.deepEqual((await rawSql(url, "select version from schema_migrations order by version")).map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
      await rawSql(url, "insert into schema_migrations (version, name, applied_at) values (999, 'future', 0)");
      await assert.rejects(openStore(url), (e: unknown) => code("ERR_CONFLICT")(e) && /schema version 999/.test((e as Error).message));
    });

    test("hosts: add with EKs, find by EK, list, update, health transitions, overdue, remove", () =>
      withStore(async (s) => {
        const h = await s.hosts.add({ name: "h1", hardwareClass: "r740", policyVersion: "v2", eks: [ek("rsa"), { ...ek("ecc"), cert: Buffer.from([0x30, 1]) }], tags: ["rack1"], platform: { manufacturer: "IBM" }, trustMethod: "ek-cert", at: T0 });
        assert.equal(h.health, "unknown");
        assert.deepEqual(h.tags, ["rack1"]);
        assert.deepEqual(h.platform, { manufacturer: "IBM" });
        assert.equal(h.eks.length, 2);
        assert.deepEqual(h.eks.find((e) => e.name.equals(ek("ecc").name))?.cert, Buffer.from([0x30, 1]));
        assert.equal((await s.hosts.findByEk(ek("rsa").name))?.name, "h1");
        assert.equal(await s.hosts.findByEk(ek("other").name), undefined);
        await assert.rejects(s.hosts.add({ at: Date.now(), name: "h1", hardwareClass: "x", policyVersion: "v1", eks: [] }), code("ERR_CONFLICT"));
        // an EK owned by h1: the whole add rolls back, h2 does not exist afterwards
        await assert.rejects(s.hosts.add({ at: Date.now(), name: "h2", hardwareClass: "x", policyVersion: "v1", eks: [ek("new"), ek("rsa")] }), code("ERR_CONFLICT"));
        assert.equal(await s.hosts.get("h2"), undefined);
        assert.equal(await s.hosts.findByEk(ek("new").name), undefined);
        await s.hosts.add({ name: "h2", hardwareClass: "dl380", policyVersion: "v1", eks: [ek("h2")], at: T0 });

        assert.deepEqual((await s.hosts.list()).map((x) => x.name), ["h1", "h2"]);
        assert.deepEqual((await s.hosts.list({ hardwareClass: "dl380" })).map((x) => x.name), ["h2"]);
        assert.deepEqual((await s.hosts.list({ limit: 1, offset: 1 })).map((x) => x.name), ["h2"]);

        const u = await s.hosts.update("h1", { deadlineAt: T0 + 100, lastAttestationAt: T0 + 5, tags: ["a", "b"] }, T0 + 5);
        assert.equal(u.deadlineAt, T0 + 100);
        assert.equal(u.updatedAt, T0 + 5);
        assert.deepEqual(u.tags, ["a", "b"]);
        assert.equal(u.hardwareClass, "r740");
        await assert.rejects(s.hosts.update("nope", { tags: [] }, T0), code("ERR_NOT_FOUND"));

        const t1 = await s.hosts.setHealth("h1", { health: "healthy", at: T0 + 6 });
        assert.deepEqual([t1.changed, t1.previous, t1.host.health, t1.host.healthChangedAt], [true, "unknown", "healthy", T0 + 6]);
        const t2 = await s.hosts.setHealth("h1", { health: "healthy", at: T0 + 7 });
        assert.deepEqual([t2.changed, t2.host.healthChangedAt], [false, T0 + 6]);
        await assert.rejects(s.hosts.setHealth("nope", { at: Date.now(), health: "healthy" }), code("ERR_NOT_FOUND"));
        assert.deepEqual(await s.hosts.countByHealth(), { unknown: 1, healthy: 1, unhealthy: 0 });
        assert.deepEqual((await s.hosts.list({ health: "healthy" })).map((x) => x.name), ["h1"]);

        assert.deepEqual((await s.hosts.listOverdue(T0 + 100)).map((x) => x.name), []);
        assert.deepEqual((await s.hosts.listOverdue(T0 + 101)).map((x) => x.name), ["h1"]);
        await s.hosts.setHealth("h1", { health: "unhealthy", reason: "silent", at: T0 + 101 });
        assert.deepEqual((await s.hosts.listOverdue(T0 + 101)).map((x) => x.name), []);
        assert.equal((await s.hosts.get("h1"))?.healthReason, "silent");

        await s.aks.bind({ at: Date.now(), hostName: "h1", name: Buffer.from("ak1"), public: Buffer.from("p") });
        assert.equal(await s.hosts.remove("h1"), true);
        assert.equal(await s.hosts.remove("h1"), false);
        assert.equal(await s.aks.get(Buffer.from("ak1")), undefined, "AKs go with their host");
        assert.equal(await s.hosts.findByEk(ek("rsa").name), undefined, "EKs go with their host");
      }));

    test("aks and credential activations", () =>
      withStore(async (s) => {
        await assert.rejects(s.aks.bind({ at: Date.now(), hostName: "ghost", name: Buffer.from("ak"), public: Buffer.from("p") }), code("ERR_NOT_FOUND"));
        await s.hosts.add({ at: Date.now(), name: "h", hardwareClass: "c", policyVersion: "v2", eks: [ek("h")] });
        const ak = await s.aks.bind({ hostName: "h", name: Buffer.from("ak"), public: Buffer.from("pub"), at: T0 });
        assert.deepEqual(await s.aks.get(Buffer.from("ak")), ak);
        await assert.rejects(s.aks.bind({ at: Date.now(), hostName: "h", name: Buffer.from("ak"), public: Buffer.from("p") }), code("ERR_CONFLICT"));
        await s.aks.setCert(Buffer.from("ak"), Buffer.from([0x30, 0x82]));
        assert.deepEqual((await s.aks.listForHost("h")).map((a) => a.akCert), [Buffer.from([0x30, 0x82])]);
        await assert.rejects(s.aks.setCert(Buffer.from("none"), Buffer.from([1])), code("ERR_NOT_FOUND"));

        const secretHash = createHash("sha256").update("secret").digest();
        await assert.rejects(s.activations.create({ at: Date.now(), hostName: "ghost", akName: Buffer.from("ak2"), akPublic: Buffer.from("p"), ekName: ek("h").name, secretHash, ttlMs: 1000 }), code("ERR_NOT_FOUND"));
        const act = await s.activations.create({ hostName: "h", akName: Buffer.from("ak2"), akPublic: Buffer.from("p"), ekName: ek("h").name, secretHash, ttlMs: 1000, at: T0 });
        assert.deepEqual((await s.activations.getPending(act.id, T0 + 1)).secretHash, secretHash);
        assert.equal(await s.activations.recordFailure(act.id), 1);
        assert.equal(await s.activations.recordFailure(act.id), 2);
        assert.equal(await s.activations.complete(act.id, T0 + 1000), false, "expired at expiresAt");
        assert.equal(await s.activations.complete(act.id, T0 + 2), true);
        assert.equal(await s.activations.complete(act.id, T0 + 3), false, "completes once");
        await assert.rejects(s.activations.getPending(act.id, T0 + 3), code("ERR_NOT_FOUND"));
        await assert.rejects(s.activations.recordFailure("nope"), code("ERR_NOT_FOUND"));
      }));

    test("trust: allow-list is case-insensitive, CA certificates by fingerprint, directories", () =>
      withStore(async (s) => {
        const h = "AB".repeat(32);
        assert.equal(await s.trust.addAllowlist(h, { label: "lab", source: "cli", at: T0 }), true);
        assert.equal(await s.trust.addAllowlist(h.toLowerCase(), { at: Date.now() }), false);
        assert.equal(await s.trust.isAllowlisted("ab".repeat(32)), true);
        assert.equal(await s.trust.isAllowlisted("cd".repeat(32)), false);
        assert.deepEqual(await s.trust.listAllowlist(), [{ ekHash: "ab".repeat(32), label: "lab", source: "cli", addedAt: T0 }]);
        await assert.rejects(s.trust.addAllowlist("xyz", { at: Date.now() }), code("ERR_VALIDATION"));
        assert.equal(await s.trust.removeAllowlist(h), true);
        assert.equal(await s.trust.isAllowlisted(h), false);

        const der = randomBytes(40);
        const r = await s.trust.addCaCert("root", der, "CN=Root", T0);
        assert.equal(r.fingerprint, createHash("sha256").update(der).digest("hex"));
        assert.equal(r.added, true);
        assert.equal((await s.trust.addCaCert("root", der, "CN=Root", T0)).added, false);
        await s.trust.addCaCert("intermediate", randomBytes(30), "CN=Int", T0);
        assert.deepEqual(await s.trust.listCaCerts("root"), [{ fingerprint: r.fingerprint, subject: "CN=Root", der, addedAt: T0 }]);
        assert.deepEqual((await s.trust.listCaCerts("intermediate")).map((c) => c.subject), ["CN=Int"]);
        assert.equal(await s.trust.removeCaCert("root", r.fingerprint.toUpperCase()), true);
        assert.deepEqual(await s.trust.listCaCerts("root"), []);

        assert.equal(await s.trust.addAllowlistDir("/etc/ekpub", T0), true);
        assert.equal(await s.trust.addAllowlistDir("/etc/ekpub", T0), false);
        assert.deepEqual(await s.trust.listAllowlistDirs(), [{ path: "/etc/ekpub", addedAt: T0 }]);
        assert.equal(await s.trust.removeAllowlistDir("/etc/ekpub"), true);
      }));

    test("nonces: single use, bound to purpose and subject, expire", () =>
      withStore(async (s) => {
        const n = await s.nonces.issue({ purpose: "attest", subject: "h1", ttlMs: 1000, at: T0 });
        assert.equal(n.value.length, 32);
        assert.equal(n.expiresAt, T0 + 1000);
        await assert.rejects(s.nonces.consume({ value: n.value, purpose: "certify", subject: "h1", at: T0 + 1 }), code("ERR_NONCE_UNKNOWN"));
        await assert.rejects(s.nonces.consume({ value: n.value, purpose: "attest", subject: "h2", at: T0 + 1 }), code("ERR_NONCE_UNKNOWN"));
        await assert.rejects(s.nonces.consume({ value: n.value, purpose: "attest", at: T0 + 1 }), code("ERR_NONCE_UNKNOWN"));
        await assert.rejects(s.nonces.consume({ value: randomBytes(32), purpose: "attest", subject: "h1", at: T0 + 1 }), code("ERR_NONCE_UNKNOWN"));
        const c = await s.nonces.consume({ value: n.value, purpose: "attest", subject: "h1", at: T0 + 1 });
        assert.equal(c.consumedAt, T0 + 1);
        await assert.rejects(s.nonces.consume({ value: n.value, purpose: "attest", subject: "h1", at: T0 + 2 }), code("ERR_NONCE_REUSED"));

        const e = await s.nonces.issue({ purpose: "attest", ttlMs: 1000, at: T0, bytes: 16 });
        assert.equal(e.value.length, 16);
        await assert.rejects(s.nonces.consume({ value: e.value, purpose: "attest", at: T0 + 1000 }), code("ERR_NONCE_EXPIRED"));
        await assert.rejects(s.nonces.consume({ value: e.value, purpose: "attest", at: T0 + 5000 }), code("ERR_NONCE_EXPIRED"));
        const live = await s.nonces.issue({ purpose: "attest", ttlMs: 10_000, at: T0 });
        assert.equal(await s.nonces.purgeExpired(T0 + 1000), 2);
        await s.nonces.consume({ value: live.value, purpose: "attest", at: T0 + 1001 });
      }));

    test("nonces: two stores consuming the same nonces at once, exactly one wins each", () =>
      withStore(async (a, url) => {
        const b = await openStore(url);
        try {
          const nonces = await Promise.all(Array.from({ length: 50 }, () => a.nonces.issue({ at: Date.now(), purpose: "attest", ttlMs: 60_000 })));
          const results = await Promise.allSettled(nonces.flatMap((n) => [a, b].map((s) => s.nonces.consume({ at: Date.now(), value: n.value, purpose: "attest" }))));
          for (let i = 0; i < nonces.length; i++) {
            const pair = results.slice(2 * i, 2 * i + 2);
            assert.equal(pair.filter((r) => r.status === "fulfilled").length, 1);
            const lost = pair.find((r) => r.status === "rejected") as PromiseRejectedResult;
            assert.equal(lost.reason.code, "ERR_NONCE_REUSED");
          }
        } finally {
          await b.close();
        }
      }));

    test("policies: versions per (kind, name), newest per name, class filter, disable", () =>
      withStore(async (s) => {
        const p1 = await s.policies.put({ kind: "baseline", name: "r740", document: { pcrs: { 0: "aa" } }, hardwareClass: "r740", createdBy: "admin:1", at: T0 });
        const p2 = await s.policies.put({ at: Date.now(), kind: "baseline", name: "r740", document: { pcrs: { 0: "bb" } }, hardwareClass: "r740" });
        await s.policies.put({ at: Date.now(), kind: "software", name: "ubuntu", document: { kernels: [] } });
        await s.policies.put({ at: Date.now(), kind: "baseline", name: "dl380", document: {}, hardwareClass: "dl380" });
        assert.deepEqual([p1.version, p2.version], [1, 2]);
        assert.deepEqual((await s.policies.get("baseline", "r740"))?.document, { pcrs: { 0: "bb" } });
        assert.deepEqual((await s.policies.get("baseline", "r740", 1))?.createdBy, "admin:1");
        assert.equal((await s.policies.getById(p1.id))?.version, 1);
        assert.equal(await s.policies.get("baseline", "nope"), undefined);
        const forClass = await s.policies.list({ hardwareClass: "r740" });
        assert.deepEqual(forClass.map((p) => `${p.kind}/${p.name}@${p.version}`), ["baseline/r740@2", "software/ubuntu@1"]);
        assert.equal((await s.policies.list({ kind: "baseline", allVersions: true })).length, 3);
        assert.equal(await s.policies.setEnabled("baseline", "r740", false, T0), 2);
        assert.deepEqual((await s.policies.list({ kind: "baseline" })).map((p) => p.name), ["dl380"]);
        assert.equal((await s.policies.list({ kind: "baseline", includeDisabled: true })).length, 2);
        // concurrent puts never collide on a version
        const many = await Promise.all(Array.from({ length: 5 }, (_, i) => s.policies.put({ at: Date.now(), kind: "ci", name: "wdac", document: { i } })));
        assert.deepEqual(many.map((p) => p.version).sort(), [1, 2, 3, 4, 5]);
      }));

    test("attestations, tokens and signing keys", () =>
      withStore(async (s) => {
        await s.hosts.add({ at: Date.now(), name: "h", hardwareClass: "c", policyVersion: "v2", eks: [ek("h")] });
        await assert.rejects(s.attestations.record({ at: Date.now(), hostName: "ghost", verdict: "pass" }), code("ERR_NOT_FOUND"));
        const a1 = await s.attestations.record({ hostName: "h", verdict: "pass", pcrDigest: Buffer.from("aa", "hex"), akName: Buffer.from("ak"), details: { policies: ["p@1"] }, at: T0 });
        const a2 = await s.attestations.record({ hostName: "h", verdict: "fail", reasonCode: "ERR_POLICY_FAILED", diff: [{ pcr: 7, expected: "aa", actual: "bb" }], at: T0 + 10 });
        assert.deepEqual(await s.attestations.get(a1.id), a1);
        assert.deepEqual((await s.attestations.listForHost("h")).map((a) => a.id), [a2.id, a1.id]);
        assert.deepEqual((await s.attestations.listForHost("h", { before: T0 + 10 })).map((a) => a.id), [a1.id]);
        assert.deepEqual((await s.attestations.latestForHost("h"))?.diff, [{ pcr: 7, expected: "aa", actual: "bb" }]);

        const t = await s.tokens.record({ jti: "j1", hostName: "h", kid: "k1", attestationId: a1.id, issuedAt: T0, expiresAt: T0 + 60_000 });
        await s.tokens.record({ jti: "j2", hostName: "h", kid: "k1", issuedAt: T0, expiresAt: T0 + 10 });
        await assert.rejects(s.tokens.record({ jti: "j1", hostName: "h", kid: "k1", issuedAt: T0, expiresAt: T0 }), code("ERR_CONFLICT"));
        assert.deepEqual(await s.tokens.get("j1"), t);
        assert.equal(await s.tokens.revoke("j1", T0 + 1), true);
        assert.equal(await s.tokens.revoke("j1", T0 + 2), false);
        assert.equal((await s.tokens.get("j1"))?.revokedAt, T0 + 1);
        await s.tokens.record({ jti: "j3", hostName: "h", kid: "k1", issuedAt: T0, expiresAt: T0 + 60_000 });
        assert.equal(await s.tokens.revokeForHost("h", T0 + 3), 2, "j2 and j3; j1 was already revoked");
        assert.equal(await s.tokens.purgeExpired(T0 + 10), 1);

        const jwk = { kty: "EC", crv: "P-256", x: "x", y: "y" };
        await s.signingKeys.add({ kid: "k1", alg: "ES256", privateJwk: { ...jwk, d: "d" }, publicJwk: jwk, at: T0 });
        await s.signingKeys.add({ kid: "k2", alg: "ES256", privateJwk: { ...jwk, d: "e" }, publicJwk: jwk, at: T0 + 1 });
        await assert.rejects(s.signingKeys.add({ at: Date.now(), kid: "k2", alg: "ES256", privateJwk: {}, publicJwk: {} }), code("ERR_CONFLICT"));
        assert.equal((await s.signingKeys.current())?.kid, "k2");
        assert.equal(await s.signingKeys.retire("k2", T0 + 100), true);
        assert.equal((await s.signingKeys.current())?.kid, "k1");
        assert.deepEqual((await s.signingKeys.get("k1"))?.privateJwk, { ...jwk, d: "d" });
        assert.deepEqual((await s.signingKeys.list({ retiredSince: T0 + 99 })).map((k) => k.kid), ["k2", "k1"]);
        assert.deepEqual((await s.signingKeys.list({ retiredSince: T0 + 100 })).map((k) => k.kid), ["k1"]);
      }));

    test("webhooks: subscriptions by event, deliveries claimed once", () =>
      withStore(async (s, url) => {
        const all = await s.webhooks.subscribe({ url: "https://a.example/h", secret: "s1", at: T0 });
        const only = await s.webhooks.subscribe({ url: "https://b.example/h", secret: "s2", events: ["host.unhealthy"], at: T0 + 1 });
        assert.equal((await s.webhooks.enqueue("host.healthy", { host: "h" }, T0)).length, 1);
        const d = await s.webhooks.enqueue("host.unhealthy", { host: "h" }, T0);
        assert.deepEqual(d.map((x) => x.webhookId).sort(), [all.id, only.id].sort());
        await s.webhooks.setEnabled(only.id, false, T0);
        assert.equal((await s.webhooks.enqueue("host.unhealthy", {}, T0)).length, 1);
        assert.deepEqual((await s.webhooks.list()).map((w) => w.id), [all.id]);
        assert.equal((await s.webhooks.list({ includeDisabled: true })).length, 2);

        const other = await openStore(url);
        try {
          const [c1, c2] = await Promise.all([s.webhooks.claimDue({ at: T0, leaseMs: 1000 }), other.webhooks.claimDue({ at: T0, leaseMs: 1000 })]);
          assert.equal(c1.length + c2.length, 4, "every due delivery claimed by exactly one instance");
          assert.equal(new Set([...c1, ...c2].map((x) => x.id)).size, 4);
          assert.deepEqual(await s.webhooks.claimDue({ at: T0 + 999, leaseMs: 1000 }), [], "leased");
        } finally {
          await other.close();
        }
        const [first, second] = await s.webhooks.claimDue({ at: T0 + 1000, leaseMs: 1000, limit: 2 });
        assert.equal(first.attempts, 2);
        await s.webhooks.markDelivered(first.id, { status: 204, at: T0 + 1001 });
        await s.webhooks.markFailed(second.id, { status: 500, error: "boom", retryAt: null });
        const rows = await s.webhooks.listDeliveries();
        assert.equal(rows.find((x) => x.id === first.id)?.deliveredAt, T0 + 1001);
        assert.equal(rows.find((x) => x.id === second.id)?.lastError, "boom");
        assert.equal((await s.webhooks.claimDue({ at: T0 + 10_000, leaseMs: 1000 })).length, 2, "delivered and abandoned ones are not due");
        assert.equal(await s.webhooks.remove(only.id), true);
        assert.equal((await s.webhooks.listDeliveries({ webhookId: only.id })).length, 0);
      }));

    test("CA: authorities, templates, certificates, revocation, CRL numbers", () =>
      withStore(async (s) => {
        const root = await s.ca.addAuthority({ kind: "root", cert: Buffer.from([1]), keyRef: "file:/k/root.pem", at: T0 });
        const iss = await s.ca.addAuthority({ kind: "issuing", cert: Buffer.from([2]), keyRef: "file:/k/iss.pem", at: T0 + 1 });
        assert.equal((await s.ca.currentAuthority("issuing"))?.id, iss.id);
        assert.deepEqual(await s.ca.getAuthority(root.id), root);
        assert.equal(await s.ca.retireAuthority(iss.id, T0), true);
        assert.equal(await s.ca.currentAuthority("issuing"), undefined);

        await s.ca.putTemplate("web", { mode: "required" }, T0);
        const t = await s.ca.putTemplate("web", { mode: "none" }, T0 + 5);
        assert.deepEqual([t.document, t.createdAt, t.updatedAt], [{ mode: "none" }, T0, T0 + 5]);
        assert.deepEqual((await s.ca.listTemplates()).map((x) => x.name), ["web"]);
        assert.equal(await s.ca.removeTemplate("web"), true);
        assert.equal(await s.ca.getTemplate("web"), undefined);

        const cert = { issuerId: root.id, templateName: "web", hostName: null, subject: "CN=a", notBefore: T0, notAfter: T0 + 1, der: Buffer.from([0x30]), attestation: { models: ["ek-cert"] } };
        await s.ca.recordCert({ ...cert, serial: "0A01", issuedAt: T0 });
        await s.ca.recordCert({ ...cert, serial: "0a02", issuedAt: T0 + 1 });
        await assert.rejects(s.ca.recordCert({ issuedAt: Date.now(), ...cert, serial: "0a01" }), code("ERR_CONFLICT"));
        await assert.rejects(s.ca.recordCert({ issuedAt: Date.now(), ...cert, serial: "0a03", issuerId: "ghost" }), code("ERR_NOT_FOUND"));
        assert.deepEqual((await s.ca.getCert("0A01"))?.attestation, { models: ["ek-cert"] });
        assert.equal(await s.ca.revokeCert("0a01", { reason: 1, at: T0 + 2 }), true);
        assert.equal(await s.ca.revokeCert("0a01", { at: Date.now(), reason: 1 }), false);
        assert.deepEqual((await s.ca.listCerts({ revoked: true })).map((c) => [c.serial, c.revocationReason]), [["0a01", 1]]);
        assert.deepEqual((await s.ca.listCerts()).map((c) => c.serial), ["0a02", "0a01"]);

        const crls = await Promise.all([1, 2, 3].map(() => s.ca.publishCrl(root.id, async (n) => ({ thisUpdate: T0, nextUpdate: T0 + 1, der: Buffer.from([n]) }))));
        assert.deepEqual(crls.map((c) => c.number).sort(), [1, 2, 3]);
        const latest = await s.ca.latestCrl(root.id);
        assert.deepEqual([latest?.number, latest?.der], [3, Buffer.from([3])]);
      }));

    test("CA pending requests: list waiting ones newest first (all: answered and expired too), claim once, remove", () =>
      withStore(async (s) => {
        const req = (at: number, ttlMs = 1000) =>
          s.caPending.create({ template: "WinTpm", csr: Buffer.from([0x30]), ekPublic: Buffer.from([1]), ekCerts: [Buffer.from([2])], ekHash: "ab".repeat(32), aikName: Buffer.from("000b01", "hex"), secretHash: Buffer.alloc(32), requester: { actor: "anonymous", tokenId: null }, ttlMs, at });
        const [a, b, c] = [await req(T0), await req(T0 + 1), await req(T0 + 2, 5)];
        await s.caPending.claim(a.requestId, T0 + 3);
        assert.deepEqual((await s.caPending.list({ at: T0 + 10, limit: 10 })).map((p) => p.requestId), [b.requestId]);
        assert.deepEqual((await s.caPending.list({ all: true, at: T0 + 10, limit: 10 })).map((p) => p.requestId), [c.requestId, b.requestId, a.requestId]);
        assert.deepEqual((await s.caPending.list({ all: true, at: T0 + 10, limit: 1 })).map((p) => p.requestId), [c.requestId]);
        assert.equal(await s.caPending.remove(b.requestId), true);
        assert.equal(await s.caPending.remove(b.requestId), false);
        assert.equal(await s.caPending.get(b.requestId), undefined);
        await assert.rejects(s.caPending.claim(b.requestId, T0 + 4), code("ERR_NONCE_UNKNOWN"));
      }));

    test("provisioning: enrollments, groups, hubs, device registrations", () =>
      withStore(async (s) => {
        const e = { registrationId: "dev1", ekPublic: Buffer.from("ek"), deviceId: null, initialTwin: { tags: { a: 1 } }, allocation: { policy: "hashed" }, reprovisionPolicy: "reprovision-and-migrate" as const, enabled: true };
        await s.provisioning.putEnrollment(e, T0);
        const e2 = await s.provisioning.putEnrollment({ ...e, enabled: false }, T0 + 1);
        assert.deepEqual([e2.enabled, e2.createdAt, e2.updatedAt, e2.initialTwin], [false, T0, T0 + 1, { tags: { a: 1 } }]);
        assert.deepEqual(await s.provisioning.getEnrollment("dev1"), e2);
        assert.equal((await s.provisioning.listEnrollments()).length, 1);

        const g = await s.provisioning.putGroup({ name: "vendor", caCerts: [Buffer.from([0x30]), Buffer.from([0x31])], intermediates: [Buffer.from([0x32])], initialTwin: null, allocation: { policy: "static", hub: "h1" }, reprovisionPolicy: "never", enabled: true }, T0);
        assert.deepEqual(await s.provisioning.getGroup("vendor"), g);
        assert.deepEqual((await s.provisioning.listGroups()).map((x) => x.name), ["vendor"]);

        await s.provisioning.putHub({ name: "hub1", hostname: "hub1.example", weight: 1, at: T0 });
        await s.provisioning.putHub({ at: Date.now(), name: "hub1", hostname: "hub1.example", weight: 3 });
        assert.deepEqual(await s.provisioning.listHubs(), [{ name: "hub1", hostname: "hub1.example", weight: 3, createdAt: T0 }]);

        const r = await s.provisioning.createRegistration({ registrationId: "dev1", ekPublic: Buffer.from("ek"), srkPublic: Buffer.from("srk"), at: T0 });
        assert.equal(r.status, "unassigned");
        await assert.rejects(s.provisioning.createRegistration({ at: Date.now(), registrationId: "dev1", ekPublic: Buffer.from("ek") }), code("ERR_CONFLICT"));
        const u = await s.provisioning.updateRegistration("dev1", { status: "assigned", assignedHub: "hub1", deviceId: "dev1", operationId: "op1", payload: { x: 1 }, sasKey: Buffer.from("key") }, T0 + 1);
        assert.notEqual(u.etag, r.etag);
        assert.deepEqual([u.status, u.assignedHub, u.sasKey, u.payload, u.srkPublic], ["assigned", "hub1", Buffer.from("key"), { x: 1 }, Buffer.from("srk")]);
        assert.deepEqual(await s.provisioning.getRegistrationByOperation("op1"), u);
        await assert.rejects(s.provisioning.updateRegistration("nope", { status: "x" }, T0), code("ERR_NOT_FOUND"));
        assert.deepEqual((await s.provisioning.listRegistrations()).map((x) => x.registrationId), ["dev1"]);
        assert.equal(await s.provisioning.removeRegistration("dev1"), true);
        assert.equal(await s.provisioning.removeEnrollment("dev1"), true);
        assert.equal(await s.provisioning.removeGroup("vendor"), true);
        assert.equal(await s.provisioning.removeHub("hub1"), true);

        assert.equal(await s.provisioning.getIdScope(), undefined);
        assert.equal(await s.provisioning.setIdScope("0ne0000A1B2", { at: Date.now(), onlyIfUnset: true }), "0ne0000A1B2");
        assert.equal(await s.provisioning.setIdScope("0ne0000FFFF", { at: Date.now(), onlyIfUnset: true }), "0ne0000A1B2");
        assert.equal(await s.provisioning.setIdScope("0ne0000FFFF", { at: Date.now() }), "0ne0000FFFF");
      }));

    test("key release: servers, providers with versions, rotation, clusters", () =>
      withStore(async (s) => {
        await assert.rejects(s.keys.createProvider({ at: Date.now(), name: "p", keyServer: "ghost", primaryKeyId: "k", keyRef: "r1" }), code("ERR_NOT_FOUND"));
        await s.keys.addServer({ name: "local", kind: "local", config: { dir: "/keys" }, at: T0 });
        await assert.rejects(s.keys.addServer({ at: Date.now(), name: "local", kind: "local", config: {} }), code("ERR_CONFLICT"));
        assert.deepEqual((await s.keys.getServer("local"))?.config, { dir: "/keys" });
        const p = await s.keys.createProvider({ name: "p", keyServer: "local", primaryKeyId: "k", keyRef: "r1", at: T0 });
        assert.equal(p.currentVersion, 1);
        const [v2, v3] = [await s.keys.rotate("p", "r2", T0 + 1), await s.keys.rotate("p", "r3", T0 + 2)];
        assert.deepEqual([v2.version, v3.version], [2, 3]);
        assert.equal((await s.keys.getProvider("p"))?.currentVersion, 3);
        await assert.rejects(s.keys.retireVersion("p", 3, T0), code("ERR_CONFLICT"));
        assert.equal(await s.keys.retireVersion("p", 1, T0 + 3), true);
        assert.equal(await s.keys.retireVersion("p", 1, T0), false);
        assert.deepEqual((await s.keys.listVersions("p")).map((v) => [v.version, v.keyRef, v.retiredAt]), [[1, "r1", T0 + 3], [2, "r2", null], [3, "r3", null]]);
        assert.equal((await s.keys.getVersion("p", 2))?.keyRef, "r2");
        await assert.rejects(s.keys.rotate("ghost", "x", T0), code("ERR_NOT_FOUND"));
        await s.keys.setProviderEnabled("p", false, T0 + 4);
        assert.equal((await s.keys.listProviders())[0].disabledAt, T0 + 4);

        await s.keys.putCluster({ name: "c1", selector: { hardwareClasses: ["r740"] }, providers: ["p"], at: T0 });
        const c = await s.keys.putCluster({ name: "c1", selector: { tags: ["gpu"] }, providers: ["p"], at: T0 + 1 });
        assert.deepEqual([c.selector, c.createdAt, c.updatedAt], [{ tags: ["gpu"] }, T0, T0 + 1]);
        assert.deepEqual((await s.keys.listClusters()).map((x) => x.name), ["c1"]);
        assert.equal(await s.keys.removeCluster("c1"), true);
        assert.equal(await s.keys.getCluster("c1"), undefined);
      }));

    test("admin tokens: only the hash is stored; verify, revoke, initial token once", (t) =>
      withStore(async (s, url) => {
        const [i1, i2] = await Promise.all([s.adminTokens.createInitial({ at: T0 }), s.adminTokens.createInitial({ at: T0 })]);
        assert.equal([i1, i2].filter(Boolean).length, 1);
        const initial = (i1 ?? i2)!;
        assert.equal(initial.role, "admin");
        assert.match(initial.token, /^tpmtrust_[A-Za-z0-9_-]{43}$/);
        assert.equal(await s.adminTokens.createInitial({ at: Date.now() }), undefined);
        const aud = await s.adminTokens.create({ at: Date.now(), role: "auditor", label: "soc" });
        assert.deepEqual(await s.adminTokens.verify(aud.token), { id: aud.id, role: "auditor", label: "soc", createdAt: aud.createdAt, revokedAt: null });
        assert.equal(await s.adminTokens.verify(aud.token + "x"), undefined);
        assert.equal(await s.adminTokens.verify("garbage"), undefined);
        const stored = JSON.stringify(await rawSql(url, "select * from admin_tokens"));
        assert.ok(!stored.includes(aud.token.slice(9)), "token secret not stored");
        assert.ok(stored.includes(createHash("sha256").update(aud.token).digest("hex")));
        assert.equal(await s.adminTokens.revoke(aud.id, T0), true);
        assert.equal(await s.adminTokens.verify(aud.token), undefined);
        assert.equal((await s.adminTokens.list()).length, 2);
        t.diagnostic(`initial token id ${initial.id}`);
      }));

    test("rate limits: fixed windows shared through the database", () =>
      withStore(async (s, url) => {
        const other = await openStore(url);
        try {
          assert.equal(await s.rateLimits.hit("sas:dev1", { windowMs: 1000, at: T0 }), 1);
          assert.equal(await other.rateLimits.hit("sas:dev1", { windowMs: 1000, at: T0 + 10 }), 2);
          assert.equal(await s.rateLimits.hit("sas:dev1", { windowMs: 1000, at: T0 + 999 }), 3);
          assert.equal(await s.rateLimits.hit("sas:dev1", { windowMs: 1000, at: T0 + 1000 }), 1, "new window");
          assert.equal(await s.rateLimits.hit("sas:dev2", { windowMs: 1000, at: T0 }), 1);
          assert.equal(await s.rateLimits.count("sas:dev1", { windowMs: 1000, at: T0 + 1000 }), 1);
          assert.equal(await s.rateLimits.count("sas:dev1", { windowMs: 1000, at: T0 + 2000 }), 0, "window over");
          assert.equal(await s.rateLimits.count("sas:none", { windowMs: 1000, at: T0 }), 0);
          await s.rateLimits.reset("sas:dev1");
          assert.equal(await s.rateLimits.hit("sas:dev1", { windowMs: 1000, at: T0 + 1001 }), 1);
        } finally {
          await other.close();
        }
      }));

    test("store.transaction commits or rolls back everything, audit included", () =>
      withStore(async (s) => {
        await assert.rejects(
          s.transaction(async (tx) => {
            await tx.hosts.add({ at: Date.now(), name: "h", hardwareClass: "c", policyVersion: "v2", eks: [ek("h")] });
            await tx.audit.append({ at: Date.now(), actor: "admin:1", action: "host.add", subject: "h", outcome: "success" });
            throw new Error("abort");
          }),
          /abort/,
        );
        assert.equal(await s.hosts.get("h"), undefined);
        assert.equal((await s.audit.head()).seq, 0);
        await s.transaction(async (tx) => {
          await tx.hosts.add({ at: Date.now(), name: "h", hardwareClass: "c", policyVersion: "v2", eks: [ek("h")] });
          await tx.audit.append({ at: Date.now(), actor: "admin:1", action: "host.add", subject: "h", outcome: "success" });
        });
        assert.equal((await s.hosts.get("h"))?.name, "h");
        assert.equal((await s.audit.verify()).verified, 1);
      }));

    test("audit: append, list, checkpoint, verify", () =>
      withStore(async (s) => {
        const e1 = await s.audit.append({ actor: "admin:1", action: "trust.allowlist.add", subject: "ab".repeat(32), outcome: "success", details: { ekHash: Buffer.from([0xab]), n: 1n, skip: undefined }, at: T0 });
        assert.deepEqual([e1.seq, e1.prevHash, e1.leafIndex], [1, null, null]);
        assert.deepEqual(e1.details, { ekHash: "ab", n: "1" });
        const e2 = await s.audit.append({ actor: "host:h", action: "attestation.verdict", outcome: "failure", details: { code: "ERR_PCR_DIGEST_MISMATCH" }, at: T0 + 1 });
        assert.equal(e2.seq, 2);
        await s.audit.append({ actor: "anonymous", action: "auth.denied", outcome: "denied", at: T0 + 2 });
        assert.deepEqual(await s.audit.list({ afterSeq: 1 }), [e2, (await s.audit.list({ afterSeq: 2 }))[0]]);
        assert.deepEqual((await s.audit.list({ newestFirst: true, limit: 2 })).map((e) => e.seq), [3, 2]);
        assert.deepEqual((await s.audit.list({ action: "auth.denied" })).map((e) => e.seq), [3]);
        assert.deepEqual((await s.audit.list({ actor: "admin:1" }))[0], e1);
        const pending = await s.audit.verify({ batchSize: 2 });
        assert.deepEqual([pending.ok, pending.verified, pending.pending, pending.treeSize], [true, 3, 3, 0]);
        const cp = await s.audit.checkpoint({ at: T0 + 3, sign: SIGN });
        assert.deepEqual([cp?.treeSize, cp?.kid], [3, "test"]);
        assert.equal(await s.audit.checkpoint({ at: T0 + 4, sign: SIGN }), undefined, "nothing new: no checkpoint");
        assert.deepEqual((await s.audit.list()).map((e) => e.leafIndex), [0, 1, 2]);
        const { stored, leaves, ...v } = await s.audit.verify({ batchSize: 2 });
        assert.deepEqual(v, { ok: true, verified: 3, pending: 0, treeSize: 3, rootHash: cp!.rootHash, checkpoints: 1, firstBadSeq: null, problem: null, reason: null });
        assert.deepEqual([stored.length, leaves.size, leaves.root().toString("hex")], [1, 3, cp!.rootHash]);
      }));

    const tampers: [string, (url: string) => Promise<unknown>, number, string][] = [
      ["an edited detail", (u) => rawSql(u, `update audit set details = '{"code":"OK"}' where seq = 3`), 3, "hash"],
      ["an edited actor", (u) => rawSql(u, `update audit set actor = 'admin:2' where seq = 2`), 2, "hash"],
      ["an edited time", (u) => rawSql(u, `update audit set at = at + 1 where seq = 4`), 4, "hash"],
      ["re-formatted details", (u) => rawSql(u, `update audit set details = '{ "i": 1 }' where seq = 2`), 2, "details"],
      ["a deleted entry", (u) => rawSql(u, "delete from audit where seq = 3"), 3, "gap"],
      ["a deleted first entry", (u) => rawSql(u, "delete from audit where seq = 1"), 1, "gap"],
      ["a deleted last entry", (u) => rawSql(u, "delete from audit where seq = 5"), 5, "checkpoint"],
      [
        "two swapped entries",
        async (u) => {
          await rawSql(u, "update audit set seq = -1 where seq = 2");
          await rawSql(u, "update audit set seq = 2 where seq = 3");
          await rawSql(u, "update audit set seq = 3 where seq = -1");
        },
        2,
        "hash",
      ],
      ["an edited entry with its leaf hash recomputed (only the checkpoint can tell)", (u) => rewrite(u, 4, "admin:2"), 1, "checkpoint"],
      ["an entry inserted as a leaf with a wrong hash", (u) => rawSql(u, "insert into audit (seq, at, actor, action, subject, outcome, details, leaf_index, leaf_hash) select 6, at, actor, action, subject, outcome, details, 5, leaf_hash from audit where seq = 5"), 6, "hash"],
      [
        "a well-hashed leaf appended behind the log's back",
        async (u) => {
          const f = { seq: 6, at: T0 + 9, actor: "intruder", action: "test", subject: null, outcome: "success", details: "null" };
          await rawSql(u, `insert into audit (seq, at, actor, action, subject, outcome, details, leaf_index, leaf_hash) values (6, ${f.at}, 'intruder', 'test', null, 'success', 'null', 5, '${entryLeafHash(f)}')`);
        },
        6,
        "checkpoint",
      ],
    ];
    for (const [what, tamper, seq, problem] of tampers) {
      test(`audit verify detects ${what} (first bad seq ${seq})`, () =>
        withStore(async (s, url) => {
          for (let i = 0; i < 5; i++) await s.audit.append({ actor: "admin:1", action: "test", outcome: "success", details: { i }, at: T0 + i });
          await s.audit.checkpoint({ at: T0 + 5, sign: SIGN });
          assert.equal((await s.audit.verify()).ok, true);
          await tamper(url);
          const v = await s.audit.verify({ batchSize: 2 });
          assert.equal(v.ok, false);
          assert.equal(v.firstBadSeq, seq);
          assert.equal(v.problem, problem);
          assert.equal(v.verified, seq - 1);
        }));
    }
  });
}
