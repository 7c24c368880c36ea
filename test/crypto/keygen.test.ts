import { test } from "node:test";
import assert from "node:assert/strict";
import { sign, verify } from "node:crypto";
import { newKeyPair } from "../../src/crypto/keygen.js";

test("new key pairs: the two halves belong together, with the algorithm asked for", () => {
  const data = Buffer.from("tpmtrust");
  for (const [alg, type, detail] of [
    ["ecdsa-p256", "ec", { namedCurve: "prime256v1" }],
    ["rsa-2048", "rsa", { modulusLength: 2048 }],
  ] as const) {
    const a = newKeyPair(alg);
    const b = newKeyPair(alg);
    assert.equal(a.privateKey.type, "private");
    assert.equal(a.publicKey.asymmetricKeyType, type);
    for (const [k, v] of Object.entries(detail)) assert.equal(a.publicKey.asymmetricKeyDetails?.[k as keyof typeof detail], v);
    const sig = sign("sha256", data, a.privateKey);
    assert.ok(verify("sha256", data, a.publicKey, sig));
    assert.ok(!verify("sha256", data, b.publicKey, sig), "each call makes a new key");
    assert.equal(a.publicKey.export({ format: "jwk" }).kty, type === "ec" ? "EC" : "RSA");
  }
});
