/**
 * Admission by EK certificate chain (serve --admit ek-cert-chain --default-class C): a swtpm whose
 * EK certificate chains to the trusted swtpm CA is registered at its first AK activation (the agent
 * as a process, the service over real HTTP on 127.0.0.1), audited as host.admit; a TPM without an
 * EK certificate, with one from another CA, with a self-signed chain, or after its root was removed
 * is refused with its exact code, audited too; per-host registration keeps working beside it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { webcrypto } from "node:crypto";
import { identify } from "../../src/agent/identify.js";
import { publicKeyFromTpmt } from "../../src/crypto/keys.js";
import { openTransport } from "../../src/tpm/transport/index.js";
import { TpmClient } from "../../src/tpm/commands/index.js";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { makeCa, makeLeaf } from "../verify/ek/certgen.js";
import { agent, api, out, startService, trustSwtpmCa, type Service } from "../e2e/harness.js";

const CLASS = "gen10";
let dir: string;
let svc: Service;
let certified: Swtpm; // EK certificates from the swtpm local CA
let bare: Swtpm; // no EK certificate
let late: Swtpm; // EK certificates, activates after the root is removed

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-admit-"));
  [svc, certified, bare, late] = await Promise.all([
    startService(dir, join(dir, "tpmtrust.db"), { attest: { admission: { mode: "ek-cert-chain", defaultClass: CLASS } } }),
    startSwtpm({ ekCerts: true }),
    startSwtpm(),
    startSwtpm({ ekCerts: true }),
  ]);
  await trustSwtpmCa(svc, certified);
});
after(async () => {
  await Promise.all([svc?.close(), certified?.stop(), bare?.stop(), late?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const register = (t: Swtpm, name: string) => agent(["register", "--server", svc.url, "--tpm", t.tcti, "--state-dir", join(dir, name), "--json"]);
const admissions = async () => (await api(svc.url, "GET", "/v1/audit?action=host.admit&order=asc", undefined, svc.admin)).body.entries as { actor: string; subject: string | null; outcome: string; details: Record<string, unknown> }[];

/** The swtpm's RSA EK as the agent sends it (TPM2B_PUBLIC). */
async function ekOf(t: Swtpm): Promise<Buffer> {
  const tpm = new TpmClient(await openTransport(t.tcti));
  try {
    const id = (await identify(tpm)).identity;
    return Buffer.from(id.ekPublics.find((e) => e.alg === "rsa2048")!.public, "base64");
  } finally {
    await tpm.close();
  }
}

/** An EK certificate for `ek` from a CA of the test's own (never imported). */
async function foreignCert(ek: Buffer, selfSignedIssuer: boolean) {
  const key = publicKeyFromTpmt(decodeTpm2bPublic(ek));
  const publicKey = await webcrypto.subtle.importKey("spki", key.export({ type: "spki", format: "der" }), { name: "RSA-OAEP", hash: "SHA-256" }, true, ["encrypt"]);
  const ca = await makeCa({ name: selfSignedIssuer ? "CN=self-signed EK issuer" : "CN=another TPM CA" });
  const leaf = await makeLeaf({ issuer: ca, publicKey: publicKey as CryptoKey });
  return { ek: leaf.der, ca: ca.der };
}

test("a TPM whose EK certificate chains to a trusted TPM CA is admitted into the default class at its first activation", async () => {
  const r = await register(certified, "certified");
  assert.equal(r.code, 0, out(r));
  const name = r.json().host as string;
  assert.match(name, /^ek-[0-9a-f]{16}$/);
  const h = (await api(svc.url, "GET", `/v1/hosts/${name}`, undefined, svc.admin)).body;
  assert.equal(h.hardwareClass, CLASS);
  assert.equal(h.policyVersion, "v2");
  assert.equal(h.trustMethod, "ek-cert");
  assert.equal(h.aks.length, 1);
  const a = (await admissions()).filter((e) => e.outcome === "success");
  assert.equal(a.length, 1);
  assert.equal(a[0].subject, name);
  assert.equal(a[0].actor, "admission:ek-cert-chain");
  assert.equal(a[0].details.hardwareClass, CLASS);
  assert.match(String((a[0].details.path as string[]).at(-1)), /swtpm-localca-rootca/);
  // a second activation of the same TPM binds another AK to the same host, not a second host
  const again = await register(certified, "certified-2");
  assert.equal(again.code, 0, out(again));
  assert.equal(again.json().host, name);
  assert.equal((await admissions()).filter((e) => e.outcome === "success").length, 1);
});

