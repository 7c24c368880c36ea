/**
 * tpmtrust's MakeCredential and duplication blobs against a real TPM (swtpm + Debian tpm2-tools):
 * credentials activate with tpm2_activatecredential, duplicates import with tpm2_import, load, and
 * work (tpm2_hmac, tpm2_unseal). Negative twins fail inside the TPM.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeCredentialFile, makeCredential } from "../../src/crypto/credential.js";
import { createDuplicate, hmacKeyObject, sealedDataObject, type DuplicationBlob } from "../../src/crypto/duplicate.js";
import { TPM_ALG } from "../../src/tpm/constants.js";
import { decodeTpm2bPublic, objectName } from "../../src/tpm/structures.js";
import type { TpmtPublic } from "../../src/tpm/types.js";
import { startSwtpm, type Swtpm } from "../helpers/swtpm.js";
import { ToolError, tpm2, tpm2Raw } from "../helpers/tpm2tools.js";
import { eccEk, rsaEk } from "./unwrap.js";

let tpm: Swtpm;
let dir: string;
const f = (name: string) => join(dir, name);

before(async () => {
  tpm = await startSwtpm();
  dir = mkdtempSync(join(tmpdir(), "tpmtrust-crypto-"));
  // the object whose Name credentials are bound to, and the import parents: owner-hierarchy primaries
  await tpm2(tpm, "tpm2_createprimary", ["-C", "o", "-g", "sha256", "-G", "rsa2048", "-c", f("obj.ctx")]);
  await tpm2(tpm, "tpm2_readpublic", ["-c", f("obj.ctx"), "-o", f("obj.pub"), "-n", f("obj.name")]);
  const storage = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";
  for (const [name, alg] of [["srk-rsa", "rsa2048:null:aes128cfb"], ["srk-ecc", "ecc256:null:aes128cfb"], ["srk-ecc384", "ecc384:null:aes256cfb"]]) {
    await tpm2(tpm, "tpm2_createprimary", ["-C", "o", "-g", name === "srk-ecc384" ? "sha384" : "sha256", "-G", alg, "-a", storage, "-c", f(`${name}.ctx`)]);
    await tpm2(tpm, "tpm2_readpublic", ["-c", f(`${name}.ctx`), "-o", f(`${name}.pub`)]);
  }
});
after(async () => {
  await tpm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const publicOf = (file: string): TpmtPublic => decodeTpm2bPublic(readFileSync(f(file)));

/** tpm2_activatecredential with the EK authorised by PolicySecret(TPM_RH_ENDORSEMENT), or by its empty password. */
async function activate(ekCtx: string, credFile: string, auth: "policy" | "password"): Promise<Buffer> {
  const out = f("activated.bin");
  rmSync(out, { force: true });
  const args = ["-c", f("obj.ctx"), "-C", f(ekCtx), "-i", f(credFile), "-o", out];
  if (auth === "policy") {
    await tpm2(tpm, "tpm2_startauthsession", ["--policy-session", "-S", f("s.ctx")], { flush: false });
    await tpm2(tpm, "tpm2_policysecret", ["-S", f("s.ctx"), "-c", "e"], { flush: false });
    args.push("-P", `session:${f("s.ctx")}`);
  }
  await tpm2(tpm, "tpm2_activatecredential", args);
  return readFileSync(out);
}

async function tpmError(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => assert.fail("the TPM accepted it"),
    (e: unknown) => e,
  );
  assert.ok(e instanceof ToolError, String(e));
  return e.stderr;
}

describe("MakeCredential blobs activate in swtpm (tpm2_activatecredential)", () => {
  const cases = [
    { ek: "rsa", auth: "policy", nameAlg: TPM_ALG.SHA256, secretSize: 256 },
    { ek: "ecc", auth: "policy", nameAlg: TPM_ALG.SHA256, secretSize: 68 },
    // swtpm's P-384 EK template: nameAlg SHA-384, AES-256, userWithAuth (TPM-FACTS: empty password, no PolicySecret)
    { ek: "ecc384", auth: "password", nameAlg: TPM_ALG.SHA384, secretSize: 100 },
  ] as const;
  for (const c of cases) {
    test(`${c.ek} EK`, async () => {
      await tpm2(tpm, "tpm2_createek", ["-G", c.ek, "-c", f(`ek-${c.ek}.ctx`), "-u", f(`ek-${c.ek}.pub`)]);
      const ek = publicOf(`ek-${c.ek}.pub`);
      assert.equal(ek.nameAlg, c.nameAlg);
      const obj = publicOf("obj.pub");
      const name = objectName(obj);
      assert.deepEqual(name, readFileSync(f("obj.name")), "our Name equals the TPM's");
      const digest = c.nameAlg === TPM_ALG.SHA384 ? 48 : 32;
      for (const secret of [Buffer.from("harness-credential-secret-32byte"), Buffer.alloc(digest, 0xa5), Buffer.of(7)]) {
        const blob = makeCredential(ek, name, secret);
        assert.equal(blob.secret.length, 2 + c.secretSize);
        writeFileSync(f("cred.bin"), encodeCredentialFile(blob));
        assert.deepEqual(await activate(`ek-${c.ek}.ctx`, "cred.bin", c.auth), secret);
      }

      // negative twins: bound to another Name (integrity), and made for another EK of the same template
      writeFileSync(f("cred-other-name.bin"), encodeCredentialFile(makeCredential(ek, Buffer.concat([name.subarray(0, -1), Buffer.of(name[name.length - 1] ^ 1)]), Buffer.alloc(16, 1))));
      assert.match(await tpmError(activate(`ek-${c.ek}.ctx`, "cred-other-name.bin", c.auth)), /Esys_ActivateCredential\(0x1DF\)/);
      // made for another EK of the same template: RSA's OAEP decoding fails (libtpms: TPM_RC_FAILURE, 0x101),
      // ECC's ECDH yields another seed, so the integrity check fails
      const other = ek.type === TPM_ALG.ECC ? eccEk(ek.parameters.curveID, ek.nameAlg, ek.parameters.symmetric.keyBits).pub : rsaEk().pub;
      writeFileSync(f("cred-other-ek.bin"), encodeCredentialFile(makeCredential(other, name, Buffer.alloc(16, 1))));
      const rc = ek.type === TPM_ALG.RSA ? "0x101" : "0x1DF";
      assert.match(await tpmError(activate(`ek-${c.ek}.ctx`, "cred-other-ek.bin", c.auth)), new RegExp(`Esys_ActivateCredential\\(${rc}\\)`));
    });
  }
});

