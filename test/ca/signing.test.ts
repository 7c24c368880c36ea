/** The CA primitives both CAs share: key files, serials, issuance with serial-collision retry. */
import "reflect-metadata";
import { test } from "node:test";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicKey } from "node:crypto";
import { createSelfSignedCa, generateCaKey, issueUnique, loadSigner, randomSerial, readKeyFile, writeKeyFile } from "../../src/ca/signing.js";
import { TpmTrustError } from "../../src/errors.js";

const isCode = (code: string) => (e: unknown) => e instanceof TpmTrustError && e.code === code;

test("serials: 16 CSPRNG bytes, positive and minimally encoded, all distinct", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const s = randomSerial();
    assert.match(s, /^[0-7][0-9a-f]{31}$/);
    assert.notEqual(s.slice(0, 2), "00");
    seen.add(s);
  }
  assert.equal(seen.size, 2000);
});

test("key files: PKCS#8 with mode 0600, never overwritten, refused when readable by others or not the certificate's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-signing-"));
  try {
    const path = join(dir, "sub", "k.pem");
    for (const alg of ["ecdsa-p256", "rsa-2048"] as const) {
      const p = `${path}.${alg}`;
      const key = generateCaKey(alg);
      assert.equal(writeKeyFile(p, key), true);
      assert.equal(statSync(p).mode & 0o777, 0o600);
      assert.equal(writeKeyFile(p, generateCaKey(alg)), false, "an existing key file is kept");
      assert.ok(createPublicKey(readKeyFile(p)).equals(createPublicKey(key)));
      const cert = await createSelfSignedCa(key, { subject: [{ CN: [alg] }], notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), pathLength: 0 });
      assert.ok(await cert.verify({ signatureOnly: true }));
      assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, true);
      const signer = await loadSigner(Buffer.from(cert.rawData), p);
      assert.equal(signer.certificate.subject, `CN=${alg}`);
      chmodSync(p, 0o644);
      assert.throws(() => readKeyFile(p), isCode("ERR_IO"));
      chmodSync(p, 0o600);
    }
    const other = await createSelfSignedCa(generateCaKey("ecdsa-p256"), { subject: [{ CN: ["other"] }], notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), pathLength: 0 });
    await assert.rejects(loadSigner(Buffer.from(other.rawData), `${path}.ecdsa-p256`), isCode("ERR_IO"));
    assert.throws(() => readKeyFile(join(dir, "missing.pem")), isCode("ERR_IO"));
    assert.match(readFileSync(`${path}.rsa-2048`, "utf8"), /^-----BEGIN PRIVATE KEY-----/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("issueUnique: a serial collision draws a new serial; three in a row give up with ERR_CONFLICT", async () => {
  const key = generateCaKey("ecdsa-p256");
  const ca = await createSelfSignedCa(key, { subject: [{ CN: ["ca"] }], notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), pathLength: 0 });
  const dir = mkdtempSync(join(tmpdir(), "tpmtrust-signing-"));
  try {
    writeKeyFile(join(dir, "ca.pem"), key);
    const issuer = await loadSigner(Buffer.from(ca.rawData), join(dir, "ca.pem"));
    const params = { issuer, publicKey: createPublicKey(generateCaKey("ecdsa-p256")).export({ type: "spki", format: "der" }), subject: "CN=leaf", notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000), extensions: [] };
    const tried: string[] = [];
    const serial = await issueUnique(params, async (cert, s) => {
      assert.equal(cert.serialNumber, s);
      tried.push(s);
      if (tried.length === 1) throw new TpmTrustError("ERR_CONFLICT", "serial taken");
      return s;
    });
    assert.equal(tried.length, 2);
    assert.notEqual(tried[0], tried[1]);
    assert.equal(serial, tried[1]);
    let attempts = 0;
    await assert.rejects(
      issueUnique(params, async () => {
        attempts++;
        throw new TpmTrustError("ERR_CONFLICT", "serial taken");
      }),
      isCode("ERR_CONFLICT"),
    );
    assert.equal(attempts, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
