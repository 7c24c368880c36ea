/**
 * EK trust, host admission and AK activation (credential activation), end to end: the service
 * over real HTTP on 127.0.0.1 (SQLite, then a real PostgreSQL), real swtpm TPMs whose EKs, EK
 * certificates and AKs are made by tpmtrust's TPM client and by tpm2-tools, and credentials the
 * service made activated inside the TPM.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identify } from "../../src/agent/identify.js";
import type { HostIdentity } from "../../src/attest/identity.js";
import { encodeCredentialFile } from "../../src/crypto/credential.js";
import { startServer, type RunningServer } from "../../src/server/serve.js";
import { TPM_ALG, TPMA_OBJECT } from "../../src/tpm/constants.js";
import {
  ActivateCredential,
  akTemplate,
  Create,
  createEk,
  type CreatePrimaryResult,
  ekAuth,
  FlushContext,
  Load,
  TpmClient,
} from "../../src/tpm/commands/index.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, decodeTpm2bPublic, encodeTpm2bPublic, objectName } from "../../src/tpm/structures.js";
import { SwtpmTransport } from "../../src/tpm/transport/index.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { EKU_AIK_CERTIFICATE, ekHash, loadCertificate, validateChain } from "../../src/verify/ek/index.js";
import { BACKENDS } from "../helpers/store.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { flushAll, tpm2, tpm2Raw } from "../helpers/tpm2tools.js";

const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-enrol-"));
let tpmA: Swtpm; // swtpm_setup EKs with certificates from a local CA
let tpmB: Swtpm; // no EK certificates
let clientA: TpmClient;
let clientB: TpmClient;
let ekA: CreatePrimaryResult;
let identityA: HostIdentity;
let identityB: HostIdentity;

before(async () => {
  [tpmA, tpmB] = await Promise.all([startSwtpm({ ekCerts: true }), startSwtpm()]);
  clientA = new TpmClient(new SwtpmTransport({ port: tpmA.port }));
  clientB = new TpmClient(new SwtpmTransport({ port: tpmB.port }));
  identityA = (await identify(clientA)).identity;
  identityB = (await identify(clientB)).identity;
  ekA = await createEk(clientA, "rsa2048");
});
after(async () => {
  await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
});

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const pemDer = (pem: string) => loadCertificate(pem).der;

interface Reply {
  status: number;
  body: any;
}

function apiFor(s: RunningServer) {
  return async (method: string, path: string, body?: unknown, token?: string): Promise<Reply> => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    const r = await fetch(`${s.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON (PEM, empty 204) */
    }
    return { status: r.status, body: parsed };
  };
}

function expectProblem(r: Reply, status: number, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.code, code, JSON.stringify(r.body));
}

/** A key under the EK from `template` (the TPM decides whether it can exist), loaded. */
async function keyUnderEk(client: TpmClient, ek: CreatePrimaryResult, template: TpmtPublic) {
  const created = await client.run(Create, { parentHandle: ek.handle, inPublic: template, auth: await ekAuth(client, ek.public) });
  const { handle } = await client.run(Load, { parentHandle: ek.handle, inPrivate: created.private, inPublic: created.public, auth: await ekAuth(client, ek.public) });
  return { handle, public: created.public, tpm2b: encodeTpm2bPublic(created.public), name: objectName(created.public) };
}

/** Activates the service's credential in the TPM: PolicySecret(TPM_RH_ENDORSEMENT) session, TPM2_ActivateCredential(AK, EK). */
async function activateInTpm(client: TpmClient, ek: CreatePrimaryResult, akHandle: number, challenge: { credentialBlob: string; encryptedSecret: string }): Promise<Buffer> {
  const blob = decodeTpm2bIdObject(Buffer.from(challenge.credentialBlob, "base64"));
  const seed = decodeTpm2bEncryptedSecret(Buffer.from(challenge.encryptedSecret, "base64"));
  return client.run(ActivateCredential, { activateHandle: akHandle, keyHandle: ek.handle, credentialBlob: blob, secret: seed, keyAuth: await ekAuth(client, ek.public) });
}

