/**
 * ACME with device-attest-01 over real HTTP on 127.0.0.1: tpmtrust's agent as the ACME client
 * (library and CLI), the independent npm `acme-client` for directory, account, order,
 * authorization, finalize and download (the attestation object made by the swtpm host), and
 * negatives: protocol errors as ACME problem types, rejected attestation with stable codes.
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import acmeClient from "acme-client";
import { calculateJwkThumbprint, exportJWK, FlattenedSign, generateKeyPair } from "jose";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, identify, readState, ServiceClient } from "../../src/agent/index.js";
import { acmeEnroll, deviceAttestObject } from "../../src/agent/acme.js";
import { createTpmKey, tpmCsr } from "../../src/agent/enroll-cert.js";
import { initCa } from "../../src/ca/authority.js";
import { CA_OID } from "../../src/ca/oids.js";
import { TpmTrustError } from "../../src/errors.js";
import { FlushContext, TpmClient } from "../../src/tpm/commands/index.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { api, startService, trustSwtpmCa, type Service } from "../e2e/harness.js";

let dir: string;
let svc: Service;
let swtpm: Swtpm;
let tpm: TpmClient;
const stateDir = () => join(dir, "state");
const directory = (t: string) => `${svc.url}/acme/${t}/directory`;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-acme-"));
  swtpm = await startSwtpm({ ekCerts: true });
  tpm = new TpmClient(await openTransport(swtpm.tcti));
  svc = await startService(dir, join(dir, "db.sqlite"));
  await trustSwtpmCa(svc, swtpm);
  await initCa(svc.server.store, { actor: "test", now: Date.now(), keyDir: join(dir, "ca-keys"), alg: "rsa-2048" });
  const { identity } = await identify(tpm);
  assert.equal((await api(svc.url, "POST", "/v1/hosts", { name: "host-a", hardwareClass: "test", identity }, svc.admin)).status, 201);
  await activate(tpm, new ServiceClient({ url: svc.url }), { stateDir: stateDir(), akHandle: null, akAlg: "ecc" });
  for (const doc of [
    { name: "acme-cert", keyAttestation: { mode: "required", trustModels: ["ek-cert"] } },
    { name: "acme-key", keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
    { name: "acme-none", keyAttestation: { mode: "none" } },
  ]) {
    assert.equal((await api(svc.url, "POST", "/v1/ca/templates", doc, svc.admin)).status, 201);
  }
});

after(async () => {
  await tpm?.close().catch(() => undefined);
  await svc?.close();
  await swtpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const policiesOf = (pem: string) => [...(new x509.X509Certificate(pem).getExtension(x509.CertificatePolicyExtension)?.policies ?? [])];

test("tpmtrust's agent: device-attest-01 with the bound AK, certificate with exactly the passed policy, subject = the host", async () => {
  const r = await acmeEnroll(tpm, { stateDir: stateDir(), directory: directory("acme-cert") });
  const pem = readFileSync(join(r.dir, "cert.pem"), "utf8");
  assert.deepEqual(policiesOf(pem), [CA_OID.ekCert]);
  const cert = new x509.X509Certificate(pem);
  assert.equal(cert.subject, "CN=host-a");
  assert.equal(r.identifier, "host-a");
  const view = await api(svc.url, "GET", `/v1/ca/certs/${r.serial}`, undefined, svc.admin);
  assert.equal(view.body.host, "host-a");
  assert.equal(view.body.attestation.format, "acme-device-attest-01");
  // mode none: attested all the same (ACME needs the challenge), no policies
  const none = await acmeEnroll(tpm, { stateDir: stateDir(), directory: directory("acme-none"), keyAlg: "ecc" });
  assert.deepEqual(policiesOf(readFileSync(join(none.dir, "cert.pem"), "utf8")), []);
});

test("the CLI: tpmtrust agent acme --directory … --tpm swtpm:…", async () => {
  const r = await cli(["agent", "acme", "--directory", directory("acme-cert"), "--tpm", swtpm.tcti, "--state-dir", stateDir(), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.json();
  assert.deepEqual(policiesOf(readFileSync(join(out.dir, "cert.pem"), "utf8")), [CA_OID.ekCert]);
});

test("an EK not trusted under the template's models: the challenge is invalid with ERR_EK_NOT_TRUSTED", async () => {
  await assert.rejects(acmeEnroll(tpm, { stateDir: stateDir(), directory: directory("acme-key") }), (e: unknown) => {
    assert.ok(e instanceof TpmTrustError);
    assert.equal(e.code, "ERR_EK_NOT_TRUSTED", e.message);
    return true;
  });
});

test("the independent npm acme-client: directory, account, order, authorization, finalize and download against tpmtrust", async () => {
  const accountKey = await acmeClient.crypto.createPrivateEcdsaKey();
  const client = new acmeClient.Client({ directoryUrl: directory("acme-cert"), accountKey });
  const account = await client.createAccount({ termsOfServiceAgreed: true, contact: ["mailto:ops@example.com"] });
  assert.equal(account.status, "valid");
  assert.match(client.getAccountUrl(), /\/acme\/acct\//);
  const order = await client.createOrder({ identifiers: [{ type: "permanent-identifier", value: "host-a" }] as never });
  assert.equal(order.status, "pending");
  const [authz] = await client.getAuthorizations(order);
  assert.deepEqual(authz.identifier, { type: "permanent-identifier", value: "host-a" });
  const challenge = (authz.challenges as unknown as { type: string; status: string; token: string; url: string }[]).find((c) => c.type === "device-attest-01")!;
  assert.ok(challenge && challenge.status === "pending");
  // the attestation: this TPM, over acme-client's account key thumbprint
  const jwk = (client as unknown as { http: { getJwk(): Record<string, string> } }).http.getJwk();
  const keyAuthorization = `${challenge.token}.${await calculateJwkThumbprint(jwk, "sha256")}`;
  const key = await createTpmKey(tpm, "ecc");
  try {
    const attObj = await deviceAttestObject(tpm, readState(stateDir()), { handle: key.handle, publicArea: key.created.publicArea }, keyAuthorization);
    const answered = await (client as unknown as { api: { completeChallenge(u: string, d: unknown): Promise<{ data: { status: string } }> } }).api.completeChallenge(challenge.url, { attObj: attObj.toString("base64url") });
    assert.equal(answered.data.status, "valid");
    const ready = await client.getOrder(order);
    assert.equal(ready.status, "ready");
    const csr = await tpmCsr(tpm, key.handle, key.created.public, { subject: "CN=host-a" });
    const pemCsr = `-----BEGIN CERTIFICATE REQUEST-----\n${csr.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE REQUEST-----\n`;
    const finalized = await client.finalizeOrder(ready, pemCsr);
    assert.equal(finalized.status, "valid");
    const chain = await client.getCertificate(finalized);
    const leaf = chain.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/)![0];
    assert.deepEqual(policiesOf(leaf), [CA_OID.ekCert]);
    assert.equal(new x509.X509Certificate(leaf).subject, "CN=host-a");
  } finally {
    await tpm.run(FlushContext, { flushHandle: key.handle });
  }
});

/** A raw JWS client for protocol negatives. */
async function rawClient() {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = await exportJWK(publicKey);
  const dir = (await (await fetch(directory("acme-cert"))).json()) as Record<string, string>;
  let kid: string | undefined;
  const nonce = async () => (await fetch(dir.newNonce, { method: "HEAD" })).headers.get("replay-nonce")!;
  const post = async (url: string, payload: unknown, o: { nonce?: string; url?: string } = {}) => {
    const header = { alg: "ES256", nonce: o.nonce ?? (await nonce()), url: o.url ?? url, ...(kid ? { kid } : { jwk }) };
    const jws = await new FlattenedSign(new TextEncoder().encode(payload === undefined ? "" : JSON.stringify(payload))).setProtectedHeader(header).sign(privateKey);
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/jose+json" }, body: JSON.stringify(jws) });
    const text = await r.text();
    return { status: r.status, type: r.headers.get("content-type"), location: r.headers.get("location"), replayNonce: r.headers.get("replay-nonce"), body: text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
  };
  const acct = await post(dir.newAccount, { termsOfServiceAgreed: true });
  assert.equal(acct.status, 201);
  kid = acct.location!;
  return { dir, post, nonce, jwk };
}

const acmeErr = (r: { status: number; type: string | null; body: any }, type: string, status = 400) => {
  assert.match(r.type ?? "", /^application\/problem\+json/);
  assert.equal(r.body.type, `urn:ietf:params:acme:error:${type}`, JSON.stringify(r.body));
  assert.equal(r.status, status);
};

test("protocol negatives: reused nonce, wrong url, unsupported identifier, orders of others, finalize before ready", async () => {
  const c = await rawClient();
  const n = await c.nonce();
  const ok = await c.post(c.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value: "host-a" }] }, { nonce: n });
  assert.equal(ok.status, 201);
  assert.ok(ok.replayNonce);
  acmeErr(await c.post(c.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value: "host-a" }] }, { nonce: n }), "badNonce");
  acmeErr(await c.post(c.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value: "host-a" }] }, { url: `${svc.url}/acme/elsewhere` }), "unauthorized", 403);
  acmeErr(await c.post(c.dir.newOrder, { identifiers: [{ type: "dns", value: "host-a.example" }] }), "unsupportedIdentifier");
  acmeErr(await c.post(ok.body.finalize, { csr: "AAAA" }), "orderNotReady", 403);
  const other = await rawClient();
  acmeErr(await other.post(ok.location!, undefined), "malformed");
  // not JWS at all
  const plain = await fetch(c.dir.newOrder, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.ok(plain.status >= 400 && plain.status < 500);
});