async function importAndLoad(srk: string, blob: DuplicationBlob, innerKey?: Buffer): Promise<string> {
  writeFileSync(f("dup.pub"), blob.public);
  writeFileSync(f("dup.priv"), blob.duplicate);
  writeFileSync(f("dup.seed"), blob.inSymSeed);
  const args = ["-C", f(`${srk}.ctx`), "-u", f("dup.pub"), "-i", f("dup.priv"), "-s", f("dup.seed"), "-r", f("imported.priv")];
  if (innerKey) {
    writeFileSync(f("inner.key"), innerKey);
    args.push("-k", f("inner.key"));
  }
  await tpm2(tpm, "tpm2_import", args);
  await tpm2(tpm, "tpm2_load", ["-C", f(`${srk}.ctx`), "-u", f("dup.pub"), "-r", f("imported.priv"), "-c", f("key.ctx"), "-n", f("key.name")]);
  assert.deepEqual(readFileSync(f("key.name")), blob.name, "the TPM computes the same Name");
  return f("key.ctx");
}

describe("duplication blobs import into swtpm (tpm2_import, tpm2_load)", () => {
  for (const srk of ["srk-rsa", "srk-ecc", "srk-ecc384"]) {
    test(`${srk}: HMAC key, outer wrap only and outer + inner wrap; tpm2_hmac proves the key`, async () => {
      const parent = publicOf(`${srk}.pub`);
      const key = Buffer.from("a 32-byte DPS-style HMAC key....");
      const obj = hmacKeyObject(key);
      const data = Buffer.from("0ne00ABC123%2fregistrations%2fdevice-1\n1900000000");
      writeFileSync(f("data.bin"), data);
      for (const innerKey of [undefined, Buffer.alloc(16, 0x33)]) {
        const ctx = await importAndLoad(srk, createDuplicate(parent, obj.public, obj.sensitive, { innerKey }), innerKey);
        const mac = await tpm2Raw(tpm, "tpm2_hmac", ["-c", ctx, "-g", "sha256", f("data.bin")]);
        assert.deepEqual(mac, createHmac("sha256", key).update(data).digest());
      }
    });
  }

  test("sealed data object: imported with an inner wrap, tpm2_unseal releases the secret", async () => {
    const secret = Buffer.from("disk encryption key released to this TPM only");
    const obj = sealedDataObject(secret);
    const innerKey = Buffer.alloc(16, 0x5a);
    const ctx = await importAndLoad("srk-rsa", createDuplicate(publicOf("srk-rsa.pub"), obj.public, obj.sensitive, { innerKey }), innerKey);
    assert.deepEqual(await tpm2Raw(tpm, "tpm2_unseal", ["-c", ctx]), secret);
  });

  test("negative twins: wrong inner key, another parent, tampered duplicate, tampered public", async () => {
    const parent = publicOf("srk-rsa.pub");
    const obj = hmacKeyObject(Buffer.alloc(32, 0x11));
    const innerKey = Buffer.alloc(16, 0x33);
    const blob = createDuplicate(parent, obj.public, obj.sensitive, { innerKey });
    // a wrong inner key breaks the TPM2B size inside before the integrity check (TPM_RC_SIZE, parameter 3)
    assert.match(await tpmError(importAndLoad("srk-rsa", blob, Buffer.alloc(16, 0x34))), /0x3d5\b/i);
    // made for another parent of the same template: the seed does not decrypt (libtpms: 0x101)
    assert.match(await tpmError(importAndLoad("srk-rsa", createDuplicate(rsaEk().pub, obj.public, obj.sensitive, { innerKey }), innerKey)), /0x101\b/);
    const flipped = Buffer.from(blob.duplicate);
    flipped[flipped.length - 1] ^= 1;
    assert.match(await tpmError(importAndLoad("srk-rsa", { ...blob, duplicate: flipped }, innerKey)), /0x3df\b/i);
    const other = hmacKeyObject(Buffer.alloc(32, 0x12));
    assert.match(await tpmError(importAndLoad("srk-rsa", { ...blob, public: createDuplicate(parent, other.public, other.sensitive).public }, innerKey)), /0x3df\b/i);
    // and the genuine blob still imports
    await importAndLoad("srk-rsa", blob, innerKey);
  });
});
