/**
 * Revoking an EK (issue #12 §2): refused at every decision from the next one on, whatever still
 * vouches for it (here its allow-list entry stays); the trust sweep turns its host unhealthy
 * (ERR_EK_NOT_TRUSTED, cause ERR_EK_REVOKED), revokes its tokens and queues the webhook without
 * waiting for an attestation; DPS refuses the device; lifting the revocation restores trust.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { startActivation } from "../../src/attest/activation.js";
import { sweepTrust } from "../../src/attest/health.js";
import { addHost } from "../../src/attest/hosts.js";
import { isTpmTrustError } from "../../src/errors.js";
import { matchEnrollment } from "../../src/provisioning/enrollment-match.js";
import { addEnrollment } from "../../src/provisioning/enrollments.js";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { akTemplate } from "../../src/tpm/commands/index.js";
import type { TPM_ALG } from "../../src/tpm/constants.js";
import { decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { requireHostTrusted } from "../../src/trust/host-trust.js";
import { confirm, revokeEk, unrevokeEk } from "../../src/trust/trust.js";
import { ekHash } from "../../src/verify/ek/index.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-revoke-"));
const EK_PUB = readFileSync("test/fixtures/ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin");
const EK = decodeTpm2bPublic(EK_PUB);
const HASH = ekHash(EK);
let clock = Date.parse("2026-03-01T00:00:00Z");
const now = () => clock;
let store: Store;
let app: FastifyInstance;
let admin: string;

before(async () => {
  store = await openStore(join(dir, "t.db"));
  app = await buildApp({ store, logger: false, now, attest: { sweepMs: 0 } });
  admin = (await store.adminTokens.create({ role: "admin", at: clock })).token;
  await store.trust.addAllowlist(HASH, { at: clock });
  const identity = { ekPublics: [{ alg: "rsa2048", public: EK_PUB.toString("base64") }], ekCertificates: [], tpm: { manufacturer: "IFX", vendor: "", firmware: "7.85" } };
  await addHost(store, { name: "lab", hardwareClass: "c", policyVersion: "v1", identity }, { actor: "test", now: clock });
  await store.hosts.setHealth("lab", { health: "healthy", at: clock });
  await addEnrollment(store, { registrationId: "device-1", endorsementKey: EK_PUB }, { actor: "test", now: clock });
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const code = (c: string, cause?: string) => (e: unknown) => isTpmTrustError(e) && e.code === c && (cause === undefined || e.details?.cause === cause);
const t = akTemplate() as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>;
const akPublic = encodeTpm2bPublic({ ...t, unique: EK.unique as Buffer });

test("a revoked EK is refused at every decision, its host turned unhealthy by the sweep; unrevoked, it is trusted again", async () => {
  const host = (await store.hosts.get("lab"))!;
  assert.equal(await requireHostTrusted(store, host, clock), "ek-key");
  const r = await revokeEk(store, { ekHash: HASH.toUpperCase(), reason: "stolen laptop" }, { actor: "test", now: clock });
  assert.deepEqual([r.added, r.entry.ekHash, r.entry.reason], [true, HASH, "stolen laptop"]);
  clock += 1;

  // attestation verdicts, tokens, certificates and keys ask requireHostTrusted
  await assert.rejects(requireHostTrusted(store, host, clock), code("ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED"));
  await assert.rejects(startActivation(store, { ekPublic: EK_PUB, akPublic }, { now: clock }), code("ERR_EK_REVOKED"));
  await assert.rejects(matchEnrollment(store, "device-1", EK, undefined, new Date(clock)), code("ERR_EK_REVOKED"));
  const c = await confirm(store, { ekHash: HASH }, { actor: "test", now: clock });
  assert.deepEqual([c.trusted, c.methods["ek-key"].code], [false, "ERR_EK_REVOKED"]);
  const again = { name: "lab-2", hardwareClass: "c", policyVersion: "v1" as const, identity: { ekPublics: [{ alg: "rsa2048", public: EK_PUB.toString("base64") }], ekCertificates: [], tpm: { manufacturer: "IFX", vendor: "", firmware: "7.85" } } };
  await assert.rejects(addHost(store, again, { actor: "test", now: clock }), code("ERR_EK_REVOKED"));

  // the sweep, without any attestation: unhealthy, audited with the cause, webhook queued; once only
  const { changes } = await sweepTrust(store, now);
  assert.deepEqual(changes.map((x) => [x.host, x.previous, x.health, x.reason, x.cause]), [["lab", "healthy", "unhealthy", "ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED"]]);
  assert.deepEqual((await sweepTrust(store, now)).changes, []);
  const [entry] = await store.audit.list({ action: "host.health", newestFirst: true, limit: 1 });
  assert.deepEqual([entry.subject, (entry.details as { reason: string }).reason, (entry.details as { cause: string }).cause], ["lab", "ERR_EK_NOT_TRUSTED", "ERR_EK_REVOKED"]);

  await unrevokeEk(store, HASH, { actor: "test", now: clock });
  assert.equal(await requireHostTrusted(store, host, clock), "ek-key");
  await assert.rejects(unrevokeEk(store, HASH, { actor: "test", now: clock }), code("ERR_NOT_FOUND"));
});

test("over the API: POST /v1/trust/revoked-eks (admin) revokes, audited; the service's sweep turns the host unhealthy at once; list and DELETE", async () => {
  await store.hosts.setHealth("lab", { health: "healthy", at: clock });
  const auth = { authorization: `Bearer ${admin}` };
  assert.equal((await app.inject({ method: "POST", url: "/v1/trust/revoked-eks", payload: { ekHash: HASH } })).statusCode, 401);
  const r = await app.inject({ method: "POST", url: "/v1/trust/revoked-eks", headers: auth, payload: { ekHash: HASH, reason: "decommissioned" } });
  assert.equal(r.statusCode, 201, r.body);
  // the sweep runs on the change: wait for its outcome
  while ((await store.hosts.get("lab"))!.health !== "unhealthy") await new Promise((res) => setImmediate(res));
  assert.equal((await store.hosts.get("lab"))!.healthReason, "ERR_EK_NOT_TRUSTED");
  const list = await app.inject({ method: "GET", url: "/v1/trust/revoked-eks", headers: auth });
  assert.deepEqual(list.json().map((x: { ekHash: string; reason: string }) => [x.ekHash, x.reason]), [[HASH, "decommissioned"]]);
  const [audited] = await store.audit.list({ action: "trust.ek.revoke", newestFirst: true, limit: 1 });
  assert.deepEqual([audited.subject, audited.outcome], [HASH, "success"]);
  assert.equal((await app.inject({ method: "DELETE", url: `/v1/trust/revoked-eks/${HASH}`, headers: auth })).statusCode, 204);
  assert.equal((await app.inject({ method: "DELETE", url: `/v1/trust/revoked-eks/${HASH}`, headers: auth })).statusCode, 404);
});
