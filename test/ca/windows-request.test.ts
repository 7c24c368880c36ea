/**
 * Windows key-attestation requests built the Windows way by an independent client (tpm2-tools +
 * openssl, test/helpers/windows-client.ts): a KAST whose keyAttestation is a PCP "KADS" blob around
 * tpm2_certify output with "PCPM" key blobs, SHA-1 and SHA-256 AIKs, EK info encrypted by `openssl
 * cms -encrypt`, PKCS#10 alone and inside a CMC Full PKI Request; `tpmtrust ca inspect-request`
 * reports them (exit 0), refuses the negative twins (exit 1: another AIK's signature, a key blob that
 * is not the certified key, CSR key ≠ attested key) and unusable input (exit 2).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "../helpers/cli.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { runTool, tpm2 } from "../helpers/tpm2tools.js";
import { bmp, cmcRequest, kads, kast, octets, pcpKeyBlob, WindowsClient, type TpmKey } from "../helpers/windows-client.js";

let dir: string;
let swtpm: Swtpm;
let win: WindowsClient;
let win256: WindowsClient;
let xchgPem: string;
let key: TpmKey;

const OID = { kast: "1.3.6.1.4.1.311.21.24", ekInfo: "1.3.6.1.4.1.311.21.23", os: "1.3.6.1.4.1.311.13.2.3", ksp: "1.3.6.1.4.1.311.21.25", extReq: "1.2.840.113549.1.9.14" };
const ia5 = (s: string) => Buffer.concat([Buffer.from([0x16, s.length]), Buffer.from(s, "latin1")]);
/** extensionRequest with the template-name extension (1.3.6.1.4.1.311.20.2, BMPString) */
function templateExt(name: string): Buffer {
  const oid = Buffer.from("06092b0601040182371402", "hex");
  const val = octets(bmp(name));
  const ext = Buffer.concat([Buffer.from([0x30, oid.length + val.length]), oid, val]);
  return Buffer.concat([Buffer.from([0x30, ext.length]), ext]);
}

async function nameOf(c: WindowsClient, k: TpmKey): Promise<string> {
  const out = c.f(`${k.name}.name`);
  await tpm2(c.tpm, "tpm2_readpublic", ["-c", k.ctx, "-n", out]);
  return readFileSync(out).toString("hex");
}

async function windowsCsr(c: WindowsClient, k: TpmKey, statement: Buffer, o: { signer?: TpmKey } = {}): Promise<Buffer> {
  return c.csr(k, "CN=win11.example.test", [
    { type: OID.extReq, values: [templateExt("WinTpmUser")] },
    { type: OID.os, values: [ia5("10.0.26200.2")] },
    { type: OID.ksp, values: [bmp("Microsoft Platform Crypto Provider")] },
    { type: OID.kast, values: [octets(statement)] },
    { type: OID.ekInfo, values: [await c.ekInfo(xchgPem)] },
  ], o.signer);
}

function write(name: string, data: Buffer | string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}
const inspect = (file: string, json = true) => cli(["ca", "inspect-request", file, ...(json ? ["--json"] : [])]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-win-"));
  swtpm = await startSwtpm();
  for (const d of ["a", "b"]) mkdirSync(join(dir, d));
  win = await new WindowsClient(swtpm, join(dir, "a"), "sha1").init();
  win256 = await new WindowsClient(swtpm, join(dir, "b"), "sha256").init();
  // a stand-in for the CA exchange certificate (openssl), for the EK info's recipient
  await runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Test CA-Xchg/O=tpmtrust-test", "-set_serial", "0x1234abcd", "-days", "1", "-keyout", join(dir, "xchg.key"), "-out", join(dir, "xchg.pem")]);
  xchgPem = readFileSync(join(dir, "xchg.pem"), "utf8");
  key = await win.newKey("userkey");
});

