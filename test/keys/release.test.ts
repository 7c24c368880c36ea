/**
 * Key release end to end over real HTTP on 127.0.0.1, on SQLite and PostgreSQL: swtpm hosts attest
 * (challenge → quote → token) and use key providers on the built-in local store and on a SoftHSM2
 * token: encrypt → decrypt, data keys, release to the host's TPM unwrapped by swtpm (TPM2_Import,
 * Load, Unseal), rotation and retirement, and every denial with its code and audit entry.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { sweepSilentHosts } from "../../src/attest/health.js";
import { DEFAULT_ATTEST_CONFIG } from "../../src/attest/config.js";
import { closeKeyServers } from "../../src/keys/index.js";
import { certifySrk, importAndUnseal, withSrk } from "../../src/agent/keys.js";
import { createAk, CreatePrimary, ekTemplate, FlushContext, ReadPublic } from "../../src/tpm/commands/index.js";
import { TPM_RH } from "../../src/tpm/constants.js";
import { BACKENDS, type Backend } from "../helpers/store.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { addHost, attestOnce, readLog, startTpmHost, type TpmHost } from "../helpers/attest-host.js";
import { startSoftHsm, type SoftHsm } from "../helpers/softhsm.js";

interface Service {
  url: string;
  store: Store;
  admin: string;
  auditor: string;
  /** the service's clock; tests move it */
  clock: { now: number };
  close(): Promise<void>;
}

