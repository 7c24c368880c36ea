/** Limits on the public endpoints: challenges and activations started per client address (HTTP: 429 + Retry-After, audited once per window), per window, in the database. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { startActivation } from "../../src/attest/activation.js";
import { addPolicy } from "../../src/attest/policies.js";
import { learnBaseline } from "../../src/policy/baseline.js";
import { parseEventLog } from "../../src/verify/eventlog/index.js";
import { addHost } from "../../src/attest/hosts.js";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { akTemplate } from "../../src/tpm/commands/index.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { ekHash } from "../../src/verify/ek/index.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-limits-"));
const T0 = Date.parse("2026-03-01T00:00:00Z");
const WINDOW = 60_000;
let clock = T0;
let store: Store;
let app: FastifyInstance;
before(async () => {
  store = await openStore(join(dir, "t.db"));
  app = await buildApp({ store, logger: false, now: () => clock, attest: { sweepMs: 0, challengeLimit: 2, limitWindowMs: WINDOW } });
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const akName = (tag: string) => Buffer.concat([Buffer.from("000b", "hex"), createHash("sha256").update(tag).digest()]);

test("challenges per client address: past the limit 429 ERR_TOO_MANY_ATTEMPTS with Retry-After, audited once; the same AK from another address is served; a new window allows again", async () => {
  for (const [host, tag] of [["h1", "ak1"], ["h2", "ak2"]]) {
    await store.hosts.add({ at: Date.now(), name: host, hardwareClass: "c", policyVersion: "v2", eks: [] });
    await store.aks.bind({ at: Date.now(), hostName: host, name: akName(tag), public: Buffer.from(`public of ${tag}`) });
  }
  // a challenge names the PCRs of the class's baseline: a class without one is refused (ERR_NO_BASELINE)
  const log = parseEventLog(readFileSync("test/fixtures/eventlogs/rhel8-gce-uefi.bin"));
  await addPolicy(store, "test", clock, { kind: "baseline", name: "c", hardwareClass: "c", document: learnBaseline("c", [log], [0]) });
  const challenge = (tag: string, remoteAddress: string) => app.inject({ method: "POST", url: "/v1/attestations/challenge", remoteAddress, payload: { akNameHex: akName(tag).toString("hex") } });
  assert.equal((await challenge("ak1", "10.0.0.1")).statusCode, 201);
  assert.equal((await challenge("ak2", "10.0.0.1")).statusCode, 201);
  const refused = await challenge("ak1", "10.0.0.1");
  assert.equal(refused.statusCode, 429);
  assert.equal(refused.json().code, "ERR_TOO_MANY_ATTEMPTS");
  assert.equal(refused.headers["retry-after"], "60");
  assert.equal(refused.headers["content-type"], "application/problem+json; charset=utf-8");
  assert.equal((await challenge("ak1", "10.0.0.1")).statusCode, 429);
  const denied = await store.audit.list({ action: "attestation.challenge", outcomes: ["denied"] });
  assert.deepEqual(
    denied.map((d) => [d.actor, d.subject, (d.details as { source: string }).source]),
    [["anonymous", akName("ak1").toString("hex"), "10.0.0.1"]],
    "one entry per address and window",
  );

  assert.equal((await challenge("ak1", "10.0.0.2")).statusCode, 201, "the limit is per address, never per AK");
  clock += WINDOW;
  assert.equal((await challenge("ak1", "10.0.0.1")).statusCode, 201, "a new window");
});

test("activations started per client address: past the limit ERR_TOO_MANY_ATTEMPTS before any lookup or MakeCredential, audited once; another address is served", async () => {
  const ekPub = readFileSync("test/fixtures/ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin");
  await store.trust.addAllowlist(ekHash(decodeTpm2bPublic(ekPub)), { at: Date.now() });
  const identity = { ekPublics: [{ alg: "rsa2048", public: ekPub.toString("base64") }], ekCertificates: [], tpm: { manufacturer: "IFX", vendor: "", firmware: "7.85" } };
  await addHost(store, { name: "lab", hardwareClass: "c", policyVersion: "v1", identity }, { actor: "test", now: T0 });
  const t = akTemplate() as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>;
  const akPublic = encodeTpm2bPublic({ ...t, unique: decodeTpm2bPublic(ekPub).unique as Buffer });
  const start = (now: number, source: string) => startActivation(store, { ekPublic: ekPub, akPublic }, { now, limit: { source, limit: 1, windowMs: WINDOW } });
  await start(T0, "10.0.0.3");
  const tooMany = (e: unknown) => (e as { code?: string }).code === "ERR_TOO_MANY_ATTEMPTS" && (e as { details?: { retryAfterSeconds?: number } }).details?.retryAfterSeconds === 60;
  await assert.rejects(start(T0 + 1, "10.0.0.3"), tooMany);
  await assert.rejects(start(T0 + 2, "10.0.0.3"), tooMany);
  const denied = await store.audit.list({ action: "ak.activation.start", outcomes: ["denied"] });
  assert.deepEqual(denied.map((d) => [d.actor, (d.details as { code: string; source: string }).code, (d.details as { source: string }).source]), [["anonymous", "ERR_TOO_MANY_ATTEMPTS", "10.0.0.3"]]);
  await start(T0 + 3, "10.0.0.4");
  await start(T0 + WINDOW, "10.0.0.3");
});
