/** Attestation, policy, webhook, JWKS and audit routes: strict schemas, roles, problem+json codes (fastify inject, SQLite). */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/server/app.js";
import { openStore, type Store } from "../../src/store/index.js";
import { secureBootPolicy } from "../../src/policy/secure-boot.js";
import { EVENTLOGS } from "../helpers/attest-host.js";

const dir = mkdtempSync(join(tmpdir(), "tpmtrust-attest-routes-"));
let store: Store;
let app: FastifyInstance;
let admin: string;
let auditor: string;
before(async () => {
  store = await openStore(join(dir, "t.db"));
  app = await buildApp({ store, logger: false, attest: { sweepMs: 0 } });
  admin = (await store.adminTokens.create({ at: Date.now(), role: "admin" })).token;
  auditor = (await store.adminTokens.create({ at: Date.now(), role: "auditor" })).token;
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const as = (token?: string) => (token ? { authorization: `Bearer ${token}` } : {});
const evidence = { akNameHex: "000b" + "11".repeat(32), nonceHex: "22".repeat(32), quotes: [{ attest: "AAAA", signature: "AAAA" }], pcrs: {} };

test("roles: admins write policies and webhooks, auditors read policies and the audit log, nobody anonymous", async () => {
  const body = { kind: "secureboot", name: "sb", document: secureBootPolicy("sb") };
  assert.equal((await app.inject({ method: "POST", url: "/v1/policies", payload: body })).json().code, "ERR_UNAUTHENTICATED");
  const denied = await app.inject({ method: "POST", url: "/v1/policies", payload: body, headers: as(auditor) });
  assert.deepEqual([denied.statusCode, denied.json().code], [403, "ERR_FORBIDDEN"]);
  const created = await app.inject({ method: "POST", url: "/v1/policies", payload: body, headers: as(admin) });
  assert.equal(created.statusCode, 201);
  assert.equal((await app.inject({ method: "GET", url: `/v1/policies/${created.json().id}`, headers: as(auditor) })).json().document.kind, "tpmtrust.secureboot");
  assert.equal((await app.inject({ method: "GET", url: "/v1/webhooks", headers: as(auditor) })).statusCode, 403);

  const audit = await app.inject({ method: "GET", url: "/v1/audit?action=policy.add&order=desc&limit=5", headers: as(auditor) });
  assert.equal(audit.statusCode, 200);
  assert.deepEqual(audit.json().entries.map((e: { action: string; outcome: string }) => `${e.action}:${e.outcome}`), ["policy.add:success"]);
  const verify = await app.inject({ method: "GET", url: "/v1/audit/verify", headers: as(auditor) });
  assert.equal(verify.json().ok, true);
  assert.equal(verify.json().verified, (await store.audit.head()).seq);
});

test("strict bodies: unknown fields, coercion, bad base64 and unknown kinds are ERR_VALIDATION", async () => {
  const post = (url: string, payload: unknown, token?: string) => app.inject({ method: "POST", url, payload: payload as object, headers: as(token) });
  for (const [url, payload, token] of [
    ["/v1/attestations", { ...evidence, extra: 1 }],
    ["/v1/attestations", { ...evidence, quotes: [] }],
    ["/v1/attestations", { ...evidence, pcrs: { sha256: { "07": "00".repeat(32) } } }],
    ["/v1/attestations", { ...evidence, eventLog: "not base64!" }],
    ["/v1/attestations", { ...evidence, eventLog: "AAAA", eventLogSha256: "00".repeat(32) }],
    ["/v1/attestations/challenge", { akNameHex: 42 }],
    ["/v1/attestations/challenge", { akNameHex: evidence.akNameHex, banks: ["md5"] }],
    ["/v1/policies", { kind: "nonsense", name: "x", document: {} }, admin],
    ["/v1/policies", { kind: "baseline", name: "x", document: { kind: "tpmtrust.baseline" } }, admin],
    ["/v1/webhooks", { url: "ftp://example.test/", secret: "0123456789abcdef" }, admin],
    ["/v1/webhooks", { url: "https://example.test/", secret: "short" }, admin],
  ] as [string, unknown, string?][]) {
    const r = await post(url, payload, token);
    assert.equal(r.statusCode, 400, `${url} ${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
    assert.equal(r.json().code, "ERR_VALIDATION");
    assert.equal(r.headers["content-type"], "application/problem+json; charset=utf-8");
  }
  // structures that do not parse are ERR_PARSE_* naming the field, audited as a rejection
  const junk = await post("/v1/attestations", evidence);
  assert.equal(junk.statusCode, 400);
  assert.match(junk.json().code, /^ERR_PARSE_/);
  assert.equal(junk.json().details.field, "quotes[0].attest");
  const [rejected] = await store.audit.list({ action: "attestation.reject", newestFirst: true, limit: 1 });
  assert.equal((rejected.details as { code: string }).code, junk.json().code);
});

test("an AK that is not bound: no challenge, no attestation; JWKS is public and holds no private key", async () => {
  const c = await app.inject({ method: "POST", url: "/v1/attestations/challenge", payload: { akNameHex: evidence.akNameHex } });
  assert.deepEqual([c.statusCode, c.json().code], [422, "ERR_AK_NOT_BOUND"]);
  const log = readFileSync(join(EVENTLOGS, "rhel8-gce-uefi.bin")).toString("base64");
  const { TPM_GENERATED_VALUE, TPM_ST, TPM_ALG } = await import("../../src/tpm/constants.js");
  const { encodeTpmsAttest, encodeTpmtSignature } = await import("../../src/tpm/structures.js");
  const attest = encodeTpmsAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: Buffer.alloc(0),
    extraData: Buffer.alloc(32, 0x22),
    clockInfo: { clock: 1n, resetCount: 0, restartCount: 0, safe: true },
    firmwareVersion: 0n,
    attested: { pcrSelect: [], pcrDigest: Buffer.alloc(32) },
  }).toString("base64");
  const signature = encodeTpmtSignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: Buffer.alloc(32, 1), s: Buffer.alloc(32, 1) }).toString("base64");
  const r = await app.inject({ method: "POST", url: "/v1/attestations", payload: { ...evidence, quotes: [{ attest, signature }], eventLog: log } });
  assert.deepEqual([r.statusCode, r.json().code], [422, "ERR_AK_NOT_BOUND"]);
  const jwks = await app.inject({ method: "GET", url: "/.well-known/jwks.json" });
  // the signing key may exist already (the audit checkpointer signs with it): public parts only
  for (const k of jwks.json().keys) assert.deepEqual([k.kty, k.alg, k.d], ["EC", "ES256", undefined]);
  const openapi = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
  for (const path of ["/v1/attestations", "/v1/attestations/challenge", "/v1/policies", "/v1/webhooks", "/v1/audit", "/v1/audit/verify", "/.well-known/jwks.json"]) assert.ok(openapi.paths[path], path);
});
