/**
 * The key attestation CA end to end: a swtpm host with an EK certificate from a local CA (trusted as
 * EKROOT/EKCA), registered and its AK activated over real HTTP on 127.0.0.1; certificates enrolled
 * per template mode and trust model, parsed back for exactly the expected issuance policies; a CSR
 * made by tpm2-tools + tpm2-openssl; KAST statements; negatives with stable codes and their AD CS
 * events; revocation and the CRL (checked by openssl).
 */
import "reflect-metadata";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activate, identify, ServiceClient, withEk } from "../../src/agent/index.js";
import { enrollCert, signingKeyTemplate, tpmCsr } from "../../src/agent/enroll-cert.js";
import { withAk } from "../../src/agent/attest.js";
import { withSrk } from "../../src/agent/keys.js";
import { tpm2bPublic } from "../../src/agent/tpm.js";
import { initCa } from "../../src/ca/authority.js";
import { CA_OID } from "../../src/ca/oids.js";
import { spkiFromTpmt } from "../../src/crypto/keys.js";
import { TpmTrustError } from "../../src/errors.js";
import { TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  ActivateCredential,
  akTemplate,
  Certify,
  CertifyCreation,
  Create,
  createAk,
  ekAuth,
  FlushContext,
  Load,
  readEkCertificates,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, decodeTpm2bPublic, decodeTpmtSignature, encodeTpm2bCreationData } from "../../src/tpm/structures.js";
import { ekHash } from "../../src/verify/ek/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { runTool, tpm2, tpm2Raw } from "../helpers/tpm2tools.js";
import { kads, kast, octets, pcpKeyBlob, sized } from "../helpers/windows-client.js";
import { currentXchg, xchgKey } from "../../src/ca/xchg.js";
import { openEnvelope, parseEnvelope } from "../../src/crypto/cms.js";
import { certificatePem } from "../../src/encoding.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { api, startService, trustSwtpmCa, type Service } from "../e2e/harness.js";

const { ekKey: P30, ekCert: P31, userCredentials: P32 } = CA_OID;

let dir: string;
let svc: Service;
let hostTpm: Swtpm;
let tpm: TpmClient;
let bareTpm: Swtpm;
let bare: TpmClient;
const stateA = () => join(dir, "state-a");
const stateB = () => join(dir, "state-b");

async function addHost(t: TpmClient, name: string, policyVersion: "v1" | "v2", stateDir: string): Promise<void> {
  const { identity } = await identify(t);
  const r = await api(svc.url, "POST", "/v1/hosts", { name, hardwareClass: "test", policyVersion, identity }, svc.admin);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await activate(t, new ServiceClient({ url: svc.url }), { stateDir, akHandle: null });
}

const template = (doc: Record<string, unknown>) => api(svc.url, "POST", "/v1/ca/templates", doc, svc.admin);
/** A new enroller token carrying `identity`. */
const enroller = async (identity: string) => (await svc.server.store.adminTokens.create({ at: Date.now(), role: "enroller", identity })).token;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-ca-"));
  [hostTpm, bareTpm] = await Promise.all([startSwtpm({ ekCerts: true }), startSwtpm()]);
  tpm = new TpmClient(await openTransport(hostTpm.tcti));
  bare = new TpmClient(await openTransport(bareTpm.tcti));
  // no periodic sweep: it purges expired nonces, and a negative below needs a stale one to stay
  svc = await startService(dir, join(dir, "db.sqlite"), { attest: { sweepMs: 0 } });
  await trustSwtpmCa(svc, hostTpm);
  await initCa(svc.server.store, { actor: "test", now: Date.now(), keyDir: join(dir, "ca-keys") });
  await addHost(tpm, "host-a", "v2", stateA());
  // host B: no EK certificate; registered under v1 by its allow-listed EK (trusted for ek-key only)
  const { identity } = await identify(bare);
  const ekPub = identity.ekPublics[0].public;
  const hashB = ekHash(decodeTpm2bPublic(Buffer.from(ekPub, "base64")));
  assert.equal((await api(svc.url, "POST", "/v1/trust/allowlist", { ekHash: hashB, label: "host-b" }, svc.admin)).status, 201);
  await addHost(bare, "host-b", "v1", stateB());
  for (const doc of [
    { name: "req-cert", keyAttestation: { mode: "required", trustModels: ["ek-cert"] } },
    { name: "req-key", keyAttestation: { mode: "required", trustModels: ["ek-key"] } },
    { name: "req-all", requesters: { enrollers: ["ops"] }, keyAttestation: { mode: "required", trustModels: ["ek-key", "ek-cert", "user-credentials"] } },
    { name: "req-user", requesters: { enrollers: ["ops"] }, keyAttestation: { mode: "required", trustModels: ["user-credentials"] } },
    // anonymous requesters only where the template says so (issue 12)
    { name: "ric-cert", requesters: { anonymous: true }, keyAttestation: { mode: "required-if-capable", trustModels: ["ek-cert"] } },
    { name: "nopol", keyAttestation: { mode: "required", trustModels: ["ek-cert"], includeIssuancePolicies: false } },
    { name: "plain", requesters: { anonymous: true }, keyAttestation: { mode: "none" } },
    { name: "ric-closed", keyAttestation: { mode: "required-if-capable", trustModels: ["ek-cert"] } },
    { name: "plain-closed", requesters: { enrollers: ["ops"] }, keyAttestation: { mode: "none" } },
    { name: "req-names", subjectFrom: "request", subjectAltNames: { allowed: ["dns"] }, keyAttestation: { mode: "required", trustModels: ["ek-cert", "ek-key"] } },
    { name: "req-dns", subjectAltNames: { allowed: ["dns"] }, keyAttestation: { mode: "required", trustModels: ["ek-cert", "ek-key"] } },
    { name: "req-class", requesters: { hostClasses: ["other"], hostTags: ["pki"] }, keyAttestation: { mode: "required", trustModels: ["ek-cert"] } },
    { name: "req-nohosts", requesters: { hosts: false, enrollers: ["ops"] }, keyAttestation: { mode: "required", trustModels: ["ek-cert"] } },
    { name: "req-noadmin", requesters: { admins: false }, keyAttestation: { mode: "required", trustModels: ["ek-cert"] } },
  ]) {
    const r = await template(doc);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
});

