import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execSync } from "node:child_process";
import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { decodeTpm2bPublic } from "../../../src/tpm/structures.js";
import { TPM_ALG, TPM_ECC } from "../../../src/tpm/constants.js";
import type { TpmtPublic } from "../../../src/tpm/types.js";
import { ekHash, ekHashFromCertificate, ekHashInput, isEkHash, loadCertificate } from "../../../src/verify/ek/index.js";

const FIX = "test/fixtures/ek-certs";

/** SHA-256 of the DER PKCS#1 RSAPublicKey, exactly as TPM-FACTS.md and Windows define it, by openssl. */
function opensslRsaEkHash(certPath: string): string {
  return execSync(`openssl x509 -inform DER -in ${certPath} -noout -pubkey | openssl rsa -pubin -RSAPublicKey_out -outform DER | sha256sum`)
    .toString()
    .split(" ")[0];
}

test("RSA EK hash = SHA-256 of openssl's DER RSAPublicKey (270 bytes), from the certificate, its SPKI and its TPM2B_PUBLIC", () => {
  const path = `${FIX}/infineon_rsa_ek.der`;
  const expected = opensslRsaEkHash(path);
  assert.match(expected, /^[0-9a-f]{64}$/);
  const cert = loadCertificate(readFileSync(path));
  assert.equal(ekHashFromCertificate(cert), expected);
  assert.equal(ekHash(cert.spki), expected);
  const pem = execSync(`openssl x509 -inform DER -in ${path} -noout -pubkey`).toString();
  assert.equal(ekHash(pem), expected);
  const pub = decodeTpm2bPublic(readFileSync(`${FIX}/infineon_rsa_ek.expected_tpm2b_public.bin`));
  assert.equal(pub.type, TPM_ALG.RSA);
  assert.equal(ekHash(pub), expected);

  // the hashed bytes are the SPKI BIT STRING contents: 30 82 01 0a 02 82 01 01 00 … 02 03 01 00 01
  const input = ekHashInput(createPublicKey({ key: cert.spki, format: "der", type: "spki" }));
  assert.equal(input.length, 270);
  assert.ok(input.equals(cert.publicKeyBits));
  assert.equal(input.subarray(0, 9).toString("hex"), "3082010a0282010100");
  assert.equal(input.subarray(-5).toString("hex"), "0203010001");
  // not the SPKI, not the modulus
  assert.notEqual(expected, createHash("sha256").update(cert.spki).digest("hex"));
});

test("ECC EK hash = SHA-256 of the uncompressed point (the SPKI BIT STRING contents), from certificate and TPM2B_PUBLIC", () => {
  const path = `${FIX}/infineon_ecc_ek.der`;
  const spki = execSync(`openssl x509 -inform DER -in ${path} -noout -pubkey | openssl pkey -pubin -outform DER`);
  const point = spki.subarray(-65);
  assert.equal(point[0], 0x04);
  const expected = createHash("sha256").update(point).digest("hex");
  const cert = loadCertificate(readFileSync(path));
  assert.ok(cert.publicKeyBits.equals(point));
  assert.equal(ekHashFromCertificate(cert), expected);
  const pub = decodeTpm2bPublic(readFileSync(`${FIX}/infineon_ecc_ek.expected_tpm2b_public.bin`));
  assert.equal(ekHash(pub), expected);
});

test("ECC coordinates a TPM shortened are padded to the curve size; exponent 0 means 65537", () => {
  // find a P-256 key whose x starts with a zero byte
  for (;;) {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = publicKey.export({ format: "jwk" });
    const x = Buffer.from(jwk.x!, "base64url");
    if (x[0] !== 0) continue;
    const pub: TpmtPublic = {
      type: TPM_ALG.ECC,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: 0x000300b2,
      authPolicy: Buffer.alloc(0),
      parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.NULL }, curveID: TPM_ECC.NIST_P256, kdf: { scheme: TPM_ALG.NULL } },
      unique: { x: x.subarray(1), y: Buffer.from(jwk.y!, "base64url") },
    };
    const spki = publicKey.export({ type: "spki", format: "der" });
    assert.equal(ekHash(pub), createHash("sha256").update(spki.subarray(-65)).digest("hex"));
    break;
  }
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
  const rsa: TpmtPublic = {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0x000300b2,
    authPolicy: Buffer.alloc(0),
    parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
    unique: n,
  };
  assert.equal(ekHash(rsa), createHash("sha256").update(publicKey.export({ type: "pkcs1", format: "der" })).digest("hex"));
});

test("isEkHash accepts 64 hex digits in any case only", () => {
  assert.ok(isEkHash("A".repeat(64)));
  assert.ok(isEkHash("0123456789abcdef".repeat(4)));
  assert.ok(!isEkHash("a".repeat(63)));
  assert.ok(!isEkHash(`${"a".repeat(64)}.txt`));
  assert.ok(!isEkHash("g".repeat(64)));
});

test("keys that are not EKs are ERR_PARSE_UNSUPPORTED", () => {
  const { publicKey } = generateKeyPairSync("ed25519");
  assert.throws(() => ekHash(publicKey), { code: "ERR_PARSE_UNSUPPORTED" });
});
