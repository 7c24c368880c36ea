import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { publicKeyFromTpmt, samePublicKey, spkiFromTpmt, toPublicKey } from "../../src/crypto/keys.js";
import { decodeTpm2bPublic } from "../../src/tpm/structures.js";
import { TPM_ALG, TPM_ECC } from "../../src/tpm/constants.js";
import type { EccPublic, RsaPublic, TpmtPublic } from "../../src/tpm/types.js";

const fixture = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url));
const NULL_SYM = { algorithm: TPM_ALG.NULL };
const NULL_SCHEME = { scheme: TPM_ALG.NULL };

function rsaPub(n: Buffer, exponent: number, keyBits = n.length * 8): RsaPublic {
  return { type: TPM_ALG.RSA, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x00040072, authPolicy: Buffer.alloc(0), parameters: { symmetric: NULL_SYM, scheme: NULL_SCHEME, keyBits, exponent }, unique: n };
}
function eccPub(curveID: number, x: Buffer, y: Buffer): EccPublic {
  return { type: TPM_ALG.ECC, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x00040072, authPolicy: Buffer.alloc(0), parameters: { symmetric: NULL_SYM, scheme: NULL_SCHEME, curveID, kdf: NULL_SCHEME }, unique: { x, y } };
}

test("RSA: exponent 0 means 65537; other exponents are kept; SPKI equals node's", () => {
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const n = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
  const pub = rsaPub(n, 0);
  assert.ok(publicKeyFromTpmt(pub).equals(publicKey));
  assert.deepEqual(spkiFromTpmt(pub), publicKey.export({ type: "spki", format: "der" }));
  assert.ok(samePublicKey(rsaPub(n, 65537), publicKey));
  const { publicKey: e3 } = generateKeyPairSync("rsa", { modulusLength: 1024, publicExponent: 3 });
  const n3 = Buffer.from(e3.export({ format: "jwk" }).n!, "base64url");
  assert.ok(publicKeyFromTpmt(rsaPub(n3, 3)).equals(e3));
  assert.equal(samePublicKey(rsaPub(n3, 0), e3), false);
});

test("ECC P-256/384/521 via JWK; short coordinates are left-padded", () => {
  for (const [curveID, name, size] of [[TPM_ECC.NIST_P256, "prime256v1", 32], [TPM_ECC.NIST_P384, "secp384r1", 48], [TPM_ECC.NIST_P521, "secp521r1", 66]] as const) {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: name });
    const jwk = publicKey.export({ format: "jwk" });
    const x = Buffer.from(jwk.x!, "base64url");
    const y = Buffer.from(jwk.y!, "base64url");
    assert.equal(x.length, size);
    assert.ok(publicKeyFromTpmt(eccPub(curveID, x, y)).equals(publicKey), name);
    assert.ok(samePublicKey(spkiFromTpmt(eccPub(curveID, x, y)), publicKey.export({ type: "spki", format: "pem" }) as string));
  }
  // find a P-256 key with a leading zero octet in x and give x without it
  for (;;) {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const jwk = publicKey.export({ format: "jwk" });
    const x = Buffer.from(jwk.x!, "base64url");
    if (x[0] !== 0) continue;
    assert.ok(publicKeyFromTpmt(eccPub(TPM_ECC.NIST_P256, x.subarray(1), Buffer.from(jwk.y!, "base64url"))).equals(publicKey));
    break;
  }
});

test("real Infineon EK certificates hold the keys of their TPM2B_PUBLIC (RSA and ECC)", () => {
  for (const kind of ["rsa", "ecc"]) {
    const cert = new X509Certificate(fixture(`ek-certs/infineon_${kind}_ek.der`));
    const pub = decodeTpm2bPublic(fixture(`ek-certs/infineon_${kind}_ek.expected_tpm2b_public.bin`));
    assert.ok(samePublicKey(pub, cert.publicKey), kind);
    assert.ok(samePublicKey(cert.publicKey.export({ type: "spki", format: "der" }), pub));
  }
  const rsa = decodeTpm2bPublic(fixture("ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin"));
  const ecc = decodeTpm2bPublic(fixture("ek-certs/infineon_ecc_ek.expected_tpm2b_public.bin"));
  assert.equal(samePublicKey(rsa, ecc), false);
});

test("the KeyObject is cached per public area and per key material", () => {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = publicKey.export({ format: "jwk" });
  const mk = () => eccPub(TPM_ECC.NIST_P256, Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url"));
  const a = mk();
  assert.equal(publicKeyFromTpmt(a), publicKeyFromTpmt(a));
  assert.equal(publicKeyFromTpmt(mk()), publicKeyFromTpmt(a));
});

test("malformed public areas and inputs give typed errors", () => {
  const n = Buffer.alloc(256, 0xff);
  assert.throws(() => publicKeyFromTpmt(rsaPub(n.subarray(1), 0, 2048)), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => publicKeyFromTpmt(rsaPub(Buffer.alloc(256), 0)), { code: "ERR_PARSE_BAD_VALUE" }); // zero modulus (an EK template)
  assert.throws(() => publicKeyFromTpmt(eccPub(TPM_ECC.NIST_P256, Buffer.alloc(32, 1), Buffer.alloc(32, 2))), { code: "ERR_PARSE_BAD_VALUE" }); // off the curve
  assert.throws(() => publicKeyFromTpmt(eccPub(TPM_ECC.NIST_P256, Buffer.alloc(33, 1), Buffer.alloc(32, 2))), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => publicKeyFromTpmt(eccPub(TPM_ECC.BN_P256, Buffer.alloc(32, 1), Buffer.alloc(32, 2))), { code: "ERR_PARSE_UNSUPPORTED" });
  const keyed: TpmtPublic = { type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: 0x40, authPolicy: Buffer.alloc(0), parameters: { scheme: NULL_SCHEME }, unique: Buffer.alloc(32) };
  assert.throws(() => publicKeyFromTpmt(keyed), { code: "ERR_PARSE_UNSUPPORTED" });
  assert.throws(() => toPublicKey(Buffer.from("not der")), { code: "ERR_PARSE_FORMAT" });
  assert.throws(() => toPublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), { code: "ERR_PARSE_FORMAT" });
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  assert.ok(toPublicKey(privateKey).equals(publicKey));
  assert.ok(toPublicKey(createPublicKey(publicKey.export({ type: "spki", format: "pem" }))).equals(publicKey));
});