after(async () => {
  await tpm?.close().catch(() => undefined);
  await bare?.close().catch(() => undefined);
  await svc?.close();
  await Promise.all([hostTpm?.stop(), bareTpm?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const pems = (text: string) => (text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p));
const policiesOf = (pem: string) => [...(new x509.X509Certificate(pem).getExtension(x509.CertificatePolicyExtension)?.policies ?? [])];

/** Enrols through the agent's own code path (the TPM makes, certifies and signs). */
function agentEnroll(t: TpmClient, stateDir: string, tpl: string, o: { token?: string; keyAlg?: "rsa" | "ecc"; subject?: string; dns?: string[] } = {}) {
  return enrollCert(t, new ServiceClient({ url: svc.url, ...(o.token ? { token: o.token } : {}) }), {
    stateDir,
    template: tpl,
    subject: o.subject ?? `CN=${tpl}.example, O=tpmtrust-test`,
    keyAlg: o.keyAlg,
    ...(o.dns ? { dns: o.dns } : {}),
  });
}

const rejects = async (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TpmTrustError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });

test("required + ek-cert: the certificate carries exactly 1.3.6.1.4.1.311.21.31, chains to the CA, holds the TPM key", async () => {
  for (const keyAlg of ["ecc", "rsa"] as const) {
    const r = await agentEnroll(tpm, stateA(), "req-cert", { keyAlg });
    const pem = readFileSync(join(r.dir, "cert.pem"), "utf8");
    assert.deepEqual(policiesOf(pem), [P31]);
    assert.deepEqual(r.policies, [P31]);
    const cert = new x509.X509Certificate(pem);
    const chain = pems(readFileSync(join(r.dir, "chain.pem"), "utf8"));
    assert.equal(chain.length, 2);
    assert.ok(await cert.verify({ publicKey: chain[0].publicKey, signatureOnly: true }));
    assert.ok(await chain[0].verify({ publicKey: chain[1].publicKey, signatureOnly: true }));
    // subjectFrom host (the default when attestation is required): the CSR asked for CN=req-cert.example, O=tpmtrust-test
    assert.equal(cert.subject, "CN=host-a");
    assert.equal(cert.serialNumber.length, 32, "16-byte serial");
    assert.deepEqual([...(chain[0].getExtension(x509.CertificatePolicyExtension)?.policies ?? [])], [P30, P31, P32]);
    const view = await api(svc.url, "GET", `/v1/ca/certs/${r.serial}`, undefined, svc.admin);
    assert.equal(view.body.host, "host-a");
    assert.deepEqual(view.body.attestation.trustModels, ["ek-cert"]);
    assert.equal(view.body.attestation.freshness, "service-nonce");
    assert.equal(view.body.attestation.ekCertHashes.length, 2, "RSA and P-384 EK certificates of swtpm_setup");
    assert.deepEqual(Buffer.from(cert.publicKey.rawData), spkiFromTpmt(decodeTpm2bPublic(readFileSync(join(r.dir, "key.pub")))));
  }
});

test("required + ek-key: rejected until the EK is allow-listed, then exactly .30", async () => {
  await rejects(agentEnroll(tpm, stateA(), "req-key"), "ERR_EK_NOT_TRUSTED");
  const h = await api(svc.url, "GET", "/v1/hosts/host-a", undefined, svc.admin);
  assert.equal((await api(svc.url, "POST", "/v1/trust/allowlist", { ekHash: h.body.eks[0].ekHash }, svc.admin)).status, 201);
  const r = await agentEnroll(tpm, stateA(), "req-key");
  assert.deepEqual(policiesOf(readFileSync(join(r.dir, "cert.pem"), "utf8")), [P30]);
  // every model that passed is stamped; user-credentials only with an enroller token the template names
  const all = await agentEnroll(tpm, stateA(), "req-all");
  assert.deepEqual(policiesOf(readFileSync(join(all.dir, "cert.pem"), "utf8")), [P30, P31]);
  const vouched = await agentEnroll(tpm, stateA(), "req-all", { token: await enroller("ops") });
  assert.deepEqual(policiesOf(readFileSync(join(vouched.dir, "cert.pem"), "utf8")), [P30, P31, P32]);
  await api(svc.url, "DELETE", `/v1/trust/allowlist/${h.body.eks[0].ekHash}`, undefined, svc.admin);
});

test("the CLI: tpmtrust agent enroll-cert --template … --subject … --rsa --server … --tpm swtpm:…", async () => {
  const r = await cli(["agent", "enroll-cert", "--template", "req-cert", "--subject", "CN=cli.example", "--rsa", "--server", svc.url, "--tpm", hostTpm.tcti, "--state-dir", stateA(), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.json();
  assert.deepEqual(out.policies, [P31]);
  const cert = new x509.X509Certificate(readFileSync(join(out.dir, "cert.pem"), "utf8"));
  assert.equal(cert.subject, "CN=host-a", "the subject comes from the attested host");
  assert.equal((cert.publicKey.algorithm as { name: string }).name, "RSASSA-PKCS1-v1_5");
  const rejected = await cli(["agent", "enroll-cert", "--template", "req-key", "--subject", "CN=cli.example", "--server", svc.url, "--tpm", hostTpm.tcti, "--state-dir", stateA()]);
  assert.equal(rejected.code, 1);
  assert.match(rejected.stderr, /ERR_EK_NOT_TRUSTED/);
});

test("user-credentials: only an enroller token the template names vouches (an admin's does not); an auditor token is refused, includeIssuancePolicies false stamps nothing", async () => {
  await rejects(agentEnroll(tpm, stateA(), "req-user"), "ERR_EK_NOT_TRUSTED");
  await rejects(agentEnroll(tpm, stateA(), "req-user", { token: svc.admin }), "ERR_EK_NOT_TRUSTED");
  const u = await agentEnroll(tpm, stateA(), "req-user", { token: await enroller("ops") });
  assert.deepEqual(policiesOf(readFileSync(join(u.dir, "cert.pem"), "utf8")), [P32]);
  await rejects(agentEnroll(tpm, stateA(), "req-user", { token: await enroller("someone-else") }), "ERR_FORBIDDEN");
  const auditor = await svc.server.store.adminTokens.create({ at: Date.now(), role: "auditor", label: "ca test" });
  await rejects(agentEnroll(tpm, stateA(), "req-user", { token: auditor.token }), "ERR_FORBIDDEN");
  await rejects(agentEnroll(tpm, stateA(), "req-user", { token: "not-a-token" }), "ERR_UNAUTHENTICATED");
  const n = await agentEnroll(tpm, stateA(), "nopol");
  assert.deepEqual(policiesOf(readFileSync(join(n.dir, "cert.pem"), "utf8")), []);
  assert.deepEqual(n.trustModels, ["ek-cert"]);
});

const sansOf = (pem: string) => new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => `${n.type}:${n.value}`) ?? [];

const rejectsRule = async (p: Promise<unknown>, code: string, rule: string) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TpmTrustError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.details?.rule, rule, JSON.stringify(e.details));
    return true;
  });

