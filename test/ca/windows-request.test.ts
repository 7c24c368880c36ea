/**
 * Windows key-attestation requests built the Windows way by an independent client (tpm2-tools +
 * openssl, test/helpers/windows-client.ts): a KAST whose keyAttestation is a PCP "KADS" blob around
 * tpm2_certify output with "PCPM" key blobs, SHA-1 and SHA-256 AIKs, EK info encrypted by `openssl
 * cms -encrypt`, PKCS#10 alone and inside a CMC Full PKI Request; `tpmtrust ca inspect-request`
 * reports them (exit 0), and plain requests without attestation; a broken request signature is
 * reported, garbage is unusable input (exit 2). The negative twins: windows-request-twins.test.ts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runTool } from "../helpers/tpm2tools.js";
import { cmcRequest } from "../helpers/windows-client.js";
import { OID, setup, type WindowsRequestSetting } from "../helpers/windows-request.js";

let s: WindowsRequestSetting;
before(async () => {
  s = await setup();
});
after(async () => {
  await s?.close();
});

test("inspect-request: a Windows PKCS#10 with a KADS key attestation (SHA-1 and SHA-256 AIKs) and EK info verifies; the same inside CMC", async () => {
  for (const c of [s.win, s.win256]) {
    const k = c === s.win ? s.key : await c.newKey("userkey256");
    const csr = await s.windowsCsr(c, k, await c.statement(k));
    // openssl agrees the TPM-signed CSR is well-formed and self-signed
    await runTool("openssl", ["req", "-inform", "DER", "-in", s.write("w.csr", csr), "-noout", "-verify"]);
    const pem = `-----BEGIN NEW CERTIFICATE REQUEST-----\n${csr.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END NEW CERTIFICATE REQUEST-----\n`;
    for (const [file, format] of [[s.write(`w-${c.aikHash}.pem`, pem), "pkcs10"], [s.write(`w-${c.aikHash}.cmc`, await cmcRequest(s.dir, csr)), "cmc"]] as const) {
      const r = await s.inspect(file);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const j = r.json();
      assert.equal(j.format, format);
      assert.equal(j.requestSignatureValid, true);
      assert.equal(j.subject, "CN=win11.example.test");
      assert.equal(j.template.name, "WinTpmUser");
      assert.equal(j.osVersion, "10.0.26200.2");
      assert.equal(j.ksp, "Microsoft Platform Crypto Provider");
      assert.equal(j.attestation.oid, OID.kast);
      assert.equal(j.attestation.verified, true);
      assert.equal(j.attestation.aik.name, await s.nameOf(c, c.aik));
      assert.equal(j.attestation.aik.verified, true);
      assert.equal(j.attestation.key.name, await s.nameOf(c, k));
      assert.equal(j.attestation.key.verified, true);
      assert.equal(j.attestation.key.signatureScheme, `rsassa-${c.aikHash}`);
      assert.equal(j.attestation.key.matchesRequestKey, true);
      assert.equal(j.ekInfo.recipient.serial, "1234abcd");
      assert.equal(j.ekInfo.recipient.issuer, "CN=Test CA-Xchg, O=tpmtrust-test");
    }
  }
  const text = await s.inspect(join(s.dir, "w-sha1.pem"), false);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /attestation\tverified/);
  assert.match(text.stdout, /ek info\tencrypted to CN=Test CA-Xchg, O=tpmtrust-test serial 1234abcd/);
});

test("inspect-request: plain PKCS#10 and CMC without attestation (openssl), a broken signature, garbage", async () => {
  await runTool("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=plain.example", "-addext", "subjectAltName=DNS:plain.example", "-keyout", join(s.dir, "plain.key"), "-out", join(s.dir, "plain.csr")]);
  const r = await s.inspect(join(s.dir, "plain.csr"));
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.deepEqual([j.format, j.requestSignatureValid, j.attestation, j.ekInfo, j.key.type], ["pkcs10", true, null, null, "ecdsa-p256"]);
  assert.deepEqual(j.sans, [{ type: "dns", value: "plain.example" }]);
  const der = await runTool("openssl", ["req", "-in", join(s.dir, "plain.csr"), "-outform", "DER"]);
  const cmc = await s.inspect(s.write("plain.cmc", await cmcRequest(s.dir, der)));
  assert.equal(cmc.code, 0, cmc.stderr);
  assert.deepEqual([cmc.json().format, cmc.json().attestation, cmc.json().subject], ["cmc", null, "CN=plain.example"]);
  const broken = Buffer.from(der);
  broken[broken.length - 5] ^= 1;
  const b = await s.inspect(s.write("broken.der", broken));
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.json().requestSignatureValid, false);
  const g = await s.inspect(s.write("garbage.der", Buffer.from("30030201ff", "hex")));
  assert.equal(g.code, 2);
  assert.match(g.stderr, /ERR_PARSE_CSR/);
});