test("an EKpub without a certificate is refused (ERR_EK_CERT_REQUIRED), audited, and no host is made", async () => {
  const r = await register(bare, "bare");
  assert.equal(r.code, 1, out(r));
  assert.match(r.stderr, /ERR_EK_CERT_REQUIRED/);
  const f = (await admissions()).filter((e) => e.outcome === "failure");
  assert.equal(f.at(-1)!.details.code, "ERR_EK_CERT_REQUIRED");
  assert.equal((await api(svc.url, "GET", "/v1/hosts", undefined, svc.admin)).body.length, 1);
});

test("an EK certificate from another CA, or from a self-signed issuer sent along, is refused (ERR_EK_NOT_TRUSTED)", async () => {
  const ek = await ekOf(bare);
  for (const selfSigned of [false, true]) {
    const c = await foreignCert(ek, selfSigned);
    const r = await api(svc.url, "POST", "/v1/activations", {
      ekPublic: ek.toString("base64"),
      ekCertificates: [c.ek.toString("base64")],
      ...(selfSigned ? { intermediates: [c.ca.toString("base64")] } : {}),
      akPublic: ek.toString("base64"),
    });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.equal(r.body.code, "ERR_EK_NOT_TRUSTED", JSON.stringify(r.body));
    assert.equal((await admissions()).at(-1)!.details.code, "ERR_EK_NOT_TRUSTED");
  }
  // the swtpm CA's own certificate for another TPM's EK does not certify this EK
  const other = await ekOf(late);
  const lateId = await (async () => {
    const tpm = new TpmClient(await openTransport(late.tcti));
    try {
      return (await identify(tpm)).identity;
    } finally {
      await tpm.close();
    }
  })();
  const r = await api(svc.url, "POST", "/v1/activations", { ekPublic: ek.toString("base64"), ekCertificates: lateId.ekCertificates, akPublic: other.toString("base64") });
  assert.equal(r.body.code, "ERR_EK_CERT_REQUIRED", JSON.stringify(r.body));
  assert.equal((await api(svc.url, "GET", "/v1/hosts", undefined, svc.admin)).body.length, 1);
});

test("after the TPM CA's root is removed, a new TPM is refused (ERR_EK_NOT_TRUSTED); the admitted host fails too", async () => {
  const cas = (await api(svc.url, "GET", "/v1/trust/cas", undefined, svc.admin)).body as { id: string; kind: string }[];
  for (const c of cas.filter((x) => x.kind === "root")) assert.equal((await api(svc.url, "DELETE", `/v1/trust/cas/${c.id}`, undefined, svc.admin)).status, 204);
  const r = await register(late, "late");
  assert.equal(r.code, 1, out(r));
  assert.match(r.stderr, /ERR_EK_NOT_TRUSTED/);
  assert.equal((await admissions()).at(-1)!.details.code, "ERR_EK_NOT_TRUSTED");
  const again = await register(certified, "certified-3");
  assert.equal(again.code, 1, out(again));
  assert.match(again.stderr, /ERR_EK_NOT_TRUSTED/);
});

test("serve --admit ek-cert-chain needs --default-class (ERR_USAGE, exit 2)", async () => {
  const r = await cli(["serve", "--admit", "ek-cert-chain", "--db", join(dir, "unused.db")]);
  assert.equal(r.code, 2, out(r));
  assert.match(r.stderr, /ERR_USAGE.*--default-class/);
});