test("subject binding: subjectFrom request admits only the attested host's own names; subjectFrom host names the attested host whatever the CSR asks", async () => {
  const own = await agentEnroll(tpm, stateA(), "req-names", { subject: "CN=host-a, O=tpmtrust-test", dns: ["host-a"] });
  const ownPem = readFileSync(join(own.dir, "cert.pem"), "utf8");
  assert.equal(new x509.X509Certificate(ownPem).subject, "CN=host-a, O=tpmtrust-test");
  assert.deepEqual(sansOf(ownPem), ["dns:host-a"]);
  await rejectsRule(agentEnroll(tpm, stateA(), "req-names", { subject: "CN=host-b" }), "ERR_POLICY_FAILED", "subject.host");
  await rejectsRule(agentEnroll(tpm, stateA(), "req-names", { subject: "CN=host-a", dns: ["host-b"] }), "ERR_POLICY_FAILED", "subject.host");
  // host B (attested, EK allow-listed) asks for host A's names and gets its own
  const b = await agentEnroll(bare, stateB(), "req-dns", { subject: "CN=host-a, O=tpmtrust-test", dns: ["host-a"] });
  const bPem = readFileSync(join(b.dir, "cert.pem"), "utf8");
  assert.equal(new x509.X509Certificate(bPem).subject, "CN=host-b");
  assert.deepEqual(sansOf(bPem), ["dns:host-b"]);
  assert.deepEqual(b.policies, [P30]);
});