for (const [backend, makeBackend] of BACKENDS) {
  test(`${backend}: EK trust, host registration, AK enrolment with credential activation over HTTP`, async (t) => {
    const be = await makeBackend();
    const dir = join(tmp, backend);
    mkdirSync(dir);
    process.env.TPMTRUST_STATE_DIR = join(dir, "state");
    const s = await startServer({ db: await be.newUrl(), listen: "127.0.0.1:0", logger: false, adminTokenFile: join(dir, "admin-token") });
    const api = apiFor(s);
    const admin = readFileSync(join(dir, "admin-token"), "utf8").trim();
    const auditor = (await s.store.adminTokens.create({ at: Date.now(), role: "auditor" })).token;
    const hostA = `a-${backend}`;
    const hostB = `b-${backend}`;
    const rsaCertA = Buffer.from(identityA.ekCertificates[0], "base64");
    try {
      await t.test("no token: 401; auditor on an admin route: 403; auditor reads", async () => {
        expectProblem(await api("GET", "/v1/hosts"), 401, "ERR_UNAUTHENTICATED");
        expectProblem(await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "x", identity: identityA }, auditor), 403, "ERR_FORBIDDEN");
        expectProblem(await api("POST", "/v1/trust/allowlist", { ekHash: "00".repeat(32) }, auditor), 403, "ERR_FORBIDDEN");
        assert.deepEqual((await api("GET", "/v1/trust/cas", undefined, auditor)).body, []);
      });

      await t.test("strict input: unknown fields, wrong types, bad base64, an EK that is not its template", async () => {
        expectProblem(await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "x", identity: identityA, extra: 1 }, admin), 400, "ERR_VALIDATION");
        expectProblem(await api("POST", "/v1/hosts", { name: hostA, hardwareClass: 7, identity: identityA }, admin), 400, "ERR_VALIDATION");
        const badB64 = { ...identityA, ekPublics: [{ alg: "rsa2048", public: "not base64!" }] };
        expectProblem(await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "x", identity: badB64 }, admin), 400, "ERR_VALIDATION");
        const wrongAlg = { ...identityA, ekPublics: [{ alg: "ecc-p256", public: identityA.ekPublics[0].public }] };
        const r = await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "x", identity: wrongAlg }, admin);
        expectProblem(r, 400, "ERR_VALIDATION");
        assert.match(r.body.detail, /does not match EK template ecc-p256/);
      });

      await t.test("v2 before the EK CA is trusted: ERR_EK_NOT_TRUSTED with the chain's reason; audited", async () => {
        const r = await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "swtpm", identity: identityA }, admin);
        expectProblem(r, 422, "ERR_EK_NOT_TRUSTED");
        assert.equal(r.body.details.methods["ek-cert"].code, "ERR_CHAIN_UNTRUSTED");
        const e = (await s.store.audit.list({ action: "host.add", subject: hostA })).at(-1)!;
        assert.equal(e.outcome, "failure");
        assert.equal((e.details as { code: string }).code, "ERR_EK_NOT_TRUSTED");
      });

      let rootId = "";
      await t.test("import the EK root and intermediate; confirm by certificate and by hash", async () => {
        const r = await api("POST", "/v1/trust/cas", { certificates: [b64(pemDer(tpmA.ca!.rootPem)), b64(pemDer(tpmA.ca!.intermediatePem)), b64(Buffer.from("junk"))] }, admin);
        assert.equal(r.status, 201);
        assert.deepEqual(
          r.body.added.map((a: { kind: string; subject: string }) => [a.kind, a.subject]),
          [
            ["root", "CN=swtpm-localca-rootca"],
            ["intermediate", "CN=swtpm-localca"],
          ],
        );
        assert.equal(r.body.skipped[0].path, "certificates[2]");
        rootId = r.body.added[0].id;
        const again = await api("POST", "/v1/trust/cas", { certificates: [b64(pemDer(tpmA.ca!.rootPem))] }, admin);
        assert.equal(again.status, 200);
        assert.equal(again.body.present.length, 1);
        assert.deepEqual(
          (await api("GET", "/v1/trust/cas", undefined, auditor)).body.map((c: { kind: string }) => c.kind),
          ["root", "intermediate"],
        );

        const c = await api("POST", "/v1/trust/confirm", { ekCertificates: [b64(rsaCertA)] }, auditor);
        assert.equal(c.status, 200);
        assert.equal(c.body.trusted, true);
        assert.deepEqual(c.body.passed, ["ek-cert"]);
        assert.equal(c.body.certificates[0].path.length, 3);
        const h = await api("POST", "/v1/trust/confirm", { ekHash: ekHash(ekA.public).toUpperCase() }, auditor);
        assert.equal(h.body.trusted, false);
        assert.equal(h.body.methods["ek-key"].code, "ERR_EK_NOT_ALLOWLISTED");
        expectProblem(await api("POST", "/v1/trust/confirm", { ekHash: ekHash(ekA.public), ekCertificates: [b64(rsaCertA)] }, auditor), 400, "ERR_VALIDATION");
        expectProblem(await api("POST", "/v1/trust/confirm", { ekCertificates: [b64(Buffer.from("junk"))] }, auditor), 400, "ERR_PARSE_CERT");
      });

      await t.test("register host A (v2): EKs with a certificate are admitted by ek-cert, the P-256 EK without one is not", async () => {
        const r = await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "swtpm", identity: identityA }, admin);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.policyVersion, "v2");
        assert.equal(r.body.trustMethod, "ek-cert");
        const byAlg = Object.fromEntries(r.body.ekTrust.eks.map((e: { alg: string }) => [e.alg, e]));
        assert.equal(byAlg.rsa2048.registered, true);
        assert.equal(byAlg.rsa2048.method, "ek-cert");
        assert.equal(byAlg["ecc-p384"].registered, true);
        assert.equal(byAlg["ecc-p256"].registered, false);
        assert.equal(byAlg["ecc-p256"].code, "ERR_EK_CERT_REQUIRED");
        assert.equal(r.body.eks.length, 2);
        assert.equal(r.body.platform.certified.tpmModel, "swtpm");
        const got = await api("GET", `/v1/hosts/${hostA}`, undefined, auditor);
        assert.deepEqual(got.body.eks.map((e: { ekHash: string }) => e.ekHash).sort(), [byAlg.rsa2048.ekHash, byAlg["ecc-p384"].ekHash].sort());
        assert.equal(got.body.eks.find((e: { ekHash: string }) => e.ekHash === ekHash(ekA.public)).certificate.notAfter, "9999-12-31T23:59:59.000Z");
        expectProblem(await api("POST", "/v1/hosts", { name: hostA, hardwareClass: "swtpm", identity: identityA }, admin), 409, "ERR_CONFLICT");
        expectProblem(await api("POST", "/v1/hosts", { name: `${hostA}-again`, hardwareClass: "swtpm", identity: identityA }, admin), 409, "ERR_CONFLICT");
      });

      let caPem = "";
      await t.test("AK enrolment: the TPM activates the service's credential; the AK is bound and certified (EKU 2.23.133.8.3)", async () => {
        for (const type of ["rsa", "ecc"] as const) {
          const ak = await keyUnderEk(clientA, ekA, akTemplate({ type }));
          try {
            const start = await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), ekCertificates: [b64(rsaCertA)], akPublic: b64(ak.tpm2b) });
            assert.equal(start.status, 201, JSON.stringify(start.body));
            assert.equal(start.body.akNameHex, ak.name.toString("hex"));
            assert.equal(start.body.host, undefined); // the host is named only to the TPM that proves itself
            const secret = await activateInTpm(clientA, ekA, ak.handle, start.body);
            assert.equal(secret.length, 32);
            const done = await api("POST", `/v1/activations/${start.body.activationId}`, { secret: b64(secret) });
            assert.equal(done.status, 200, JSON.stringify(done.body));
            assert.equal(done.body.host, hostA);
            caPem = (await api("GET", "/v1/attestation-ca")).body;
            const cert = loadCertificate(Buffer.from(done.body.akCertificate, "base64"));
            assert.equal(cert.label, `O=tpmtrust, CN=${hostA}`);
            const chain = validateChain({ leaf: cert, roots: [loadCertificate(caPem)], at: new Date(), requiredEku: EKU_AIK_CERTIFICATE, expectedKey: ak.public });
            assert.equal(chain.path.length, 2);
            assert.equal((await s.store.aks.get(ak.name))?.hostName, hostA);
            // the same AK again
            expectProblem(await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), akPublic: b64(ak.tpm2b) }), 409, "ERR_CONFLICT");
          } finally {
            await clientA.run(FlushContext, { flushHandle: ak.handle });
          }
        }
        const key = join(process.env.TPMTRUST_STATE_DIR!, "attestation-ca-key.pem");
        assert.equal(statSync(key).mode & 0o777, 0o600);
        const host = (await api("GET", `/v1/hosts/${hostA}`, undefined, admin)).body;
        assert.equal(host.aks.length, 2);
        assert.ok(host.aks.every((a: { hasCertificate: boolean }) => a.hasCertificate));
        assert.equal((await s.store.ca.listCerts({ hostName: hostA })).length, 2);
      });

      await t.test("a wrong secret is ERR_ACTIVATION_FAILED and spends the activation", async () => {
        const ak = await keyUnderEk(clientA, ekA, akTemplate());
        try {
          const start = await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), akPublic: b64(ak.tpm2b) });
          assert.equal(start.status, 201);
          const secret = await activateInTpm(clientA, ekA, ak.handle, start.body);
          const wrong = Buffer.from(secret);
          wrong[0] ^= 1;
          expectProblem(await api("POST", `/v1/activations/${start.body.activationId}`, { secret: b64(wrong) }), 422, "ERR_ACTIVATION_FAILED");
          expectProblem(await api("POST", `/v1/activations/${start.body.activationId}`, { secret: b64(secret) }), 404, "ERR_NOT_FOUND");
          assert.equal(await s.store.aks.get(ak.name), undefined);
          const outcomes = (await s.store.audit.list({ action: "ak.activation.complete", limit: 1000 }))
            .filter((e) => (e.details as { activationId?: string }).activationId === start.body.activationId)
            .map((e) => [e.outcome, (e.details as { code?: string }).code]);
          assert.deepEqual(outcomes, [
            ["failure", "ERR_ACTIVATION_FAILED"],
            ["failure", "ERR_NOT_FOUND"],
          ]);
        } finally {
          await clientA.run(FlushContext, { flushHandle: ak.handle });
        }
        expectProblem(await api("POST", "/v1/activations/00000000-0000-4000-8000-000000000000", { secret: b64(Buffer.alloc(32)) }), 404, "ERR_NOT_FOUND");
        expectProblem(await api("POST", "/v1/activations/not-a-uuid", { secret: b64(Buffer.alloc(32)) }), 400, "ERR_VALIDATION");
      });

      await t.test("AKs with the wrong attributes are refused before any credential: not restricted, duplicable, a SHA-1 Name", async () => {
        const base = akTemplate();
        const cases: [string, TpmtPublic, string][] = [
          ["non-restricted signing key", { ...base, objectAttributes: base.objectAttributes & ~TPMA_OBJECT.restricted }, "ERR_KEY_NOT_RESTRICTED"],
          ["duplicable key", { ...base, objectAttributes: base.objectAttributes & ~(TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent) }, "ERR_KEY_NOT_FIXED_TPM"],
        ];
        for (const [what, template, code] of cases) {
          const k = await keyUnderEk(clientA, ekA, template);
          try {
            const r = await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), akPublic: b64(k.tpm2b) });
            expectProblem(r, 422, code);
            assert.equal((await s.store.audit.list({ action: "ak.activation.start", subject: k.name.toString("hex") }))[0].outcome, "failure", what);
          } finally {
            await clientA.run(FlushContext, { flushHandle: k.handle });
          }
        }
        // a SHA-1 Name: weaker than the service accepts
        const sha1 = await keyUnderEk(clientA, ekA, akTemplate({ hashAlg: TPM_ALG.SHA1 }));
        await clientA.run(FlushContext, { flushHandle: sha1.handle });
        expectProblem(await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), akPublic: b64(sha1.tpm2b) }), 422, "ERR_KEY_TOO_WEAK");
      });

      await t.test("host B without an EK certificate: v2 is ERR_EK_CERT_REQUIRED, its EK is unknown to activation", async () => {
        expectProblem(await api("POST", "/v1/hosts", { name: hostB, hardwareClass: "swtpm", identity: identityB }, admin), 422, "ERR_EK_CERT_REQUIRED");
        const ekB = await createEk(clientB, "rsa2048");
        try {
          const ak = await keyUnderEk(clientB, ekB, akTemplate());
          await clientB.run(FlushContext, { flushHandle: ak.handle });
          expectProblem(await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekB.public)), akPublic: b64(ak.tpm2b) }), 404, "ERR_NOT_FOUND");
        } finally {
          await clientB.run(FlushContext, { flushHandle: ekB.handle });
        }
      });

      const folder = join(dir, "ekpub");
      mkdirSync(folder);
      const ekHashB = ekHash(decodeTpm2bPublic(Buffer.from(identityB.ekPublics[0].public, "base64")));
      await t.test("v1 without an EK certificate: not allow-listed until a file appears in a registered folder (no restart)", async () => {
        expectProblem(await api("POST", "/v1/hosts", { name: hostB, hardwareClass: "swtpm", policyVersion: "v1", identity: identityB }, admin), 422, "ERR_EK_NOT_ALLOWLISTED");
        expectProblem(await api("POST", "/v1/trust/allowlist-dirs", { path: join(dir, "missing") }, admin), 400, "ERR_VALIDATION");
        const d = await api("POST", "/v1/trust/allowlist-dirs", { path: folder }, admin);
        assert.equal(d.status, 201);
        assert.equal(d.body.entries, 0);
        writeFileSync(join(folder, ekHashB.toUpperCase()), "");
        writeFileSync(join(folder, "README.txt"), "EK hashes");
        const r = await api("POST", "/v1/hosts", { name: hostB, hardwareClass: "swtpm", policyVersion: "v1", identity: identityB }, admin);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.trustMethod, "ek-key");
        assert.deepEqual(
          r.body.ekTrust.eks.map((e: { alg: string; registered: boolean; code?: string }) => [e.alg, e.registered, e.code ?? null]),
          [
            ["rsa2048", true, null],
            ["ecc-p256", false, "ERR_EK_NOT_ALLOWLISTED"],
          ],
        );
        const list = (await api("GET", "/v1/trust/allowlist", undefined, auditor)).body;
        assert.deepEqual(list, [{ ekHash: ekHashB, label: null, addedAt: null, source: folder }]);
        const dirs = (await api("GET", "/v1/trust/allowlist-dirs", undefined, auditor)).body;
        assert.equal(dirs[0].entries, 1);
        assert.equal(dirs[0].ignored[0].path, join(folder, "README.txt"));
      });

      await t.test("tpm2-tools as the agent: tpm2_createek/createak, tpm2_activatecredential with a PolicySecret session", async () => {
        const f = (n: string) => join(dir, n);
        await tpm2(tpmB, "tpm2_createek", ["-G", "rsa", "-c", f("ek.ctx"), "-u", f("ek.pub")]);
        await tpm2(tpmB, "tpm2_createak", ["-C", f("ek.ctx"), "-c", f("ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u", f("ak.pub"), "-n", f("ak.name")]);
        const activate = async () => {
          const start = await api("POST", "/v1/activations", { ekPublic: b64(readFileSync(f("ek.pub"))), akPublic: b64(readFileSync(f("ak.pub"))) });
          if (start.status !== 201) return start;
          assert.equal(start.body.akNameHex, readFileSync(f("ak.name")).toString("hex"));
          writeFileSync(f("cred.bin"), encodeCredentialFile({ credentialBlob: Buffer.from(start.body.credentialBlob, "base64"), secret: Buffer.from(start.body.encryptedSecret, "base64") }));
          await tpm2(tpmB, "tpm2_startauthsession", ["--policy-session", "-S", f("session.ctx")], { flush: false });
          await tpm2(tpmB, "tpm2_policysecret", ["-S", f("session.ctx"), "-c", "e"], { flush: false });
          await tpm2Raw(tpmB, "tpm2_activatecredential", ["-c", f("ak.ctx"), "-C", f("ek.ctx"), "-i", f("cred.bin"), "-o", f("secret.bin"), "-P", `session:${f("session.ctx")}`]);
          return api("POST", `/v1/activations/${start.body.activationId}`, { secret: b64(readFileSync(f("secret.bin"))) });
        };
        // the folder entry goes: the next decision sees it, without a restart
        unlinkSync(join(folder, ekHashB.toUpperCase()));
        expectProblem(await activate(), 422, "ERR_EK_NOT_ALLOWLISTED");
        const added = await api("POST", "/v1/trust/allowlist", { ekHash: ekHashB, label: "host B" }, admin);
        assert.equal(added.status, 201);
        assert.equal(added.body.source, "db");
        const done = await activate();
        assert.equal(done.status, 200, JSON.stringify(done.body));
        assert.equal(done.body.host, hostB);
        const c = (await api("POST", "/v1/trust/confirm", { ekHash: ekHashB }, auditor)).body;
        assert.deepEqual([c.trusted, c.passed, c.allowlistSource], [true, ["ek-key"], "db"]);
        assert.equal((await api("DELETE", `/v1/trust/allowlist/${ekHashB}`, undefined, admin)).status, 204);
        expectProblem(await api("DELETE", `/v1/trust/allowlist/${ekHashB}`, undefined, admin), 404, "ERR_NOT_FOUND");
        assert.equal((await api("DELETE", "/v1/trust/allowlist-dirs", { path: folder }, admin)).status, 204);
        await flushAll(tpmB);
      });

      await t.test("removing the EK root: host A's EK is no longer trusted (ERR_EK_NOT_TRUSTED)", async () => {
        assert.equal((await api("DELETE", `/v1/trust/cas/${rootId}`, undefined, admin)).status, 204);
        expectProblem(await api("DELETE", `/v1/trust/cas/${rootId}`, undefined, admin), 404, "ERR_NOT_FOUND");
        const ak = await keyUnderEk(clientA, ekA, akTemplate());
        await clientA.run(FlushContext, { flushHandle: ak.handle });
        const r = await api("POST", "/v1/activations", { ekPublic: b64(encodeTpm2bPublic(ekA.public)), ekCertificates: [b64(rsaCertA)], akPublic: b64(ak.tpm2b) });
        expectProblem(r, 422, "ERR_EK_NOT_TRUSTED");
        assert.equal(r.body.details.methods["ek-cert"].code, "ERR_CHAIN_UNTRUSTED");
      });

      await t.test("hosts are listed, removed with their AKs; every decision is in the audit chain", async () => {
        const names = (await api("GET", "/v1/hosts", undefined, auditor)).body.map((h: { name: string }) => h.name);
        assert.deepEqual(names, [hostA, hostB]);
        assert.deepEqual((await api("GET", `/v1/hosts/${hostA}/attestations`, undefined, auditor)).body, []);
        expectProblem(await api("DELETE", `/v1/hosts/${hostB}`, undefined, auditor), 403, "ERR_FORBIDDEN");
        assert.equal((await api("DELETE", `/v1/hosts/${hostB}`, undefined, admin)).status, 204);
        expectProblem(await api("GET", `/v1/hosts/${hostB}`, undefined, admin), 404, "ERR_NOT_FOUND");
        const actions = new Set((await s.store.audit.list({ limit: 1000 })).map((e) => `${e.action}:${e.outcome}`));
        for (const a of [
          "auth.denied:denied",
          "host.add:failure",
          "host.add:success",
          "host.remove:success",
          "trust.ca.import:success",
          "trust.ca.remove:success",
          "trust.confirm:success",
          "trust.confirm:failure",
          "trust.allowlist.add:success",
          "trust.allowlist.remove:success",
          "trust.allowlist-dir.add:success",
          "trust.allowlist-dir.remove:success",
          "ak.activation.start:success",
          "ak.activation.start:failure",
          "ak.activation.complete:success",
          "ak.activation.complete:failure",
          "ca.attestation.create:success",
        ]) {
          assert.ok(actions.has(a), `audit has ${a}`);
        }
        assert.equal((await s.store.audit.verify()).ok, true);
      });
    } finally {
      await s.close();
      await be.close();
      delete process.env.TPMTRUST_STATE_DIR;
    }
  });
}