test("attestation negatives: wrong key authorization digest, another host's identifier, a CSR for another key", async () => {
  const c = await rawClient();
  const order = async (value: string) => {
    const o = await c.post(c.dir.newOrder, { identifiers: [{ type: "permanent-identifier", value }] });
    const authz = (await c.post(o.body.authorizations[0], undefined)).body;
    return { o, ch: authz.challenges[0] as { url: string; token: string } };
  };
  const thumb = await calculateJwkThumbprint(c.jwk, "sha256");
  const state = readState(stateDir());
  const key = await createTpmKey(tpm, "ecc");
  try {
    const k = { handle: key.handle, publicArea: key.created.publicArea };
    const a = await order("host-a");
    const wrong = await deviceAttestObject(tpm, state, k, `${a.ch.token}.not-the-thumbprint`);
    const r1 = await c.post(a.ch.url, { attObj: wrong.toString("base64url") });
    assert.equal(r1.body.status, "invalid");
    assert.equal(r1.body.error.code, "ERR_NONCE_MISMATCH");
    assert.equal((await c.post(a.o.location!, undefined)).body.status, "invalid");

    const b = await order("host-zz");
    const r2 = await c.post(b.ch.url, { attObj: (await deviceAttestObject(tpm, state, k, `${b.ch.token}.${thumb}`)).toString("base64url") });
    assert.equal(r2.body.error.type, "urn:ietf:params:acme:error:rejectedIdentifier");

    const d = await order("host-a");
    const r3 = await c.post(d.ch.url, { attObj: (await deviceAttestObject(tpm, state, k, `${d.ch.token}.${thumb}`)).toString("base64url") });
    assert.equal(r3.body.status, "valid", JSON.stringify(r3.body));
    const other = await createTpmKey(tpm, "ecc");
    let csr: Buffer;
    try {
      csr = await tpmCsr(tpm, other.handle, other.created.public, { subject: "CN=host-a" });
    } finally {
      await tpm.run(FlushContext, { flushHandle: other.handle });
    }
    const fin = await c.post(d.o.body.finalize, { csr: csr.toString("base64url") });
    acmeErr(fin, "badCSR");
    assert.equal(fin.body.code, "ERR_KEY_MISMATCH");
    assert.equal((await c.post(d.o.location!, undefined)).body.status, "ready", "a bad CSR leaves the order ready");
    const good = await tpmCsr(tpm, key.handle, key.created.public, { subject: "CN=host-a" });
    const done = await c.post(d.o.body.finalize, { csr: good.toString("base64url") });
    assert.equal(done.body.status, "valid");
    const pem = await c.post(done.body.certificate, undefined);
    assert.match(pem.type ?? "", /^application\/pem-certificate-chain/);
  } finally {
    await tpm.run(FlushContext, { flushHandle: key.handle });
  }
});
