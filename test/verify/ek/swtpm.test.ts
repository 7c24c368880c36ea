import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createEk, FlushContext, readEkCertificates, TpmClient } from "../../../src/tpm/commands/index.js";
import { SwtpmTransport } from "../../../src/tpm/transport/index.js";
import { EKU_EK_CERTIFICATE, EKU_PLATFORM_CERTIFICATE, evaluateEkTrust, loadCertificate, loadCertificates, validateChain } from "../../../src/verify/ek/index.js";
import { startSwtpm, type Swtpm } from "../../helpers/swtpm.js";
import { tpm2Raw } from "../../helpers/tpm2tools.js";

// swtpm_setup's local CA: RSA-3072 root and issuer, EK certificates with an empty-ish subject,
// a critical SAN and notAfter 9999-12-31 — what a lab or CI fleet of software TPMs presents.
let tpm: Swtpm;
let client: TpmClient;

before(async () => {
  tpm = await startSwtpm({ ekCerts: true });
  client = new TpmClient(new SwtpmTransport({ port: tpm.port }));
});
after(async () => {
  await tpm?.stop();
});

test("swtpm EK certificates (RSA-2048, P-384) chain to the swtpm local CA and hold the TPM's EKs", async () => {
  const root = loadCertificate(tpm.ca!.rootPem);
  const issuer = loadCertificate(tpm.ca!.intermediatePem);
  assert.equal(root.publicKeyBits.length, 398); // RSAPublicKey of a 3072-bit modulus
  const certs = await readEkCertificates(client);
  assert.deepEqual(
    certs.map((c) => c.kind),
    ["rsa2048", "ecc-p384"],
  );
  const at = new Date();
  for (const c of certs) {
    const ek = await createEk(client, c.kind);
    await client.run(FlushContext, { flushHandle: ek.handle });
    const leaf = loadCertificate(c.der);
    assert.equal(leaf.notAfter.toISOString(), "9999-12-31T23:59:59.000Z");
    assert.equal(leaf.extensions.find((e) => e.oid === "2.5.29.17")?.critical, true);
    assert.equal(leaf.tcg.tpmModel, "swtpm");
    const r = validateChain({ leaf, intermediates: [issuer], roots: [root], at, requiredEku: EKU_EK_CERTIFICATE, expectedKey: ek.public });
    assert.deepEqual(
      r.path.map((p) => p.subject.text),
      [leaf.subject.text, "CN=swtpm-localca", "CN=swtpm-localca-rootca"],
    );
    const trust = evaluateEkTrust({ ekPublic: ek.public, ekCerts: [c.der], intermediates: [issuer], roots: [root], allowlist: new Set(), at });
    assert.equal(trust.methods["ek-cert"].passed, true, trust.methods["ek-cert"].reason);
    // the whole local CA runs to the last second of 9999 (RFC 5280 "no well-defined expiration")
    const last = new Date("9999-12-31T23:59:59Z");
    assert.equal(validateChain({ leaf, intermediates: [issuer], roots: [root], at: last }).path.length, 3);
    assert.throws(() => validateChain({ leaf, intermediates: [issuer], roots: [root], at: new Date(last.getTime() + 1000) }), { code: "ERR_CERT_EXPIRED" });
  }
});

test("swtpm's platform certificate (0x01c08000) validates with the platform EKU, not the EK one", async () => {
  const data = await tpm2Raw(tpm, "tpm2_nvread", ["0x01c08000", "-C", "p"]);
  const [platform] = loadCertificates(data);
  const opts = { leaf: platform, intermediates: [loadCertificate(tpm.ca!.intermediatePem)], roots: [loadCertificate(tpm.ca!.rootPem)], at: new Date() };
  assert.equal(validateChain({ ...opts, requiredEku: EKU_PLATFORM_CERTIFICATE }).path.length, 3);
  assert.throws(() => validateChain({ ...opts, requiredEku: EKU_EK_CERTIFICATE }), { code: "ERR_CERT_EKU" });
});
