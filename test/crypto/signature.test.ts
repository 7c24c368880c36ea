import { test } from "node:test";
import assert from "node:assert/strict";
import { constants, createHmac, createSecretKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { RAW_SIGNATURE_SCHEMES, signatureFromRaw, verifySignature } from "../../src/crypto/signature.js";
import { decodeTpmtSignature } from "../../src/tpm/structures.js";
import { TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import type { RsaPublic, TpmtSignature } from "../../src/tpm/types.js";

const fixture = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url));
const msg = Buffer.from("TPMS_ATTEST stand-in: the signed bytes");
const HASHES = [
  [TPM_ALG.SHA1, "sha1", 20],
  [TPM_ALG.SHA256, "sha256", 32],
  [TPM_ALG.SHA384, "sha384", 48],
  [TPM_ALG.SHA512, "sha512", 64],
] as const;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const p256 = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const p384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" });

function rsaTpmt(pub: KeyObject, scheme: { scheme: number; hashAlg?: number }): RsaPublic {
  const n = Buffer.from(pub.export({ format: "jwk" }).n!, "base64url");
  return { type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x00050072, authPolicy: Buffer.alloc(0), parameters: { symmetric: { algorithm: TPM_ALG.NULL }, scheme, keyBits: 2048, exponent: 0 }, unique: n };
}
function flip(b: Uint8Array, i = b.length - 1): Buffer {
  const c = Buffer.from(b);
  c[i] ^= 1;
  return c;
}
const rejects = (sig: TpmtSignature, key: Parameters<typeof verifySignature>[2], code: string, m: Uint8Array = msg) => assert.throws(() => verifySignature(sig, m, key), { code });

test("RSASSA with SHA-1/256/384/512 against KeyObject, SPKI DER/PEM and TPMT_PUBLIC; tampering is ERR_SIGNATURE_INVALID", () => {
  const tpmt = rsaTpmt(rsa.publicKey, { scheme: TPM_ALG.NULL });
  for (const [alg, name] of HASHES) {
    const sig: TpmtSignature = { sigAlg: TPM_ALG.RSASSA, hash: alg, sig: sign(name, msg, rsa.privateKey) };
    verifySignature(sig, msg, rsa.publicKey);
    verifySignature(sig, msg, rsa.publicKey.export({ type: "spki", format: "der" }));
    verifySignature(sig, msg, rsa.publicKey.export({ type: "spki", format: "pem" }) as string);
    verifySignature(sig, msg, tpmt);
    rejects(sig, tpmt, "ERR_SIGNATURE_INVALID", flip(msg));
    rejects({ ...sig, sig: flip(sig.sig) }, tpmt, "ERR_SIGNATURE_INVALID");
    rejects({ ...sig, sig: sig.sig.subarray(1) }, tpmt, "ERR_SIGNATURE_INVALID");
    rejects(sig, generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey, "ERR_SIGNATURE_INVALID");
  }
});