test("requesters: host classes or tags, hosts off, admins off, enrollers by identity", async () => {
  await rejectsRule(agentEnroll(tpm, stateA(), "req-class"), "ERR_FORBIDDEN", "requesters.hosts");
  await svc.server.store.hosts.update("host-a", { tags: ["pki"] }, Date.now());
  try {
    assert.equal(new x509.X509Certificate(readFileSync(join((await agentEnroll(tpm, stateA(), "req-class")).dir, "cert.pem"), "utf8")).subject, "CN=host-a");
  } finally {
    await svc.server.store.hosts.update("host-a", { tags: [] }, Date.now());
  }
  await rejectsRule(agentEnroll(tpm, stateA(), "req-nohosts"), "ERR_FORBIDDEN", "requesters.hosts");
  assert.deepEqual((await agentEnroll(tpm, stateA(), "req-nohosts", { token: await enroller("ops") })).policies, [P31]);
  await rejectsRule(agentEnroll(tpm, stateA(), "req-nohosts", { token: await enroller("intruder") }), "ERR_FORBIDDEN", "requesters.enrollers");
  await rejectsRule(agentEnroll(tpm, stateA(), "req-noadmin", { token: svc.admin }), "ERR_FORBIDDEN", "requesters.admins");
  assert.deepEqual((await agentEnroll(tpm, stateA(), "req-noadmin")).policies, [P31]);
});

/** A CSR of a software key (no TPM, no evidence). */
async function softwareCsr(cn: string): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams });
  return Buffer.from(csr.rawData).toString("base64");
}

test("modes without evidence: required rejects (ERR_ATTESTATION_REQUIRED, 0x8009481A, events 53), required-if-capable and none issue without policies", async () => {
  const csr = await softwareCsr("no-tpm.example");
  const r = await api(svc.url, "POST", "/v1/ca/enroll", { template: "req-cert", csr });
  assert.equal(r.status, 422);
  assert.equal(r.body.code, "ERR_ATTESTATION_REQUIRED");
  assert.equal(r.body.details.hresult, "0x8009481A");
  assert.equal(r.body.details.adcsEvent, 53);
  for (const tpl of ["ric-cert", "plain"]) {
    const ok = await api(svc.url, "POST", "/v1/ca/enroll", { template: tpl, csr: await softwareCsr(`${tpl}.example`) });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.deepEqual(policiesOf(ok.body.certificatePem), []);
    assert.equal(new x509.X509Certificate(ok.body.certificatePem).getExtension(x509.CertificatePolicyExtension), null);
    assert.equal(ok.body.attestation, null);
  }
  const audit = await api(svc.url, "GET", "/v1/audit?limit=1000", undefined, svc.admin);
  const entries = (audit.body.entries ?? audit.body) as { action: string; details: Record<string, unknown> }[];
  assert.ok(entries.some((e) => e.action === "ca.request.denied" && e.details.adcsEvent === 53 && e.details.code === "ERR_ATTESTATION_REQUIRED"));
  // templates that do not admit anonymous requesters: refused without a token, issued to a named enroller
  for (const tpl of ["ric-closed", "plain-closed"]) {
    const anon = await api(svc.url, "POST", "/v1/ca/enroll", { template: tpl, csr: await softwareCsr(`${tpl}.example`) });
    assert.equal(anon.status, 401, JSON.stringify(anon.body));
    assert.equal(anon.body.code, "ERR_UNAUTHENTICATED");
  }
  const named = await api(svc.url, "POST", "/v1/ca/enroll", { template: "plain-closed", csr: await softwareCsr("plain-closed.example") }, await enroller("ops"));
  assert.equal(named.status, 201, JSON.stringify(named.body));
  assert.equal(new x509.X509Certificate(named.body.certificatePem).subject, "CN=plain-closed.example");
});

test("EK not trusted for the template's models: rejected under required; required-if-capable issues without policies, the failure recorded and audited (event 22); mode none ignores it", async () => {
  await rejects(agentEnroll(bare, stateB(), "req-cert"), "ERR_EK_NOT_TRUSTED");
  // AD CS: "the certificate is issued even if attestation was not successful" (issue 12 changed this from a rejection)
  const ric = await agentEnroll(bare, stateB(), "ric-cert");
  assert.deepEqual(ric.policies, []);
  assert.equal(new x509.X509Certificate(readFileSync(join(ric.dir, "cert.pem"), "utf8")).getExtension(x509.CertificatePolicyExtension), null);
  const rec = await api(svc.url, "GET", `/v1/ca/certs/${ric.serial}`, undefined, svc.admin);
  assert.equal(rec.body.host, null);
  assert.equal(rec.body.attestation.outcome, "failed");
  assert.equal(rec.body.attestation.code, "ERR_EK_NOT_TRUSTED");
  assert.deepEqual(rec.body.attestation.policies, []);
  const audit = await api(svc.url, "GET", "/v1/audit?limit=1000", undefined, svc.admin);
  const entries = (audit.body.entries ?? audit.body) as { action: string; details: Record<string, unknown> }[];
  assert.ok(entries.some((e) => e.action === "ca.attestation.error" && e.details.adcsEvent === 22 && e.details.code === "ERR_EK_NOT_TRUSTED" && e.details.issuedWithoutAttestation === true));
  assert.ok(entries.some((e) => e.action === "ca.certificate.issue" && e.details.serial === ric.serial && (e.details.attestationFailure as { code?: string })?.code === "ERR_EK_NOT_TRUSTED"));
  // without anonymous requesters, a failed attestation leaves an anonymous request: refused
  await rejects(agentEnroll(bare, stateB(), "ric-closed"), "ERR_UNAUTHENTICATED");
  const k = await agentEnroll(bare, stateB(), "req-key");
  assert.deepEqual(k.policies, [P30]);
  const none = await agentEnroll(bare, stateB(), "plain");
  assert.deepEqual(none.policies, []);
  assert.deepEqual(policiesOf(readFileSync(join(none.dir, "cert.pem"), "utf8")), []);
});

