import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, sign, verify, type JsonWebKey } from "node:crypto";
import { openStore } from "../../src/store/index.js";
import { jwks, signingKey, type TokenConfig } from "../../src/tokens/tokens.js";
import { refuseJwkOfGeneratedKeys } from "../helpers/generated-keys.js";

const cfg: TokenConfig = { tokenTtlMs: 3_600_000, keyRotationMs: 86_400_000, issuer: "tpmtrust" };

test("a new signing key is written as JWK without exporting the generated KeyObjects (on Node 20 that can hang the process), and signs for its published key", async () => {
  const store = await openStore(":memory:");
  const restore = refuseJwkOfGeneratedKeys();
  try {
    const now = Date.now();
    const key = await signingKey(store, cfg, now);
    const [published] = (await jwks(store, cfg, now)).keys;
    assert.equal(published.kid, key.kid);
    const data = Buffer.from("tpmtrust");
    const signature = sign("sha256", data, key.key);
    assert.ok(verify("sha256", data, createPublicKey({ key: published as JsonWebKey, format: "jwk" }), signature));
  } finally {
    restore();
    await store.close();
  }
});
