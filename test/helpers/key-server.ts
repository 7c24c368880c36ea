/**
 * What every key server kind must do with its keys (src/keys/server.ts): AES-256-GCM under the key
 * server, IV ‖ ciphertext ‖ tag, a fresh IV per seal, bound to its AAD and its key version, any
 * flipped or missing byte refused with ERR_DECRYPT_FAILED, and still usable after such a refusal.
 */
import assert from "node:assert/strict";
import { TpmTrustError } from "../../src/errors.js";
import type { KeyRef, KeyServer } from "../../src/keys/index.js";

const decryptFailed = (e: unknown) => e instanceof TpmTrustError && e.code === "ERR_DECRYPT_FAILED";

/** Runs the sealing contract on two new versions of `keyId`; returns them for kind-specific checks. */
export async function checkSealing(server: KeyServer, keyId: string): Promise<{ v1: KeyRef; v2: KeyRef; pt: Buffer; aad: Buffer }> {
  const v1 = { keyId, version: 1, ref: await server.createKey(keyId) };
  const v2 = { keyId, version: 2, ref: await server.createKey(keyId) };
  assert.notEqual(v1.ref, v2.ref);
  const aad = Buffer.from("tpmtrust aad");
  const pt = Buffer.from("the data key of a VM disk");
  const sealed = await server.encrypt(v1, pt, aad);
  assert.equal(sealed.length, 12 + pt.length + 16);
  assert.notDeepEqual((await server.encrypt(v1, pt, aad)).subarray(0, 12), sealed.subarray(0, 12), "a fresh IV each time");
  assert.deepEqual(await server.decrypt(v1, sealed, aad), pt);
  await assert.rejects(server.decrypt(v1, sealed, Buffer.from("other aad")), decryptFailed);
  await assert.rejects(server.decrypt(v2, sealed, aad), decryptFailed);
  for (const at of [14, sealed.length - 1]) {
    const flipped = Buffer.from(sealed);
    flipped[at] ^= 0x80;
    await assert.rejects(server.decrypt(v1, flipped, aad), decryptFailed, `byte ${at} flipped`);
  }
  await assert.rejects(server.decrypt(v1, sealed.subarray(0, 20), aad), decryptFailed);
  assert.deepEqual(await server.decrypt(v1, sealed, aad), pt, "the key server is still usable after failed decryptions");
  assert.equal((await server.randomBytes(48)).length, 48);
  return { v1, v2, pt, aad };
}
