import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { decodeCredentialFile, encodeCredentialFile, makeCredential } from "../../src/crypto/credential.js";
import { shareSeed, type SeedLabel } from "../../src/crypto/protect.js";
import { TPM_ALG, TPM_ECC, ECC_CURVES } from "../../src/tpm/constants.js";
import { decodeTpm2bEncryptedSecret, decodeTpm2bIdObject, decodeTpmtPublic, decodeTpmtSensitive } from "../../src/tpm/structures.js";
import type { RsaPublic, TpmtPublic } from "../../src/tpm/types.js";
import { eccEk, openOuterWrap, recoverSeed, rsaEk, rsaPrivateFromPrime } from "./unwrap.js";

const hex = (s: string) => Buffer.from(s, "hex");
const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/crypto/tpm-test-vectors/${name}`, import.meta.url), "utf8"));
const fixed = (b: Buffer) => () => Buffer.from(b);

/** What TPM2_ActivateCredential does, from the spec (test/crypto/unwrap.ts). */
function activate(ek: TpmtPublic, priv: KeyObject, name: Buffer, blob: { credentialBlob: Buffer; secret: Buffer }): Buffer {
  const seed = recoverSeed(ek, priv, decodeTpm2bEncryptedSecret(blob.secret), "IDENTITY");
  const idContents = blob.credentialBlob.subarray(2);
  decodeTpm2bIdObject(blob.credentialBlob);
  const digest = openOuterWrap(ek, seed, name, idContents);
  assert.equal(digest.readUInt16BE(0), digest.length - 2, "TPM2B_DIGEST(credential)");
  return digest.subarray(2);
}

test("ECC secret sharing equals 100 published vectors (P-256/384/521, SHA-1/256/384/512, IDENTITY/DUPLICATE/SECRET)", () => {
  const vectors: { Name: string; Label: SeedLabel; EphemeralPrivate: string; PublicKey: string; Secret: string; Ciphertext: string }[] = fixture("ecc_labeled_encaps.json");
  assert.equal(vectors.length, 100);
  for (const v of vectors) {
    const { seed, encryptedSecret } = shareSeed(decodeTpmtPublic(hex(v.PublicKey)), v.Label, fixed(hex(v.EphemeralPrivate)));
    assert.equal(seed.toString("hex"), v.Secret, v.Name);
    assert.equal(encryptedSecret.toString("hex"), v.Ciphertext, v.Name);
  }
});

test("RSA secret sharing: published ciphertexts decrypt to their seeds with OAEP(nameAlg or scheme hash, label‖00); ours round-trip", () => {
  const vectors: { Name: string; Label: SeedLabel; PublicKey: string; PrivateKey: string; Secret: string; Ciphertext: string }[] = fixture("rsa_labeled_encaps.json");
  assert.equal(vectors.length, 100);
  for (const v of vectors) {
    const pub = decodeTpmtPublic(hex(v.PublicKey)) as RsaPublic;
    const priv = rsaPrivateFromPrime(pub, decodeTpmtSensitive(hex(v.PrivateKey)).sensitive);
    assert.equal(recoverSeed(pub, priv, hex(v.Ciphertext), v.Label).toString("hex"), v.Secret, v.Name);
    const ours = shareSeed(pub, v.Label);
    assert.equal(ours.seed.length, hex(v.Secret).length, v.Name);
    assert.deepEqual(recoverSeed(pub, priv, ours.encryptedSecret, v.Label), ours.seed, v.Name);
    assert.throws(() => recoverSeed(pub, priv, ours.encryptedSecret, v.Label === "IDENTITY" ? "DUPLICATE" : "IDENTITY"), v.Name);
  }
});

test("MakeCredential equals the DPS reference vector (seed 44×32, credential 33×16, Name(SRK) from swtpm)", () => {
  const { pub } = rsaEk();
  const name = hex("000baf825abfdd993c007824d68287689181ef0c1e7dc848bf942d9523b87daefbd7");
  const blob = makeCredential(pub, name, Buffer.alloc(16, 0x33), { random: fixed(Buffer.alloc(32, 0x44)) });
  assert.equal(
    blob.credentialBlob.toString("hex"),
    "003400208f7ef8688c3dfe9d6102855bb3a9656785c62d52f32cfbbd620cb5b4f26bbba6365fd4ffea2f7cfb6b7c29cb2d080fd14ab1",
  );
  assert.equal(blob.secret.length, 2 + 256);
});

test("MakeCredential round-trips through a spec-side activation for RSA and ECC EKs of every nameAlg and AES size", () => {
  const name = Buffer.concat([Buffer.of(0, 0x0b), Buffer.alloc(32, 7)]);
  const cases = [
    rsaEk(2048),
    rsaEk(2048, TPM_ALG.SHA384, 256),
    rsaEk(3072, TPM_ALG.SHA512, 256),
    rsaEk(2048, TPM_ALG.SHA1, 128),
    eccEk(),
    eccEk(TPM_ECC.NIST_P384, TPM_ALG.SHA384, 256),
    eccEk(TPM_ECC.NIST_P521, TPM_ALG.SHA512, 256),
    eccEk(TPM_ECC.NIST_P256, TPM_ALG.SHA256, 192),
  ];
  for (const { pub, priv } of cases) {
    const size = { [TPM_ALG.SHA1]: 20, [TPM_ALG.SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 }[pub.nameAlg]!;
    for (const credential of [Buffer.alloc(1, 1), Buffer.alloc(size, 2)]) {
      const blob = makeCredential(pub, name, credential);
      assert.deepEqual(activate(pub, priv, name, blob), credential);
      assert.throws(() => activate(pub, priv, Buffer.concat([name.subarray(0, 33), Buffer.of(8)]), blob), /outer integrity/);
    }
    const secretSize = pub.type === TPM_ALG.ECC ? 2 + 4 + 2 * ECC_CURVES[pub.parameters.curveID].size : 2 + pub.parameters.keyBits / 8;
    assert.equal(makeCredential(pub, name, Buffer.alloc(4)).secret.length, secretSize);
    assert.throws(() => makeCredential(pub, name, Buffer.alloc(size + 1)), { code: "ERR_PARSE_TOO_LARGE" });
  }
});

test("deterministic with injected randomness (ECC): same inputs, same blob", () => {
  const { pub } = eccEk();
  const d = Buffer.from(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ format: "jwk" }).d!, "base64url");
  const a = makeCredential(pub, Buffer.alloc(34, 1), Buffer.alloc(32, 5), { random: fixed(d) });
  const b = makeCredential(pub, Buffer.alloc(34, 1), Buffer.alloc(32, 5), { random: fixed(d) });
  assert.deepEqual(a, b);
  assert.notDeepEqual(makeCredential(pub, Buffer.alloc(34, 1), Buffer.alloc(32, 5)), a);
});

test("MakeCredential refuses what no TPM could activate", () => {
  const { pub } = rsaEk();
  const name = Buffer.alloc(34, 1);
  assert.throws(() => makeCredential(pub, name, Buffer.alloc(0)), { code: "ERR_PARSE_TOO_LARGE" });
  assert.throws(() => makeCredential(pub, Buffer.alloc(1), Buffer.alloc(16)), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => makeCredential(pub, Buffer.alloc(67), Buffer.alloc(16)), { code: "ERR_PARSE_BAD_VALUE" });
  assert.throws(() => makeCredential({ ...pub, parameters: { ...pub.parameters, symmetric: { algorithm: TPM_ALG.NULL } } }, name, Buffer.alloc(16)), { code: "ERR_PARSE_UNSUPPORTED" });
  assert.throws(() => makeCredential({ ...pub, parameters: { ...pub.parameters, symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CBC } } }, name, Buffer.alloc(16)), { code: "ERR_PARSE_UNSUPPORTED" });
  assert.throws(() => makeCredential({ ...pub, objectAttributes: 0x00050072 }, name, Buffer.alloc(16)), { code: "ERR_PARSE_BAD_VALUE" }); // a signing key
  assert.throws(() => makeCredential({ ...pub, nameAlg: TPM_ALG.SM3_256 + 0x100 }, name, Buffer.alloc(16)), { code: "ERR_PARSE_UNSUPPORTED" });
  const ecc = eccEk().pub;
  assert.throws(() => makeCredential({ ...ecc, unique: { x: Buffer.alloc(32, 1), y: Buffer.alloc(32, 2) } }, name, Buffer.alloc(16)), { code: "ERR_PARSE_BAD_VALUE" });
});

test("tpm2-tools credential file: encode/decode round trip and typed errors", () => {
  const { pub } = rsaEk();
  const blob = makeCredential(pub, Buffer.alloc(34, 1), Buffer.alloc(32, 9));
  const file = encodeCredentialFile(blob);
  assert.equal(file.subarray(0, 8).toString("hex"), "badcc0de00000001");
  assert.equal(file.length, 8 + 2 + 2 + 32 + 34 + 258); // 336, as tpm2_makecredential writes for RSA-2048
  assert.deepEqual(decodeCredentialFile(file), blob);
  const bad = (f: Buffer, code: string) => assert.throws(() => decodeCredentialFile(f), { code });
  bad(Buffer.concat([Buffer.of(0xba, 0xdc, 0xc0, 0xdf), file.subarray(4)]), "ERR_PARSE_FORMAT");
  bad(Buffer.concat([file.subarray(0, 7), Buffer.of(2), file.subarray(8)]), "ERR_PARSE_UNSUPPORTED");
  bad(file.subarray(0, file.length - 1), "ERR_PARSE_TRUNCATED");
  bad(file.subarray(0, 3), "ERR_PARSE_TRUNCATED");
  bad(Buffer.concat([file, Buffer.of(0)]), "ERR_PARSE_TRAILING_BYTES");
  assert.throws(() => encodeCredentialFile({ ...blob, secret: blob.secret.subarray(0, -1) }), { code: "ERR_PARSE_TRUNCATED" });
});