test("RSAPSS: salt = digest size (what a TPM uses), maximum, and zero all verify (RSA_PSS_SALTLEN_AUTO recovers it)", () => {
  for (const [alg, name, size] of HASHES) {
    for (const saltLength of [size, constants.RSA_PSS_SALTLEN_MAX_SIGN, 0]) {
      const s = sign(name, msg, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
      const sig: TpmtSignature = { sigAlg: TPM_ALG.RSAPSS, hash: alg, sig: s };
      verifySignature(sig, msg, rsa.publicKey);
      rejects(sig, rsa.publicKey, "ERR_SIGNATURE_INVALID", flip(msg));
      // the same bytes are not a PKCS#1 v1.5 signature
      rejects({ ...sig, sigAlg: TPM_ALG.RSASSA }, rsa.publicKey, "ERR_SIGNATURE_INVALID");
    }
  }
});

test("ECDSA P-256 and P-384 with r and s as TPM2B (leading zeros dropped or not)", () => {
  for (const [kp, size] of [[p256, 32], [p384, 48]] as const) {
    for (const [alg, name] of HASHES) {
      const rs = sign(name, msg, { key: kp.privateKey, dsaEncoding: "ieee-p1363" });
      const sig: TpmtSignature = { sigAlg: TPM_ALG.ECDSA, hash: alg, r: rs.subarray(0, size), s: rs.subarray(size) };
      verifySignature(sig, msg, kp.publicKey);
      rejects(sig, kp.publicKey, "ERR_SIGNATURE_INVALID", flip(msg));
      rejects({ ...sig, s: flip(sig.s) }, kp.publicKey, "ERR_SIGNATURE_INVALID");
      rejects({ ...sig, r: Buffer.concat([Buffer.of(1), sig.r]) }, kp.publicKey, "ERR_SIGNATURE_INVALID");
      rejects({ ...sig, r: Buffer.alloc(0) }, kp.publicKey, "ERR_SIGNATURE_INVALID");
    }
  }
  // a short r (top octet zero) found by signing until it happens
  for (;;) {
    const rs = sign("sha256", msg, { key: p256.privateKey, dsaEncoding: "ieee-p1363" });
    if (rs[0] !== 0) continue;
    verifySignature({ sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(1, 32), s: rs.subarray(32) }, msg, p256.publicKey);
    break;
  }
});

test("HMAC signatures need the secret key and compare in constant time", () => {
  const key = createSecretKey(Buffer.alloc(32, 9));
  const digest = createHmac("sha256", key).update(msg).digest();
  const sig: TpmtSignature = { sigAlg: TPM_ALG.HMAC, hash: TPM_ALG.SHA256, digest };
  verifySignature(sig, msg, key);
  rejects({ ...sig, digest: flip(digest) }, key, "ERR_SIGNATURE_INVALID");
  rejects(sig, createSecretKey(Buffer.alloc(32, 8)), "ERR_SIGNATURE_INVALID");
  rejects(sig, p256.publicKey, "ERR_SIGNATURE_SCHEME");
});

test("scheme/key mismatches are ERR_SIGNATURE_SCHEME", () => {
  const rsaSig: TpmtSignature = { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, sig: sign("sha256", msg, rsa.privateKey) };
  const rs = sign("sha256", msg, { key: p256.privateKey, dsaEncoding: "ieee-p1363" });
  const ecSig: TpmtSignature = { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(0, 32), s: rs.subarray(32) };
  rejects(rsaSig, p256.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects({ ...rsaSig, sigAlg: TPM_ALG.RSAPSS }, p256.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects(ecSig, rsa.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects({ sigAlg: TPM_ALG.NULL }, rsa.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects({ ...ecSig, sigAlg: TPM_ALG.ECDAA }, p256.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects({ ...rsaSig, hash: TPM_ALG.SM3_256 }, rsa.publicKey, "ERR_SIGNATURE_SCHEME");
  rejects(rsaSig, createSecretKey(Buffer.alloc(16)), "ERR_SIGNATURE_SCHEME");
  // a public area that fixes RSASSA-SHA256 accepts nothing else
  const fixed = rsaTpmt(rsa.publicKey, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 });
  verifySignature(rsaSig, msg, fixed);
  rejects({ sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA1, sig: sign("sha1", msg, rsa.privateKey) }, fixed, "ERR_SIGNATURE_SCHEME");
  rejects({ sigAlg: TPM_ALG.RSAPSS, hash: TPM_ALG.SHA256, sig: sign("sha256", msg, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING }) }, fixed, "ERR_SIGNATURE_SCHEME");
  rejects(ecSig, generateKeyPairSync("ed25519").publicKey, "ERR_SIGNATURE_SCHEME");
});

test("a real swtpm quote (keylime fixture) verifies against its AK PEM", () => {
  const attest = fixture("quotes/swtpm-pcr16-quote.bin");
  const sig = decodeTpmtSignature(fixture("quotes/swtpm-pcr16-sig.bin"));
  const ak = fixture("quotes/swtpm-pcr16-ak.pem").toString("utf8");
  verifySignature(sig, attest, ak);
  rejects(sig, ak, "ERR_SIGNATURE_INVALID", flip(attest, 40));
});

test("signatureFromRaw: every scheme name; RSA bytes; ECDSA as DER or r‖s; HMAC digests", () => {
  assert.equal(RAW_SIGNATURE_SCHEMES.length, 16);
  assert.ok(RAW_SIGNATURE_SCHEMES.includes("rsapss-sha384"));
  const rsaRaw = sign("sha384", msg, rsa.privateKey);
  const s1 = signatureFromRaw("rsassa-sha384", rsaRaw, rsa.publicKey);
  assert.deepEqual(s1, { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA384, sig: rsaRaw });
  verifySignature(s1, msg, rsa.publicKey);
  verifySignature(signatureFromRaw("RSAPSS-SHA256", sign("sha256", msg, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING }), rsa.publicKey), msg, rsa.publicKey);

  for (const [kp, curve] of [[p256, TPM_ECC.NIST_P256], [p384, TPM_ECC.NIST_P384]] as const) {
    for (let i = 0; i < 20; i++) {
      const der = sign("sha256", msg, kp.privateKey);
      const fromDer = signatureFromRaw("ecdsa-sha256", der, kp.publicKey);
      verifySignature(fromDer, msg, kp.publicKey);
      const rs = sign("sha256", msg, { key: kp.privateKey, dsaEncoding: "ieee-p1363" });
      const fromRs = signatureFromRaw("ecdsa-sha256", rs, kp.publicKey);
      verifySignature(fromRs, msg, kp.publicKey);
      assert.equal(fromRs.sigAlg === TPM_ALG.ECDSA && fromRs.r.length, rs.length / 2, `curve ${curve}`);
    }
  }
  const rs = sign("sha256", msg, { key: p256.privateKey, dsaEncoding: "ieee-p1363" });
  verifySignature(signatureFromRaw("ecdsa-sha256", rs), msg, p256.publicKey); // no key: halves
  assert.throws(() => signatureFromRaw("ecdsa-sha256", rs.subarray(1), p256.publicKey), { code: "ERR_PARSE_FORMAT" });
  assert.throws(() => signatureFromRaw("ecdsa-sha256", rs, p384.publicKey), { code: "ERR_PARSE_FORMAT" });
  // DER with a non-minimal INTEGER is not taken for DER
  const der = sign("sha256", msg, p256.privateKey);
  const bad = Buffer.concat([Buffer.of(0x30, der[1] + 1, 0x02, der[3] + 1, 0x00), der.subarray(4)]);
  assert.throws(() => signatureFromRaw("ecdsa-sha256", bad, p256.publicKey), { code: "ERR_PARSE_FORMAT" });

  const mac = createHmac("sha512", Buffer.alloc(3)).update(msg).digest();
  verifySignature(signatureFromRaw("hmac-sha512", mac), msg, createSecretKey(Buffer.alloc(3)));
  assert.throws(() => signatureFromRaw("hmac-sha512", mac.subarray(1)), { code: "ERR_PARSE_BAD_VALUE" });
  for (const bad of ["rsassa", "rsassa-md5", "dsa-sha256", "ecdsa-sha256-x", ""]) {
    assert.throws(() => signatureFromRaw(bad, rsaRaw), { code: "ERR_USAGE" }, bad);
  }
  assert.throws(() => signatureFromRaw("rsassa-sha256", Buffer.alloc(0)), { code: "ERR_PARSE_TRUNCATED" });
});