/** Hand-made evidence with our TPM client, for the negatives. */
async function evidence(o: { keyAttrs?: number; nonce?: Buffer; csrFromSoftware?: boolean; unboundAk?: boolean }) {
  const state = JSON.parse(readFileSync(join(stateA(), "agent.json"), "utf8"));
  const nonce = o.nonce ?? Buffer.from((await api(svc.url, "POST", "/v1/ca/challenge", {})).body.nonceHex, "hex");
  const tmpl = signingKeyTemplate("ecc");
  if (o.keyAttrs !== undefined) tmpl.objectAttributes = o.keyAttrs;
  const key = await withSrk(tpm, async (srk) => {
    const c = await tpm.run(Create, { parentHandle: srk.handle, inPublic: tmpl });
    return { ...c, handle: (await tpm.run(Load, { parentHandle: srk.handle, inPrivate: c.private, inPublic: c.public })).handle };
  });
  try {
    let akName = state.akNameHex as string;
    let certify;
    if (o.unboundAk) {
      // a fresh AK under the same EK that was never activated
      const ak = await withEk(tpm, "rsa2048", (ek) => createAk(tpm, ek, { type: "ecc" }));
      try {
        certify = await tpm.run(Certify, { objectHandle: key.handle, signHandle: ak.handle, qualifyingData: nonce });
        akName = ak.name.toString("hex");
      } finally {
        await tpm.run(FlushContext, { flushHandle: ak.handle });
      }
    } else {
      certify = await withAk(tpm, state, (ak) => tpm.run(Certify, { objectHandle: key.handle, signHandle: ak, qualifyingData: nonce }));
    }
    const csr = o.csrFromSoftware ? await softwareCsr("mismatch.example") : (await tpmCsr(tpm, key.handle, key.public, { subject: "CN=neg.example" })).toString("base64");
    return {
      template: "req-cert",
      csr,
      attestation: { keyPublic: tpm2bPublic(key.publicArea).toString("base64"), certify: { attest: certify.attest.toString("base64"), signature: certify.signatureBytes.toString("base64") }, akNameHex: akName },
    };
  } finally {
    await tpm.run(FlushContext, { flushHandle: key.handle });
  }
}

async function expectRejected(body: unknown, code: string, event = 22) {
  const r = await api(svc.url, "POST", "/v1/ca/enroll", body);
  assert.equal(r.body.code, code, JSON.stringify(r.body));
  assert.equal(r.status, 422);
  assert.equal(r.body.details.adcsEvent, event);
  return r;
}

test("negatives with stable codes: duplicable key, CSR key ≠ certified key, unbound AK, unknown/stale/reused nonce", async () => {
  const dup = TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.sign;
  await expectRejected(await evidence({ keyAttrs: dup }), "ERR_KEY_NOT_FIXED_TPM");
  await expectRejected(await evidence({ csrFromSoftware: true }), "ERR_KEY_MISMATCH");
  await expectRejected(await evidence({ unboundAk: true }), "ERR_AK_NOT_BOUND");
  await expectRejected(await evidence({ nonce: Buffer.alloc(32, 7) }), "ERR_NONCE_UNKNOWN");
  const stale = await svc.server.store.nonces.issue({ purpose: "ca.enroll", ttlMs: 1000, at: Date.now() - 60_000 });
  await expectRejected(await evidence({ nonce: stale.value }), "ERR_NONCE_EXPIRED");
  const once = await evidence({});
  assert.equal((await api(svc.url, "POST", "/v1/ca/enroll", once)).status, 201);
  await expectRejected(once, "ERR_NONCE_REUSED");
  // a nonce of another purpose (attestation challenge) is not an enrolment nonce
  const other = await svc.server.store.nonces.issue({ at: Date.now(), purpose: "attestation", ttlMs: 60_000 });
  await expectRejected(await evidence({ nonce: other.value }), "ERR_NONCE_UNKNOWN");
  const audit = await api(svc.url, "GET", "/v1/audit?limit=1000", undefined, svc.admin);
  const entries = (audit.body.entries ?? audit.body) as { action: string; details: Record<string, unknown> }[];
  for (const code of ["ERR_KEY_NOT_FIXED_TPM", "ERR_KEY_MISMATCH", "ERR_AK_NOT_BOUND", "ERR_NONCE_REUSED", "ERR_NONCE_EXPIRED"]) {
    assert.ok(entries.some((e) => e.action === "ca.attestation.error" && e.details.adcsEvent === 22 && e.details.code === code), `event 22 for ${code}`);
    assert.ok(entries.some((e) => e.action === "ca.request.denied" && e.details.adcsEvent === 53 && e.details.code === code), `event 53 for ${code}`);
  }
});

