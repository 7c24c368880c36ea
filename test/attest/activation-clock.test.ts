/** Activation expiry at an injected clock, and the attestation CA's key custody (SQLite store, no TPM needed). */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ACTIVATION_TTL_MS, completeActivation, startActivation } from "../../src/attest/activation.js";
import { attestationCa } from "../../src/ca/ak-ca.js";
import { addHost } from "../../src/attest/hosts.js";
import { openStore } from "../../src/store/index.js";
import { akTemplate } from "../../src/tpm/commands/index.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { decodeTpm2bPublic, encodeTpm2bPublic } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { ekHash } from "../../src/verify/ek/index.js";

const tmp = mkdtempSync(join(tmpdir(), "tpmtrust-activation-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ekPub2b = readFileSync("test/fixtures/ek-certs/infineon_rsa_ek.expected_tpm2b_public.bin");
const T0 = Date.parse("2025-06-01T00:00:00Z");

/** An AK public area as a TPM would return it (the unique is the key; here a fixed stand-in modulus). */
function akPublic(): Buffer {
  const t = akTemplate() as Extract<TpmtPublic, { type: typeof TPM_ALG.RSA }>;
  return encodeTpm2bPublic({ ...t, unique: decodeTpm2bPublic(ekPub2b).unique as Buffer });
}

test("an activation expires after its TTL: before, a wrong answer is ERR_ACTIVATION_FAILED; after, ERR_NOT_FOUND", async () => {
  const store = await openStore(join(tmp, "a.db"));
  try {
    const caller = { actor: "test", now: T0 };
    await store.trust.addAllowlist(ekHash(decodeTpm2bPublic(ekPub2b)), { at: Date.now() });
    const identity = { ekPublics: [{ alg: "rsa2048", public: ekPub2b.toString("base64") }], ekCertificates: [], tpm: { manufacturer: "IFX", vendor: "", firmware: "7.85" } };
    await addHost(store, { name: "h", hardwareClass: "c", policyVersion: "v1", identity }, caller);
    const start = () => startActivation(store, { ekPublic: ekPub2b, akPublic: akPublic() }, { now: T0 });
    const a = await start();
    assert.equal(a.expiresAt, T0 + ACTIVATION_TTL_MS);
    await assert.rejects(completeActivation(store, a.activationId, Buffer.alloc(32), { now: T0 + ACTIVATION_TTL_MS }), { code: "ERR_NOT_FOUND" });
    const b = await start();
    await assert.rejects(completeActivation(store, b.activationId, Buffer.alloc(32), { now: T0 + ACTIVATION_TTL_MS - 1 }), { code: "ERR_ACTIVATION_FAILED" });
    // a short answer is wrong too, never a crash
    const c = await start();
    await assert.rejects(completeActivation(store, c.activationId, Buffer.alloc(3), { now: T0 }), { code: "ERR_ACTIVATION_FAILED" });
  } finally {
    await store.close();
  }
});

test("the attestation CA: created once with a 0600 key beside the database; a key readable by others is refused", async () => {
  const dir = mkdtempSync(join(tmp, "ca-"));
  const store = await openStore(join(dir, "ca.db"));
  const saved = process.env.TPMTRUST_STATE_DIR;
  delete process.env.TPMTRUST_STATE_DIR;
  try {
    const first = await attestationCa(store, T0);
    const again = await attestationCa(store, T0 + 1000);
    assert.equal(again.authority.id, first.authority.id);
    assert.equal(first.authority.keyRef, `file:${join(dir, "attestation-ca-key.pem")}`);
    assert.equal(first.certificate.subject, "O=tpmtrust, CN=tpmtrust attestation CA");
    chmodSync(join(dir, "attestation-ca-key.pem"), 0o644);
    await assert.rejects(attestationCa(store, T0), (e: Error & { code?: string }) => e.code === "ERR_IO" && /readable by others/.test(e.message));
  } finally {
    if (saved !== undefined) process.env.TPMTRUST_STATE_DIR = saved;
    await store.close();
  }
});
