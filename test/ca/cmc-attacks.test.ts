/**
 * Attacks on the Windows key attestation round trip (MS-WCCE CMC EK challenge, src/ca/cmc.ts), each
 * refused with its exact code by the real service over HTTP, the client made of tpm2-tools + openssl:
 * EK info encrypted to another CA; a trusted EK's public parts (EKpub and certificate) sent with
 * another TPM's AIK, whose TPM cannot activate the challenge and whose guess is refused; the answer to
 * another request; an expired and an unknown request id; an answer from another requester (which does
 * not spend the challenge); a request an operator denied (`tpmtrust ca requests`). The AIK-info
 * variant's twins: test/ca/cmc-aik.test.ts.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ekHash } from "../../src/verify/ek/index.js";
import { api } from "../e2e/harness.js";
import { cli } from "../helpers/cli.js";
import { runTool } from "../helpers/tpm2tools.js";
import { CIPHERS, initial, post, problem, readChallenge, setup, type CmcSetting } from "../helpers/cmc.js";

let s: CmcSetting;
before(async () => {
  s = await setup();
});
after(async () => {
  await s?.close();
});

/** `secret` encrypted to the exchange certificate by openssl, as a client's answer. */
async function envelope(secret: Buffer): Promise<Buffer> {
  writeFileSync(join(s.dir, "guess.bin"), secret);
  writeFileSync(join(s.dir, "xchg.pem"), s.xchgPem);
  return runTool("openssl", ["cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", join(s.dir, "guess.bin"), join(s.dir, "xchg.pem")]);
}

test("EK info encrypted to another CA's exchange certificate: ERR_DECRYPT_FAILED, events 22 and 53", async () => {
  await runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Other CA-Xchg", "-days", "1", "-keyout", join(s.dir, "other.key"), "-out", join(s.dir, "other.pem")]);
  const { request } = await initial(s.a, { ekCert: s.ekCertA, recipientPem: readFileSync(join(s.dir, "other.pem"), "utf8") });
  const p = problem(await post(request), 422, "ERR_DECRYPT_FAILED");
  assert.equal(p.details.adcsEvent, 22);
  assert.equal(p.details.hresult, "0x8009481A");
  const audit = await s.svc.server.store.audit.list({ newestFirst: true, limit: 2 });
  assert.deepEqual(audit.map((e) => e.action).sort(), ["ca.attestation.error", "ca.request.denied"]);
});

test("another TPM's AIK with a trusted EK's public parts: the TPM cannot activate the challenge, and a guessed answer is ERR_ACTIVATION_FAILED", async () => {
  // B sends A's EKpub and EK certificate (both public) with its own AIK and key
  const { request } = await initial(s.b, { ekSpki: s.a.ekSpki, ekCert: s.ekCertA });
  const ch = await readChallenge(s.b, await post(request));
  // the challenge is made to A's EK: B's TPM refuses it
  await assert.rejects(s.b.answer(ch.challenge, s.xchgPem, CIPHERS[ch.cipher]), /tpm2_activatecredential/);
  problem(await post(await envelope(randomBytes(32)), { requestId: ch.requestId }), 422, "ERR_ACTIVATION_FAILED");
  // the challenge is spent by the wrong answer
  problem(await post(await envelope(randomBytes(32)), { requestId: ch.requestId }), 422, "ERR_NONCE_REUSED");
});

test("the answer to another request, an expired and an unknown request id, an answer from another requester", async () => {
  const x = await readChallenge(s.a, await post((await initial(s.a, { ekCert: s.ekCertA })).request));
  const y = await readChallenge(s.a, await post((await initial(s.a, { ekCert: s.ekCertA })).request));
  const answerX = await s.a.answer(x.challenge, s.xchgPem, CIPHERS[x.cipher]);
  problem(await post(answerX, { requestId: y.requestId }), 422, "ERR_ACTIVATION_FAILED");

  // another requester (an admin token) may not answer an anonymous request, and does not spend it
  problem(await post(answerX, { requestId: x.requestId, token: s.svc.admin }), 403, "ERR_FORBIDDEN");
  assert.equal((await post(answerX, { requestId: x.requestId })).status, 201);

  const z = await readChallenge(s.a, await post((await initial(s.a, { ekCert: s.ekCertA })).request));
  const answerZ = await s.a.answer(z.challenge, s.xchgPem, CIPHERS[z.cipher]);
  assert.ok(await s.svc.server.store.caPending.setExpiry(z.requestId, Date.now() - 1));
  problem(await post(answerZ, { requestId: z.requestId }), 422, "ERR_NONCE_EXPIRED");

  const unknown = z.requestId === 1 ? 2 : 1;
  problem(await post(answerZ, { requestId: unknown }), 422, "ERR_NONCE_UNKNOWN");
  // an answer without its request id, a request id with a new request
  problem(await post(answerZ), 400, "ERR_VALIDATION");
});

test("operators: ca requests list/show (CLI and API) say who asked, template, subject, EK hash and expiry; deny is admin-only, audited as event 53, and the answer then finds no request", async () => {
  const x = await readChallenge(s.a, await post((await initial(s.a, { ekCert: s.ekCertA })).request));
  const db = join(s.dir, "db.sqlite");
  const listed = await cli(["ca", "requests", "list", "--json", "--db", db]);
  assert.equal(listed.code, 0, listed.stderr);
  const row = listed.json().find((r: { requestId: number }) => r.requestId === x.requestId);
  assert.deepEqual([row.state, row.template, row.subject, row.requester, row.ekHash, row.ekCertificates], ["pending", "WinTpm", "CN=win11.example.test", "anonymous", ekHash(s.a.ekSpki), 1]);
  assert.ok(Date.parse(row.expiresAt) > Date.now());

  const auditor = (await s.svc.server.store.adminTokens.create({ at: Date.now(), role: "auditor" })).token;
  const shown = await api(s.svc.url, "GET", `/v1/ca/requests/${x.requestId}`, undefined, auditor);
  assert.equal(shown.status, 200, JSON.stringify(shown.body));
  assert.deepEqual(shown.body, row);
  assert.ok((await api(s.svc.url, "GET", "/v1/ca/requests", undefined, auditor)).body.some((r: { requestId: number }) => r.requestId === x.requestId));
  assert.equal((await api(s.svc.url, "GET", "/v1/ca/requests")).status, 401);
  assert.equal((await api(s.svc.url, "POST", `/v1/ca/requests/${x.requestId}/deny`, {}, auditor)).status, 403);

  const denied = await cli(["ca", "requests", "deny", String(x.requestId), "--reason", "unknown machine", "--json", "--db", db]);
  assert.equal(denied.code, 0, denied.stderr);
  const entry = (await s.svc.server.store.audit.list({ action: "ca.request.denied", newestFirst: true, limit: 1 }))[0];
  assert.deepEqual([entry.outcome, (entry.details as any).adcsEvent, (entry.details as any).requestId, (entry.details as any).reason], ["denied", 53, x.requestId, "unknown machine"]);
  problem(await post(await s.a.answer(x.challenge, s.xchgPem, CIPHERS[x.cipher]), { requestId: x.requestId }), 422, "ERR_NONCE_UNKNOWN");
  const again = await api(s.svc.url, "POST", `/v1/ca/requests/${x.requestId}/deny`, {}, s.svc.admin);
  assert.deepEqual([again.status, again.body.code], [404, "ERR_NOT_FOUND"]);
});