test("a CSR and key made purely by tpm2-tools + tpm2-openssl, certified with the service nonce, is accepted", async () => {
  const w = (n: string) => join(dir, n);
  await tpm2(hostTpm, "tpm2_createprimary", ["-C", "o", "-g", "sha256", "-G", "rsa2048:null:aes128cfb", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", w("srk.ctx")]);
  await tpm2(hostTpm, "tpm2_create", ["-C", w("srk.ctx"), "-G", "rsa2048:rsassa-sha256", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", "-u", w("tools.pub"), "-r", w("tools.priv")]);
  await tpm2(hostTpm, "tpm2_load", ["-C", w("srk.ctx"), "-u", w("tools.pub"), "-r", w("tools.priv"), "-c", w("tools.ctx")]);
  await tpm2(hostTpm, "tpm2_evictcontrol", ["-C", "o", "-c", w("tools.ctx"), "0x81000010"]);
  await tpm2(hostTpm, "tpm2_readpublic", ["-c", "0x81000010", "-o", w("tools.tpm2b")]);
  const env = { ...process.env, TPM2OPENSSL_TCTI: hostTpm.tcti };
  await runTool("openssl", ["req", "-provider", "tpm2", "-provider", "default", "-propquery", "?provider=tpm2", "-new", "-key", "handle:0x81000010", "-subj", "/CN=tools.example/O=tpmtrust-test", "-out", w("tools.csr")], { env });
  await tpm2Raw(hostTpm, "tpm2_flushcontext", ["-t"]);
  const state = JSON.parse(readFileSync(join(stateA(), "agent.json"), "utf8"));
  const nonce = Buffer.from((await api(svc.url, "POST", "/v1/ca/challenge", {})).body.nonceHex, "hex");
  const c = await withAk(tpm, state, (ak) => tpm.run(Certify, { objectHandle: 0x81000010, signHandle: ak, qualifyingData: nonce }));
  const r = await api(svc.url, "POST", "/v1/ca/enroll", {
    template: "req-cert",
    csr: readFileSync(w("tools.csr"), "utf8"),
    attestation: { keyPublic: readFileSync(w("tools.tpm2b")).toString("base64"), certify: { attest: c.attest.toString("base64"), signature: c.signatureBytes.toString("base64") }, akNameHex: state.akNameHex },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(policiesOf(r.body.certificatePem), [P31]);
  assert.equal(new x509.X509Certificate(r.body.certificatePem).subject, "CN=host-a", "subjectFrom host");
  // openssl agrees the certificate is the CA's and holds the tools' key
  writeFileSync(w("tools.crt"), r.body.certificatePem);
  writeFileSync(w("chain.pem"), r.body.chainPem);
  const verify = (await runTool("openssl", ["verify", "-CAfile", w("chain.pem"), w("tools.crt")])).toString();
  assert.match(verify, /OK/);
  const certKey = await runTool("openssl", ["x509", "-in", w("tools.crt"), "-noout", "-pubkey"]);
  const csrKey = await runTool("openssl", ["req", "-in", w("tools.csr"), "-noout", "-pubkey"]);
  assert.equal(certKey.toString(), csrKey.toString());
  await tpm2(hostTpm, "tpm2_evictcontrol", ["-C", "o", "-c", "0x81000010"]);
});

/** An AK created with its creation data (for KAST's idBinding), activated and bound to host-a. */
async function activatedAikWithCreation(): Promise<{ handle: number; pub: TpmtPublic; publicArea: Buffer; creation: { data: Buffer; hash: Buffer; ticket: { tag: number; hierarchy: number; digest: Buffer } } }> {
  const ekCerts = (await readEkCertificates(tpm)).map((c) => c.der);
  return withEk(tpm, "rsa2048", async (ek) => {
    const created = await tpm.run(Create, { parentHandle: ek.handle, inPublic: akTemplate({ type: "rsa" }), auth: await ekAuth(tpm, ek.public) });
    const { handle } = await tpm.run(Load, { parentHandle: ek.handle, inPrivate: created.private, inPublic: created.public, auth: await ekAuth(tpm, ek.public) });
    const start = await api(svc.url, "POST", "/v1/activations", {
      ekPublic: tpm2bPublic(ek.publicArea).toString("base64"),
      ekCertificates: ekCerts.map((d) => d.toString("base64")),
      akPublic: tpm2bPublic(created.publicArea).toString("base64"),
    });
    assert.equal(start.status, 201, JSON.stringify(start.body));
    const secret = await tpm.run(ActivateCredential, {
      activateHandle: handle,
      keyHandle: ek.handle,
      credentialBlob: decodeTpm2bIdObject(Buffer.from(start.body.credentialBlob, "base64")),
      secret: decodeTpm2bEncryptedSecret(Buffer.from(start.body.encryptedSecret, "base64")),
      keyAuth: await ekAuth(tpm, ek.public),
    });
    assert.equal((await api(svc.url, "POST", `/v1/activations/${start.body.activationId}`, { secret: secret.toString("base64") })).status, 200);
    return { handle, pub: created.public, publicArea: created.publicArea, creation: { data: encodeTpm2bCreationData(created.creationData), hash: created.creationHash, ticket: created.creationTicket } };
  });
}

test("AD CS request shape: a KAST statement (attribute 1.3.6.1.4.1.311.21.24 and .33) with a PCP KADS key attestation from a bound AIK is accepted; tampering is event 22", async () => {
  const aik = await activatedAikWithCreation();
  try {
    const self = await tpm.run(CertifyCreation, {
      signHandle: aik.handle,
      objectHandle: aik.handle,
      qualifyingData: Buffer.alloc(0),
      creationHash: aik.creation.hash,
      creationTicket: aik.creation.ticket,
    });
    const idBinding = Buffer.concat([tpm2bPublic(aik.publicArea), aik.creation.data, sized(self.attest), self.signatureBytes]);
    for (const oid of [CA_OID.attestationStatement, CA_OID.attestationStatementWcce]) {
      const key = await withSrk(tpm, async (srk) => {
        const c = await tpm.run(Create, { parentHandle: srk.handle, inPublic: signingKeyTemplate("ecc") });
        return { ...c, handle: (await tpm.run(Load, { parentHandle: srk.handle, inPrivate: c.private, inPublic: c.public })).handle };
      });
      try {
        const c = await tpm.run(Certify, { objectHandle: key.handle, signHandle: aik.handle, qualifyingData: Buffer.alloc(0) });
        const raw = (decodeTpmtSignature(c.signatureBytes) as { sig: Buffer }).sig;
        const statement = kast(idBinding, kads(c.attest, raw, pcpKeyBlob(tpm2bPublic(key.publicArea), sized(Buffer.alloc(16)))), pcpKeyBlob(tpm2bPublic(aik.publicArea), sized(Buffer.alloc(16))));
        const attr = (st: Buffer) => new x509.Attribute(oid, [new Uint8Array(octets(st))]);
        const csr = await tpmCsr(tpm, key.handle, key.public, { subject: "CN=kast.example", attributes: [attr(statement)] });
        const r = await api(svc.url, "POST", "/v1/ca/enroll", { template: "req-cert", csr: csr.toString("base64") });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.deepEqual(policiesOf(r.body.certificatePem), [P31]);
        assert.equal(r.body.attestation.format, "kast");
        assert.equal(r.body.attestation.freshness, "none");
        // a flipped byte in the certified TPMS_ATTEST breaks the AIK's signature
        const bad = Buffer.from(statement);
        bad[28 + idBinding.length + 24 + 40] ^= 1;
        const badCsr = await tpmCsr(tpm, key.handle, key.public, { subject: "CN=kast.example", attributes: [attr(bad)] });
        const rej = await api(svc.url, "POST", "/v1/ca/enroll", { template: "req-cert", csr: badCsr.toString("base64") });
        assert.equal(rej.status === 400 || rej.status === 422, true, JSON.stringify(rej.body));
        assert.equal(rej.body.details.adcsEvent, 22);
      } finally {
        await tpm.run(FlushContext, { flushHandle: key.handle });
      }
    }
  } finally {
    await tpm.run(FlushContext, { flushHandle: aik.handle });
  }
});

test("revocation: reason recorded, CRL lists the serial with its reason and verifies with openssl; the chain endpoint serves both CAs", async () => {
  const r = await agentEnroll(tpm, stateA(), "req-cert");
  const rev = await api(svc.url, "POST", `/v1/ca/certs/${r.serial}/revoke`, { reason: "keyCompromise" }, svc.admin);
  assert.equal(rev.status, 200, JSON.stringify(rev.body));
  assert.equal(rev.body.revocationReason, "keyCompromise");
  assert.equal((await api(svc.url, "POST", `/v1/ca/certs/${r.serial}/revoke`, { reason: "superseded" }, svc.admin)).body.code, "ERR_CONFLICT");
  const crlRes = await fetch(`${svc.url}/v1/ca/crl`);
  assert.equal(crlRes.headers.get("content-type"), "application/pkix-crl");
  const der = Buffer.from(await crlRes.arrayBuffer());
  const crl = new x509.X509Crl(der);
  const entry = crl.entries.find((e) => e.serialNumber === r.serial);
  assert.ok(entry, "revoked serial on the CRL");
  assert.equal(entry.reason, x509.X509CrlReason.keyCompromise);
  const chainPem = await (await fetch(`${svc.url}/v1/ca/certs/ca`)).text();
  assert.equal((chainPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
  writeFileSync(join(dir, "crl.der"), der);
  writeFileSync(join(dir, "ca-chain.pem"), chainPem);
  const out = (await runTool("openssl", ["crl", "-inform", "DER", "-in", join(dir, "crl.der"), "-CAfile", join(dir, "ca-chain.pem"), "-noout", "-text"])).toString();
  assert.match(out, new RegExp(r.serial.toUpperCase()));
  assert.match(out, /Key Compromise/);
  const listed = await api(svc.url, "GET", "/v1/ca/certs?revoked=true", undefined, svc.admin);
  assert.deepEqual(listed.body.map((c: { serial: string }) => c.serial), [r.serial]);
  // anonymous callers may fetch the CRL and the chain, not the certificate list
  assert.equal((await api(svc.url, "GET", "/v1/ca/certs")).status, 401);
});

test("certificate serials are distinct CSPRNG values across many issuances", async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const ok = await api(svc.url, "POST", "/v1/ca/enroll", { template: "plain", csr: await softwareCsr(`s${i}.example`) });
    assert.equal(ok.status, 201);
    assert.match(ok.body.serial, /^[0-7][0-9a-f]{31}$/);
    seen.add(ok.body.serial);
  }
  assert.equal(seen.size, 20);
});

test("CA exchange certificate: GET /v1/ca/xchg and `ca xchg` give one short-lived encryption certificate issued by the CA; openssl cms -encrypt to it opens with its key, to another certificate not", async () => {
  const w = (n: string) => join(dir, n);
  const res = await fetch(`${svc.url}/v1/ca/xchg`);
  assert.equal(res.status, 200);
  const pem = await res.text();
  const [xchg, issuing, root] = pems(pem);
  assert.ok(xchg && issuing && root, pem);
  assert.match(xchg.subject, /-Xchg$/);
  assert.deepEqual([...(xchg.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], ["1.3.6.1.4.1.311.21.5"]);
  assert.ok(xchg.notAfter.getTime() - xchg.notBefore.getTime() <= 7 * 86_400_000);
  writeFileSync(w("xchg.pem"), pem.slice(0, pem.indexOf("-----END CERTIFICATE-----") + 25) + "\n");
  writeFileSync(w("xchg-chain.pem"), certificatePem(Buffer.from(issuing.rawData), Buffer.from(root.rawData)));
  assert.match((await runTool("openssl", ["verify", "-CAfile", w("xchg-chain.pem"), w("xchg.pem")])).toString(), /OK/);
  // the same certificate again, from the API and from the CLI on the same database
  assert.equal(await (await fetch(`${svc.url}/v1/ca/xchg`)).text(), pem);
  const c = await cli(["ca", "xchg", "--db", join(dir, "db.sqlite")]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, pem);
  // EndorsementKeyInfo-shaped content encrypted by openssl to the exchange certificate
  writeFileSync(w("ekinfo.der"), Buffer.from("3004" + "0500" + "0500", "hex"));
  const env = await runTool("openssl", ["cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", w("ekinfo.der"), w("xchg.pem")]);
  const x = await currentXchg(svc.server.store, { actor: "test", now: Date.now() });
  assert.equal(Buffer.from(x.certificate.rawData).toString("base64"), Buffer.from(xchg.rawData).toString("base64"));
  const parsed = parseEnvelope(env);
  assert.equal(parsed.recipient.serial, xchg.serialNumber.toLowerCase());
  assert.deepEqual(openEnvelope(parsed, await xchgKey(svc.server.store, x)), readFileSync(w("ekinfo.der")));
  // encrypted to another certificate (a stand-in for another CA's exchange certificate): refused
  await runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Other CA-Xchg", "-days", "1", "-keyout", w("other.key"), "-out", w("other.pem")]);
  const toOther = await runTool("openssl", ["cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", w("ekinfo.der"), w("other.pem")]);
  await rejects(Promise.resolve().then(async () => openEnvelope(parseEnvelope(toOther), await xchgKey(svc.server.store, x))), "ERR_DECRYPT_FAILED");
  // RSA-OAEP key transport opens too
  const oaep = await runTool("openssl", ["cms", "-encrypt", "-binary", "-aes128", "-outform", "DER", "-in", w("ekinfo.der"), "-recip", w("xchg.pem"), "-keyopt", "rsa_padding_mode:oaep"]);
  assert.deepEqual(openEnvelope(parseEnvelope(oaep), await xchgKey(svc.server.store, x)), readFileSync(w("ekinfo.der")));
});