async function serve(db: string): Promise<Service> {
  const store = await openStore(db);
  const clock = { now: Date.now() };
  const app = await buildApp({ store, logger: false, now: () => clock.now, attest: { sweepMs: 0 } });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    admin: (await store.adminTokens.create({ at: Date.now(), role: "admin" })).token,
    auditor: (await store.adminTokens.create({ at: Date.now(), role: "auditor" })).token,
    clock,
    async close() {
      await app.close();
      await closeKeyServers(store);
      await store.close();
    },
  };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function call(s: Service, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? bearer(token) : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

const admin = async (s: Service, method: string, path: string, body?: unknown, expect = 200) => {
  const r = await call(s, method, path, s.admin, body);
  assert.equal(r.status, expect, JSON.stringify(r.body));
  return r.body;
};

/** A host operation that must succeed. */
async function op(s: Service, token: string, provider: string, name: string, body: unknown): Promise<any> {
  const r = await call(s, "POST", `/v1/keys/${provider}/${name}`, token, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** A host operation that must be refused with `code` and `status`. */
async function denied(s: Service, token: string | undefined, provider: string, name: string, body: unknown, status: number, code: string): Promise<void> {
  const r = await call(s, "POST", `/v1/keys/${provider}/${name}`, token, body);
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.code, code, JSON.stringify(r.body));
}

async function attestToken(s: Service, h: TpmHost): Promise<string> {
  const r = await attestOnce(s.url, h);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.verdict, "pass", JSON.stringify(r.body));
  return r.body.token;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** the hosts' PCRs hold this real log; the baseline learned from it is their attestation policy */
const LOG = "rhel8-gce-uefi.bin";

let h1: TpmHost;
let h2: TpmHost;
let hsm: SoftHsm;
let dir: string;
let tokenLabels: string[] = [];

before(async () => {
  [h1, h2] = await Promise.all([startTpmHost({ logFile: LOG, akType: "ecc" }), startTpmHost({ logFile: LOG, akType: "rsa" })]);
  hsm = startSoftHsm();
  tokenLabels = BACKENDS.map(([name]) => hsm.initToken(`keys-${name}`, "2468").label);
  process.env.TPMTRUST_TEST_HSM_PIN = "2468";
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-release-"));
  // master key files must be in the key directory
  process.env.TPMTRUST_KEY_DIR = dir;
});
after(async () => {
  await Promise.all([h1?.close(), h2?.close()]);
  hsm?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

for (const [i, [dialect, make]] of BACKENDS.entries()) {
  describe(`key release on ${dialect}`, () => {
    let backend: Backend;
    let s: Service;
    let t1: string;
    let t2: string;

    before(async () => {
      backend = await make();
      s = await serve(await backend.newUrl());
      await addHost(s.store, h1, { name: "web-1", hardwareClass: "lab" });
      await addHost(s.store, h2, { name: "db-1", hardwareClass: "other" });
      for (const hardwareClass of ["lab", "other"]) {
        await admin(s, "POST", "/v1/policies", { kind: "baseline", name: `gce-${hardwareClass}`, hardwareClass, document: learnBaseline("gce", [parseEventLog(readLog(LOG))], [0, 1, 2, 3, 4, 5, 6, 7]) }, 201);
      }
      t1 = await attestToken(s, h1);
      t2 = await attestToken(s, h2);
      await admin(s, "POST", "/v1/keys/servers", { name: "local", kind: "local", config: { masterKeyFile: join(dir, `${dialect}.master.key`) } }, 201);
      await admin(s, "POST", "/v1/keys/servers", { name: "hsm", kind: "pkcs11", config: { module: hsm.module, tokenLabel: tokenLabels[i], pinEnv: "TPMTRUST_TEST_HSM_PIN" } }, 201);
      await admin(s, "POST", "/v1/keys/providers", { name: "disks" }, 201);
      await admin(s, "POST", "/v1/keys/providers", { name: "hsm-disks", keyServer: "hsm", primaryKeyId: "vm-disks" }, 201);
      await admin(s, "PUT", "/v1/keys/clusters/lab", { hardwareClasses: ["lab"], providers: ["disks", "hsm-disks"] });
    });
    after(async () => {
      await s?.close();
      await backend?.close();
    });

    test("admin views: key servers without secrets, providers with versions and clusters, clusters", async () => {
      const servers = await admin(s, "GET", "/v1/keys/servers");
      assert.deepEqual(
        servers.map((x: { name: string; kind: string }) => [x.name, x.kind]),
        [
          ["hsm", "pkcs11"],
          ["local", "local"],
        ],
      );
      assert.equal(servers[0].config.pinEnv, "TPMTRUST_TEST_HSM_PIN");
      assert.ok(!JSON.stringify(servers).includes("2468"), "no PIN");
      const p = await admin(s, "GET", "/v1/keys/providers/hsm-disks");
      assert.equal(p.kind, "pkcs11");
      assert.equal(p.primaryKeyId, "vm-disks");
      assert.equal(p.currentVersion, 1);
      assert.deepEqual(p.clusters, ["lab"]);
      assert.equal(p.versions.length, 1);
      assert.equal(p.versions[0].keyRef, undefined, "key references stay inside");
      const cl = await admin(s, "GET", "/v1/keys/clusters/lab");
      assert.deepEqual(cl.selector, { hardwareClasses: ["lab"] });
      const viaAuditor = await call(s, "GET", "/v1/keys/providers", s.auditor);
      assert.equal(viaAuditor.status, 200);
      assert.equal(viaAuditor.body.length, 2);
    });

    for (const provider of ["disks", "hsm-disks"]) {
      test(`${provider}: attest → token → encrypt → decrypt; the envelope is bound to provider, version and context`, async () => {
        const enc = await op(s, t1, provider, "encrypt", { plaintext: b64("volume key of vm-17"), context: "vm=17" });
        assert.equal(enc.keyVersion, 1);
        const env = Buffer.from(enc.ciphertext, "base64");
        assert.equal(env.subarray(0, 4).toString(), "TTKE");
        assert.equal(env.subarray(6, 6 + env[5]).toString(), provider);
        const dec = await op(s, t1, provider, "decrypt", { ciphertext: enc.ciphertext, context: "vm=17" });
        assert.equal(Buffer.from(dec.plaintext, "base64").toString(), "volume key of vm-17");
        assert.equal(dec.keyVersion, 1);
        await denied(s, t1, provider, "decrypt", { ciphertext: enc.ciphertext, context: "vm=18" }, 422, "ERR_DECRYPT_FAILED");
        await denied(s, t1, provider, "decrypt", { ciphertext: enc.ciphertext }, 422, "ERR_DECRYPT_FAILED");
        const other = provider === "disks" ? "hsm-disks" : "disks";
        await denied(s, t1, other, "decrypt", { ciphertext: enc.ciphertext, context: "vm=17" }, 422, "ERR_DECRYPT_FAILED");
        const tampered = Buffer.from(env);
        tampered[tampered.length - 3] ^= 1;
        await denied(s, t1, provider, "decrypt", { ciphertext: tampered.toString("base64"), context: "vm=17" }, 422, "ERR_DECRYPT_FAILED");
        await denied(s, t1, provider, "decrypt", { ciphertext: b64("not an envelope") }, 400, "ERR_PARSE_FORMAT");

        const dk = await op(s, t1, provider, "data-key", { size: 32 });
        assert.equal(Buffer.from(dk.plaintext, "base64").length, 32);
        const again = await op(s, t1, provider, "decrypt", { ciphertext: dk.wrappedKey });
        assert.equal(again.plaintext, dk.plaintext, "the wrapped data key opens to the same key");
      });

      test(`${provider}: release to the host's TPM: only that TPM unwraps it (TPM2_Import + Load + Unseal in swtpm)`, async () => {
        const dk = await op(s, t1, provider, "data-key", {});
        const tpm = h1.client;
        const out = await withSrk(tpm, async (srk) => {
          const proof = await certifySrk(tpm, srk, h1.ak.handle);
          const r = await op(s, t1, provider, "release", { srk: proof, wrappedKey: dk.wrappedKey });
          assert.ok(!JSON.stringify(r).includes(dk.plaintext), "the key is not on the wire in clear");
          assert.equal(r.wrappedKey, dk.wrappedKey);
          // another TPM cannot import it
          await withSrk(h2.client, async (srk2) => {
            await assert.rejects(importAndUnseal(h2.client, srk2.handle, r.import), /TPM_RC/);
          });
          const fresh = await op(s, t1, provider, "release", { srk: proof, size: 48 });
          const freshSecret = await importAndUnseal(tpm, srk.handle, fresh.import);
          assert.equal(freshSecret.length, 48);
          const reopened = await op(s, t1, provider, "decrypt", { ciphertext: fresh.wrappedKey });
          assert.equal(reopened.plaintext, freshSecret.toString("base64"), "the new key's wrapped form opens to what the TPM unsealed");
          return importAndUnseal(tpm, srk.handle, r.import);
        });
        assert.equal(out.toString("base64"), dk.plaintext);
      });
    }

    test("release refuses an SRK that is not a storage key, or one certified by an AK not bound to the token's host", async () => {
      const tpm = h1.client;
      // a second AK in the same TPM that was never bound (activated) to any host; swtpm holds 3 objects: AK, this one, the SRK
      const stray = await tpm.run(CreatePrimary, { primaryHandle: TPM_RH.ENDORSEMENT, inPublic: ekTemplate("ecc-p256") });
      let ak2: Awaited<ReturnType<typeof createAk>>;
      try {
        ak2 = await createAk(tpm, { handle: stray.handle, public: stray.public }, { type: "ecc" });
      } finally {
        await tpm.run(FlushContext, { flushHandle: stray.handle });
      }
      try {
        await withSrk(tpm, async (srk) => {
          // the AK itself is a restricted signing key, not a storage key
          const ak = await tpm.run(ReadPublic, { objectHandle: h1.ak.handle });
          await denied(s, t1, "disks", "release", { srk: await certifySrk(tpm, { handle: h1.ak.handle, publicArea: ak.publicArea }, h1.ak.handle) }, 422, "ERR_KEY_NOT_STORAGE");
          await denied(s, t1, "disks", "release", { srk: await certifySrk(tpm, srk, ak2.handle) }, 422, "ERR_AK_NOT_BOUND");
          // host db-1's token with web-1's SRK proof: the certifying AK is not db-1's
          await admin(s, "PUT", "/v1/keys/clusters/all", { hosts: ["db-1", "web-1"], providers: ["disks"] });
          try {
            await denied(s, t2, "disks", "release", { srk: await certifySrk(tpm, srk, h1.ak.handle) }, 422, "ERR_AK_NOT_BOUND");
          } finally {
            await admin(s, "DELETE", "/v1/keys/clusters/all", undefined, 204);
          }
          const proof = await certifySrk(tpm, srk, h1.ak.handle);
          const tamperedSig = Buffer.from(proof.signature, "base64");
          tamperedSig[tamperedSig.length - 1] ^= 1;
          await denied(s, t1, "disks", "release", { srk: { ...proof, signature: tamperedSig.toString("base64") } }, 422, "ERR_AK_NOT_BOUND");
        });
      } finally {
        await tpm.run(FlushContext, { flushHandle: ak2.handle });
      }
      const audit = await s.store.audit.list({ limit: 10000 });
      assert.ok(audit.some((e) => e.action === "keys.release" && e.outcome === "failure" && (e.details as { code?: string })?.code === "ERR_KEY_NOT_STORAGE"));
    });

    test("rotation: the new version encrypts, the old one decrypts until retired; the current one cannot be retired", async () => {
      for (const provider of ["disks", "hsm-disks"]) {
        const old = await op(s, t1, provider, "encrypt", { plaintext: b64("sealed by v1") });
        assert.equal(old.keyVersion, 1);
        const rotated = await admin(s, "POST", `/v1/keys/providers/${provider}/rotate`);
        assert.equal(rotated.currentVersion, 2);
        const fresh = await op(s, t1, provider, "encrypt", { plaintext: b64("sealed by v2") });
        assert.equal(fresh.keyVersion, 2);
        assert.equal(Buffer.from(fresh.ciphertext, "base64").readUInt32BE(6 + provider.length), 2, "the envelope names its version");
        assert.equal((await op(s, t1, provider, "decrypt", { ciphertext: old.ciphertext })).keyVersion, 1);
        const conflict = await call(s, "POST", `/v1/keys/providers/${provider}/versions/2/retire`, s.admin);
        assert.equal(conflict.status, 409);
        const retired = await admin(s, "POST", `/v1/keys/providers/${provider}/versions/1/retire`);
        assert.ok(retired.versions[0].retiredAt);
        await denied(s, t1, provider, "decrypt", { ciphertext: old.ciphertext }, 422, "ERR_KEY_RETIRED");
        assert.equal(Buffer.from((await op(s, t1, provider, "decrypt", { ciphertext: fresh.ciphertext })).plaintext, "base64").toString(), "sealed by v2");
        assert.equal((await call(s, "POST", `/v1/keys/providers/${provider}/versions/1/retire`, s.admin)).status, 409, "already retired");
      }
    });

    test("denials: no token, a forged token, host not in a cluster, provider not allowed, provider disabled; all audited", async () => {
      const body = { plaintext: b64("x") };
      await denied(s, undefined, "disks", "encrypt", body, 401, "ERR_UNAUTHENTICATED");
      await denied(s, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "disks", "encrypt", body, 401, "ERR_TOKEN_INVALID");
      await denied(s, s.admin, "disks", "encrypt", body, 401, "ERR_TOKEN_INVALID");
      // db-1 attested fine, but is in no cluster that allows the provider
      await denied(s, t2, "disks", "encrypt", body, 403, "ERR_FORBIDDEN");
      await denied(s, t2, "no-such-provider", "encrypt", body, 403, "ERR_FORBIDDEN");
      await admin(s, "POST", "/v1/keys/providers", { name: "payroll" }, 201);
      await denied(s, t1, "payroll", "encrypt", body, 403, "ERR_FORBIDDEN");
      // in a cluster by tag
      await s.store.hosts.update("db-1", { tags: ["pci"] }, Date.now());
      await admin(s, "PUT", "/v1/keys/clusters/pci", { tags: ["pci"], providers: ["payroll"] });
      await op(s, t2, "payroll", "encrypt", body);
      await denied(s, t2, "disks", "encrypt", body, 403, "ERR_FORBIDDEN");
      await admin(s, "POST", "/v1/keys/providers/payroll/disable");
      await denied(s, t2, "payroll", "encrypt", body, 403, "ERR_DISABLED");
      await denied(s, t2, "payroll", "data-key", {}, 403, "ERR_DISABLED");
      await admin(s, "POST", "/v1/keys/providers/payroll/enable");
      await op(s, t2, "payroll", "data-key", {});
      await admin(s, "DELETE", "/v1/keys/clusters/pci", undefined, 204);
      await denied(s, t2, "payroll", "encrypt", body, 403, "ERR_FORBIDDEN");

      const audit = await s.store.audit.list({ limit: 10000 });
      const codes = audit.filter((e) => e.action.startsWith("keys.") && e.outcome === "denied").map((e) => (e.details as { code: string }).code);
      for (const code of ["ERR_UNAUTHENTICATED", "ERR_TOKEN_INVALID", "ERR_FORBIDDEN", "ERR_DISABLED"]) assert.ok(codes.includes(code), code);
      assert.ok(audit.some((e) => e.actor === "host:db-1" && e.action === "keys.encrypt" && e.outcome === "denied"));
      assert.ok((await s.store.audit.verify()).ok);
      const m = await fetch(`${s.url}/metrics`, { headers: bearer(s.auditor) });
      const text = await m.text();
      assert.match(text, /tpmtrust_key_operations_total\{operation="encrypt",provider="local",outcome="success",reason="none"\} [1-9]/);
      assert.match(text, /tpmtrust_key_operations_total\{operation="encrypt",provider="none",outcome="failure",reason="ERR_FORBIDDEN"\} [1-9]/);
      assert.match(text, /tpmtrust_key_operations_total\{operation="data-key",provider="none",outcome="failure",reason="ERR_DISABLED"\} [1-9]/);
    });

    test("non-admins cannot manage key servers, providers or clusters (401/403)", async () => {
      const tries: [string, string, unknown][] = [
        ["POST", "/v1/keys/providers", { name: "sneaky" }],
        ["POST", "/v1/keys/providers/disks/rotate", undefined],
        ["POST", "/v1/keys/providers/disks/disable", undefined],
        ["POST", "/v1/keys/providers/disks/versions/1/retire", undefined],
        ["POST", "/v1/keys/servers", { name: "x", kind: "local" }],
        ["PUT", "/v1/keys/clusters/x", { hosts: ["db-1"], providers: ["disks"] }],
        ["DELETE", "/v1/keys/clusters/lab", undefined],
      ];
      for (const [method, path, body] of tries) {
        const auditor = await call(s, method, path, s.auditor, body);
        assert.equal(auditor.status, 403, `${method} ${path}`);
        assert.equal(auditor.body.code, "ERR_FORBIDDEN");
        const host = await call(s, method, path, t1, body);
        assert.equal(host.status, 401, `a host's attestation token is no admin token: ${method} ${path}`);
        const none = await call(s, method, path, undefined, body);
        assert.equal(none.body.code, "ERR_UNAUTHENTICATED");
      }
      assert.equal((await s.store.keys.getProvider("disks"))?.disabledAt, null);
    });

    test("time: an expired token, a host past its attestation deadline, then its tokens revoked by the sweep", async () => {
      const body = { plaintext: b64("x") };
      const start = s.clock.now;
      try {
        const t = await attestToken(s, h1);
        await op(s, t, "disks", "encrypt", body);
        // past the deadline (interval × grace) but before the token expires: unhealthy, though the sweeper has not run
        s.clock.now = start + DEFAULT_ATTEST_CONFIG.intervalMs * DEFAULT_ATTEST_CONFIG.grace + 1_000;
        assert.ok(s.clock.now < start + DEFAULT_ATTEST_CONFIG.tokenTtlMs);
        await denied(s, t, "disks", "encrypt", body, 403, "ERR_HOST_UNHEALTHY");
        // the sweep marks it unhealthy and revokes its tokens: revocation is checked, not only the signature
        const changes = await sweepSilentHosts(s.store, () => s.clock.now);
        assert.ok(changes.some((c) => c.host === "web-1"));
        await denied(s, t, "disks", "encrypt", body, 401, "ERR_TOKEN_REVOKED");
        // attests again: healthy with a new token; the old one stays revoked
        const t3 = await attestToken(s, h1);
        await op(s, t3, "disks", "encrypt", body);
        await denied(s, t, "disks", "decrypt", { ciphertext: "AAAA" }, 401, "ERR_TOKEN_REVOKED");
        s.clock.now += DEFAULT_ATTEST_CONFIG.tokenTtlMs + 1_000;
        await denied(s, t3, "disks", "encrypt", body, 401, "ERR_TOKEN_EXPIRED");
        const audit = await s.store.audit.list({ limit: 10000 });
        const codes = audit.filter((e) => e.action.startsWith("keys.") && e.outcome === "denied").map((e) => (e.details as { code: string }).code);
        for (const code of ["ERR_HOST_UNHEALTHY", "ERR_TOKEN_REVOKED", "ERR_TOKEN_EXPIRED"]) assert.ok(codes.includes(code), code);
      } finally {
        s.clock.now = Date.now();
      }
    });
  });
}