after(async () => {
  await swtpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("inspect-request: a Windows PKCS#10 with a KADS key attestation (SHA-1 and SHA-256 AIKs) and EK info verifies; the same inside CMC", async () => {
  for (const c of [win, win256]) {
    const k = c === win ? key : await c.newKey("userkey256");
    const csr = await windowsCsr(c, k, await c.statement(k));
    // openssl agrees the TPM-signed CSR is well-formed and self-signed
    await runTool("openssl", ["req", "-inform", "DER", "-in", write("w.csr", csr), "-noout", "-verify"]);
    const pem = `-----BEGIN NEW CERTIFICATE REQUEST-----\n${csr.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END NEW CERTIFICATE REQUEST-----\n`;
    for (const [file, format] of [[write(`w-${c.aikHash}.pem`, pem), "pkcs10"], [write(`w-${c.aikHash}.cmc`, await cmcRequest(dir, csr)), "cmc"]] as const) {
      const r = await inspect(file);
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
      assert.equal(j.attestation.aik.name, await nameOf(c, c.aik));
      assert.equal(j.attestation.aik.verified, true);
      assert.equal(j.attestation.key.name, await nameOf(c, k));
      assert.equal(j.attestation.key.verified, true);
      assert.equal(j.attestation.key.signatureScheme, `rsassa-${c.aikHash}`);
      assert.equal(j.attestation.key.matchesRequestKey, true);
      assert.equal(j.ekInfo.recipient.serial, "1234abcd");
      assert.equal(j.ekInfo.recipient.issuer, "CN=Test CA-Xchg, O=tpmtrust-test");
    }
  }
  const text = await inspect(join(dir, "w-sha1.pem"), false);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /attestation\tverified/);
  assert.match(text.stdout, /ek info\tencrypted to CN=Test CA-Xchg, O=tpmtrust-test serial 1234abcd/);
});

test("inspect-request negative twins: another AIK's signature, a key blob that is not the certified key, CSR key ≠ attested key (exit 1); truncated statements (exit 2)", async () => {
  const other = await win.newKey("otherkey");
  const aikBlob = pcpKeyBlob(win.aik.pub, win.aik.priv);
  // the AIK of another client (same TPM, other key) signed the TPM2_Certify
  const byOther = kast(win.idBinding, await win.keyAttestation(key, win256.aik, "sha256"), aikBlob);
  // the TPM2_Certify of `key`, with the key blob of `other`
  const good = await win.keyAttestation(key);
  const cbAttest = good.readUInt32LE(12);
  const cbSig = good.readUInt32LE(16);
  const swapped = kast(win.idBinding, kads(good.subarray(24, 24 + cbAttest), good.subarray(24 + cbAttest, 24 + cbAttest + cbSig), pcpKeyBlob(other.pub, other.priv)), aikBlob);
  const cases: [string, Buffer, TpmKey, string][] = [
    ["another AIK", byOther, key, "ERR_SIGNATURE_INVALID"],
    ["name mismatch", swapped, other, "ERR_NAME_MISMATCH"],
  ];
  for (const [what, statement, csrKey, codeWanted] of cases) {
    const r = await inspect(write(`neg-${what}.der`, await windowsCsr(win, csrKey, statement)));
    assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    const j = r.json();
    assert.equal(j.attestation.verified, false, what);
    assert.equal(j.attestation.key.verified, false, what);
    assert.equal(j.attestation.key.code, codeWanted, what);
  }
  // a valid statement for `key` in a CSR for `other`
  const mismatch = await inspect(write("neg-csrkey.der", await windowsCsr(win, other, await win.statement(key))));
  assert.equal(mismatch.code, 1, mismatch.stdout);
  assert.equal(mismatch.json().attestation.key.verified, true);
  assert.equal(mismatch.json().attestation.key.matchesRequestKey, false);
  assert.equal(mismatch.json().attestation.verified, false);
  // the statement cut at each part's boundary (outer KAST sizes adjusted): unusable input
  const st = await win.statement(key);
  const cbId = st.readUInt32LE(16);
  const cbKa = st.readUInt32LE(20);
  for (const cut of [24, 24 + cbAttest, 24 + cbAttest + cbSig, 24 + cbAttest + cbSig + 56, cbKa - 1]) {
    const short = Buffer.concat([st.subarray(0, 28), st.subarray(28, 28 + cbId), st.subarray(28 + cbId, 28 + cbId + cut)]);
    short.writeUInt32LE(cut, 20);
    short.writeUInt32LE(0, 24);
    const r = await inspect(write(`cut-${cut}.der`, await windowsCsr(win, key, short)));
    assert.equal(r.code, 2, `cut ${cut}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /ERR_PARSE_/);
  }
});

test("inspect-request: plain PKCS#10 and CMC without attestation (openssl), a broken signature, garbage", async () => {
  await runTool("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=plain.example", "-addext", "subjectAltName=DNS:plain.example", "-keyout", join(dir, "plain.key"), "-out", join(dir, "plain.csr")]);
  const r = await inspect(join(dir, "plain.csr"));
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.deepEqual([j.format, j.requestSignatureValid, j.attestation, j.ekInfo, j.key.type], ["pkcs10", true, null, null, "ecdsa-p256"]);
  assert.deepEqual(j.sans, [{ type: "dns", value: "plain.example" }]);
  const der = await runTool("openssl", ["req", "-in", join(dir, "plain.csr"), "-outform", "DER"]);
  const cmc = await inspect(write("plain.cmc", await cmcRequest(dir, der)));
  assert.equal(cmc.code, 0, cmc.stderr);
  assert.deepEqual([cmc.json().format, cmc.json().attestation, cmc.json().subject], ["cmc", null, "CN=plain.example"]);
  const broken = Buffer.from(der);
  broken[broken.length - 5] ^= 1;
  const b = await inspect(write("broken.der", broken));
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.json().requestSignatureValid, false);
  const g = await inspect(write("garbage.der", Buffer.from("30030201ff", "hex")));
  assert.equal(g.code, 2);
  assert.match(g.stderr, /ERR_PARSE_CSR/);
});
